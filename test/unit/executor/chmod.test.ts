import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyChmod, parseChmod } from '../../../src/executor/chmod.ts';
import { KilnError } from '../../../src/util/errors.ts';

const cases: Array<[spec: string, mode: number, isDir: boolean, want: number]> = [
  ['755', 0o644, false, 0o755],
  ['0644', 0o755, false, 0o644],
  ['4755', 0o644, false, 0o4755],
  ['0', 0o777, false, 0],
  ['+x', 0o644, false, 0o755],
  ['u+x', 0o644, false, 0o744],
  ['g-w', 0o664, false, 0o644],
  ['o=r', 0o777, false, 0o774],
  ['a=rX', 0o640, false, 0o444],
  // BSD setmode (BuildKit's dchapes-mode) honours X only with "+": "=rX" is "=r" (GNU chmod differs).
  ['a=rX', 0o740, false, 0o444],
  ['a=rX', 0o700, true, 0o444],
  ['a+rX', 0o740, false, 0o755],
  ['a+rX', 0o700, true, 0o755],
  ['u+x,g-w,o=r', 0o666, false, 0o744],
  ['go-rwx', 0o755, false, 0o700],
  ['u+s', 0o755, false, 0o4755],
  ['g+s', 0o755, true, 0o2755],
  ['+t', 0o777, true, 0o1777],
  ['ug=rw', 0o000, false, 0o660],
];

for (const [spec, mode, isDir, want] of cases) {
  test(`chmod ${spec} on ${mode.toString(8)}${isDir ? ' (dir)' : ''} → ${want.toString(8)}`, () => {
    assert.equal(applyChmod(parseChmod(spec), mode, isDir).toString(8), want.toString(8));
  });
}

for (const bad of ['999', 'u+q', 'x+r', '', '0o755', '12345']) {
  test(`chmod "${bad}" is refused with a typed error that names the value`, () => {
    assert.throws(
      () => parseChmod(bad, { file: 'Dockerfile', line: 3 }),
      (e: unknown) => e instanceof KilnError && e.code === 'BAD_CHMOD' && e.message.includes(`"${bad}"`),
    );
  });
}
