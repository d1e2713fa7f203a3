/**
 * Numbered steps with durations (`[stage 1/1] [2/3] RUN …`), and `--log-format` as Kaniko's logrus formats: `json` is one JSON object per line for every message of
 * a real build (RUN output and errors included), `color` colours level names on a terminal (a pty
 * made by script(1)) and not in a pipe.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kiln, REPO } from '../helpers/cli.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { pushBusyboxImage } from '../helpers/images.ts';

const isRoot = process.getuid?.() === 0;
const ESC = '\x1b[';
let work: string;
let reg: TestRegistry | undefined;
let ctx: string;

before(async () => {
  if (!isRoot) return;
  work = await mkdtemp(join(tmpdir(), 'kiln-logfmt-'));
  await chmod(work, 0o755);
  reg = await startRegistry();
  await pushBusyboxImage(reg, 'base/busybox', '1');
  ctx = join(work, 'ctx');
  await mkdir(ctx);
  await writeFile(
    join(ctx, 'Dockerfile'),
    `FROM ${reg.host}/base/busybox:1\nRUN echo to-stdout && echo to-stderr >&2 && printf no-newline\nCOPY a /a\n`,
  );
  await writeFile(join(ctx, 'a'), 'a\n');
});

after(async () => {
  await reg?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

let n = 0;
function buildArgs(...extra: string[]): string[] {
  n++;
  return [
    'build',
    '-c',
    ctx,
    '--no-push',
    '--tar-path',
    join(work, `i-${n}.tar`),
    '--insecure-registry',
    reg!.host,
    '--isolation',
    'chroot',
    '--work-dir',
    join(work, `w-${n}`),
    ...extra,
  ];
}

const quote = (a: string): string => `'${a.replace(/'/g, `'\\''`)}'`;

/** Runs the CLI under a pseudo-terminal (script -qfc) and returns what the terminal showed. */
function kilnOnPty(args: string[]): Promise<{ code: number; screen: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['NODE_OPTIONS', 'NODE_TEST_CONTEXT', 'SOURCE_DATE_EPOCH', 'NO_COLOR']) delete env[k];
  const cmd = [process.execPath, '--import', 'tsx', join(REPO, 'src/cli/main.ts'), ...args]
    .map(quote)
    .join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qfec', cmd, '/dev/null'], {
      cwd: REPO,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let screen = '';
    child.stdout.on('data', (d: Buffer) => (screen += d.toString()));
    child.stderr.on('data', (d: Buffer) => (screen += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, screen }));
  });
}

describe('--log-format', { skip: !isRoot && 'needs root (chroot rung)' }, () => {
  test('json: every stderr line of a build is one JSON object', { timeout: 120_000 }, async () => {
    const r = await kiln(buildArgs('--log-format', 'json', '--use-new-run'));
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    assert.ok(lines.length >= 5, r.stderr);
    const events = lines.map((l) => {
      const e = JSON.parse(l) as Record<string, unknown>;
      assert.equal(typeof e.msg, 'string', l);
      assert.ok(['trace', 'debug', 'info', 'warn', 'error'].includes(String(e.level)), l);
      assert.ok(!Number.isNaN(Date.parse(String(e.time))), l);
      return e;
    });
    // RUN's stdout and stderr share one line buffer, so their order may interleave; each is there.
    const run = events.filter((e) => e.stream === 'run').map((e) => String(e.msg));
    for (const want of ['to-stdout', 'to-stderr', 'no-newline'])
      assert.ok(
        run.some((m) => m.includes(want)),
        `${want} in ${JSON.stringify(run)}`,
      );
    assert.ok(events.some((e) => e.level === 'warn' && /^--use-new-run /.test(String(e.msg))));
    // Progress for tools: one step-done event per step, numbered, with its duration.
    const done = events.filter((e) => e.event === 'step-done');
    assert.deepEqual(
      done.map((e) => [e.stageNumber, e.stageCount, e.step, e.stepCount]),
      [
        [1, 1, 1, 3],
        [1, 1, 2, 3],
        [1, 1, 3, 3],
      ],
    );
    assert.ok(done.every((e) => typeof e.durationMs === 'number' && e.cache === 'none'));
    assert.match(r.stdout, /^sha256:[0-9a-f]{64}\n$/, 'stdout stays the digest alone');
  });

  test('json: a failing build reports its error as JSON too', { timeout: 60_000 }, async () => {
    const bad = join(work, 'bad');
    await mkdir(bad, { recursive: true });
    await writeFile(join(bad, 'Dockerfile'), 'FROM scratch\nFRM x\n');
    const r = await kiln([
      'build',
      '-c',
      bad,
      '--no-push',
      '--log-format=json',
      '--work-dir',
      join(work, 'wb'),
    ]);
    assert.equal(r.code, 3, r.stderr);
    const events = r.stderr
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const last = events.at(-1)!;
    assert.equal(last.level, 'error');
    assert.match(String(last.msg), /FRM/);
    assert.equal(typeof last.code, 'string');
  });

  test('color: ANSI colours on a terminal, none in a pipe', { timeout: 180_000 }, async () => {
    const tty = await kilnOnPty(buildArgs('--log-format', 'color'));
    assert.equal(tty.code, 0, tty.screen);
    assert.ok(tty.screen.includes(`${ESC}36mINFO${ESC}0m `), tty.screen.slice(0, 2000));
    const pipe = await kiln(buildArgs('--log-format', 'color'));
    assert.equal(pipe.code, 0, pipe.stderr);
    assert.ok(pipe.stderr.length > 0);
    assert.ok(!pipe.stderr.includes(ESC), pipe.stderr.slice(0, 2000));
    // Numbered steps, and a line with the duration when each ends (BuildKit's numbering, FROM first).
    assert.match(pipe.stderr, /^\[stage 1\/1\] \[2\/3\] RUN echo to-stdout/m);
    assert.match(pipe.stderr, /^\[stage 1\/1\] \[3\/3\] done in \d+(ms|\.\ds): COPY a \/a$/m);
    assert.match(tty.screen, /\[stage 1\/1\] \[1\/3\] done in .*: FROM /);
  });
});
