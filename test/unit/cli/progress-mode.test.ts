/**
 * Which transfer display a build gets: buildx's --progress names and the log format decide, a
 * terminal or not decides `auto`, and --progress-interval is read in seconds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { addBuildFlags } from '../../../src/cli/build-flags.ts';
import { cliSettings, readFlags } from '../../../src/cli/to-options.ts';
import { transferMode } from '../../../src/cli/progress.ts';

function settings(args: string[], env: NodeJS.ProcessEnv = {}): ReturnType<typeof cliSettings> {
  const c = addBuildFlags(new Command(), env).exitOverride();
  let out: ReturnType<typeof cliSettings> | undefined;
  // The env variables are applied before the action, as `kiln build` runs it.
  c.action(() => void (out = cliSettings(readFlags(c.opts()))));
  c.parse(args, { from: 'user' });
  return out!;
}

const tty = { isTTY: true };
const pipe = { isTTY: false };
const term = { TERM: 'xterm' };

test('auto: the live line on a terminal, plain lines in a pipe or with TERM=dumb', () => {
  assert.deepEqual(transferMode(settings([]), tty, term), { mode: 'tty' });
  assert.deepEqual(transferMode(settings(['--progress=auto']), pipe, term), { mode: 'plain' });
  assert.deepEqual(transferMode(settings([]), tty, { TERM: 'dumb' }), { mode: 'plain' });
});

test('plain is plain even on a terminal; json (either flag) is only JSON events', () => {
  assert.deepEqual(transferMode(settings(['--progress=plain']), tty, term), { mode: 'plain' });
  assert.deepEqual(transferMode(settings(['--progress=json']), tty, term), { mode: 'json' });
  assert.deepEqual(transferMode(settings(['--log-format=json']), tty, term), { mode: 'json' });
  assert.deepEqual(transferMode(settings(['--log-format=json', '--progress=tty']), tty, term), {
    mode: 'json',
  });
});

test('-v warn and quieter: no live line (the plain lines are info messages, hidden too)', () => {
  assert.deepEqual(transferMode(settings(['-v', 'warn']), tty, term), { mode: 'plain' });
  assert.deepEqual(transferMode(settings(['-v', 'debug']), tty, term), { mode: 'tty' });
});

test('tty without a terminal says so and falls back to plain lines', () => {
  const m = transferMode(settings(['--progress=tty']), pipe, term);
  assert.equal(m.mode, 'plain');
  assert.match(m.note ?? '', /^--progress tty: stderr is not a terminal/);
});

test('--progress-interval is seconds (KILN_PROGRESS_INTERVAL too); a bad value is a usage error', () => {
  assert.equal(settings(['--progress-interval', '0.5']).progress.intervalMs, 500);
  assert.equal(settings(['--progress-interval=12']).progress.intervalMs, 12_000);
  assert.equal(settings([], { KILN_PROGRESS_INTERVAL: '2' }).progress.intervalMs, 2000);
  assert.throws(
    () => settings(['--progress-interval', 'soon']),
    (e: unknown) => (e as { code?: string }).code === 'BAD_FLAG_VALUE',
  );
  assert.throws(() => settings(['--progress=fancy', '--log-format=json']), /--progress "fancy"/);
});
