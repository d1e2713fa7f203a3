import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseLauncher } from '../../../src/ci/github/launcher.ts';

const cases: Array<[string, Parameters<typeof chooseLauncher>[1], string[], boolean]> = [
  ['root runs kiln directly', { euid: 0, probeExit: 0, sudoWorks: true, isolation: 'auto' }, ['node'], false],
  [
    'a working rung as this user: directly',
    { euid: 1001, probeExit: 0, sudoWorks: true, isolation: 'auto' },
    ['node'],
    false,
  ],
  [
    'no rung, sudo works: sudo for chroot',
    { euid: 1001, probeExit: 6, sudoWorks: true, isolation: 'auto' },
    ['sudo', '-n', '-E', 'node'],
    true,
  ],
  [
    'no rung, no sudo: directly (the build reports why)',
    { euid: 1001, probeExit: 6, sudoWorks: false, isolation: 'auto' },
    ['node'],
    false,
  ],
  [
    'rootless asked for: never sudo',
    { euid: 1001, probeExit: 6, sudoWorks: true, isolation: 'rootless' },
    ['node'],
    false,
  ],
];
for (const [name, facts, argv, noted] of cases) {
  test(`launcher: ${name}`, () => {
    const l = chooseLauncher('node', facts);
    assert.deepEqual(l.argv, argv);
    assert.equal(l.note !== undefined, noted);
  });
}
