import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ImageConfig } from '../../../src/image/types.ts';
import {
  addVolumes,
  exposePorts,
  getEnv,
  parseDuration,
  setCmd,
  setEntrypoint,
  setEnv,
  setWorkdir,
  setStopSignal,
} from '../../../src/executor/config-ops.ts';
import { KilnError } from '../../../src/util/errors.ts';

const fresh = (): ImageConfig => ({
  architecture: 'amd64',
  os: 'linux',
  rootfs: { type: 'layers', diff_ids: [] },
  config: { Env: ['PATH=/usr/bin:/bin', 'LANG=C'], Cmd: ['sh'] },
});

test('ENV replaces a key in place and appends new keys', () => {
  const c = fresh();
  setEnv(c, [
    ['PATH', '/opt/bin:/usr/bin:/bin'],
    ['APP', 'x y'],
  ]);
  assert.deepEqual(c.config?.Env, ['PATH=/opt/bin:/usr/bin:/bin', 'LANG=C', 'APP=x y']);
  assert.equal(getEnv(c).get('APP'), 'x y');
});

const exposeCases: Array<[string[], string[]]> = [
  [['80'], ['80/tcp']],
  [
    ['80/tcp', '53/udp'],
    ['80/tcp', '53/udp'],
  ],
  [['8000-8002'], ['8000/tcp', '8001/tcp', '8002/tcp']],
  [['7000-7001/UDP'], ['7000/udp', '7001/udp']],
  [['132/sctp'], ['132/sctp']],
];
for (const [input, want] of exposeCases) {
  test(`EXPOSE ${input.join(' ')}`, () => {
    const c = fresh();
    exposePorts(c, input);
    assert.deepEqual(Object.keys(c.config?.ExposedPorts ?? {}), want);
  });
}
for (const bad of ['http', '80/icmp', '90-80', '70000', '1-70000']) {
  test(`EXPOSE ${bad} is refused`, () => {
    assert.throws(
      () => exposePorts(fresh(), [bad]),
      (e: unknown) => e instanceof KilnError && e.message.includes(bad),
    );
  });
}

test('ENTRYPOINT drops the base CMD but keeps one set earlier in the stage', () => {
  const inherited = fresh();
  setEntrypoint(inherited, ['/app'], false);
  assert.equal(inherited.config?.Cmd, null);
  const own = fresh();
  setCmd(own, ['--serve']);
  setEntrypoint(own, ['/app'], true);
  assert.deepEqual(own.config?.Cmd, ['--serve']);
  assert.deepEqual(own.config?.Entrypoint, ['/app']);
});

test('WORKDIR resolves relative paths against the previous WORKDIR', () => {
  const c = fresh();
  assert.equal(setWorkdir(c, '/a'), '/a');
  assert.equal(setWorkdir(c, 'b'), '/a/b');
  assert.equal(setWorkdir(c, '../c/./d/'), '/a/c/d');
});

test('VOLUME rejects empty paths', () => {
  const c = fresh();
  addVolumes(c, ['/data', '/logs']);
  assert.deepEqual(Object.keys(c.config?.Volumes ?? {}), ['/data', '/logs']);
  assert.throws(() => addVolumes(c, ['']), KilnError);
});

test('STOPSIGNAL accepts names and numbers only', () => {
  const c = fresh();
  setStopSignal(c, 'SIGQUIT');
  setStopSignal(c, '9');
  assert.equal(c.config?.StopSignal, '9');
  assert.throws(() => setStopSignal(c, 'kill me'), KilnError);
});

const durations: Array<[string, number]> = [
  ['30s', 30e9],
  ['1m30s', 90e9],
  ['500ms', 5e8],
  ['1h', 3600e9],
  ['0', 0],
  ['1.5s', 1.5e9],
];
for (const [s, ns] of durations) {
  test(`duration ${s} = ${ns} ns`, () => assert.equal(parseDuration(s, '--interval'), ns));
}
for (const bad of ['', '30', 's', '1x', '1m 30s']) {
  test(`duration "${bad}" is refused naming the flag`, () => {
    assert.throws(() => parseDuration(bad, '--interval'), /--interval/);
  });
}
