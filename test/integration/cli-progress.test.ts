/**
 * Progress of real transfers, as a person and a tool see them: a Debian base (one 47 MiB layer)
 * pulled from a real registry on 127.0.0.1, extracted, and a 12 MB incompressible layer pushed back.
 *  - on a terminal (a pty made by script(1)): a live line redrawn in place with bytes and rate,
 *    numbered steps, and one summary line per pull, extraction and push;
 *  - in a pipe: plain lines only (no ANSI, no carriage returns), one per quarter or interval;
 *  - with --log-format json: every stderr line is one JSON object, transfers as `progress` events.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kiln, REPO } from '../helpers/cli.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { pushDebianImage } from '../helpers/debian.ts';

const isRoot = process.getuid?.() === 0;
const ESC = '\x1b[';
let work: string;
let reg: TestRegistry | undefined;
let ctx: string;
let base: string;

before(async () => {
  if (!isRoot) return;
  work = await mkdtemp(join(tmpdir(), 'kiln-progress-'));
  await chmod(work, 0o755);
  reg = await startRegistry();
  await pushDebianImage(reg, 'base/debian', '1');
  base = `${reg.host}/base/debian`;
  ctx = join(work, 'ctx');
  await mkdir(ctx);
  await writeFile(
    join(ctx, 'Dockerfile'),
    `FROM ${base}:1\nRUN head -c 12000000 /dev/urandom > /big && echo made-big\nCOPY a /a\n`,
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
    '--destination',
    `${reg!.host}/app/p${n}:1`,
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

/** Runs the CLI under a pseudo-terminal (script -qfec) and returns what the terminal showed. */
function kilnOnPty(args: string[]): Promise<{ code: number; screen: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, TERM: 'xterm', COLUMNS: '200' };
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

/** `pulled <subject>: 46.9 MiB in 1.2 s (…)` → its seconds, to bound the periodic lines by. */
function summarySeconds(text: string, verb: string, subject: string): number {
  const re = new RegExp(
    `^${verb} ${subject.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: [\\d.]+ [KMG]iB in ([\\d.]+) (ms|s) `,
    'm',
  );
  const m = re.exec(text);
  assert.ok(m, `${verb} ${subject} summary in:\n${text.slice(0, 3000)}`);
  return m[2] === 'ms' ? Number(m[1]) / 1000 : Number(m[1]);
}

/** Periodic lines of a group are one per quarter (3 at most) plus one per interval elapsed. */
function assertPaced(text: string, phase: string, verb: string, subject: string): void {
  const esc = subject.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const lines = text
    .split('\n')
    .filter((l) =>
      new RegExp(`^${phase} ${esc}: [\\d.]+/[\\d.]+ MiB \\(\\d+%\\) [\\d.]+ [KMG]iB/s$`).test(l),
    );
  assert.ok(lines.length >= 1, `a ${phase} line for ${subject} in:\n${text.slice(0, 3000)}`);
  const seconds = summarySeconds(text, verb, subject);
  assert.ok(
    lines.length <= 3 + Math.ceil(seconds / 5) + 1,
    `not per chunk: ${lines.length} lines\n${lines.join('\n')}`,
  );
}

describe('transfer progress', { skip: !isRoot && 'needs root (chroot rung)' }, () => {
  test(
    'a terminal sees a live bar redrawn in place, numbered steps and summaries',
    { timeout: 300_000 },
    async () => {
      const tty = await kilnOnPty(buildArgs());
      assert.equal(tty.code, 0, tty.screen.slice(-3000));
      const s = tty.screen;
      // The live line: a carriage return (and erase-line), then phase, subject, bar, bytes and rate.
      const live = (phase: string, subject: string): RegExp =>
        new RegExp(
          `\\r(\\x1b\\[K)?${phase} ${subject.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: \\[[#-]{20}\\] [\\d.]+/[\\d.]+ MiB [\\d.]+ [KMG]iB/s`,
        );
      // The base's layer extracts while it downloads: the pull shares the live line with the
      // extraction (`extract …: 1.7/46.5 MiB 6.7 MiB/s  pull …: 3.8/46.5 MiB 14.6 MiB/s`).
      const esc = (t: string): string => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      const shared = new RegExp(
        `\\r(\\x1b\\[K)?extract ${esc(base)}: [^\\r\\n]*  pull ${esc(base)}: [\\d.]+/[\\d.]+ MiB [\\d.]+ [KMG]iB/s`,
      );
      assert.match(s, shared, s.slice(0, 3000));
      assert.match(s, live('extract', base));
      assert.match(s, live('push', `${reg!.host}/app/p${n}`));
      assert.ok(s.includes(`\r${ESC}K`), 'redrawn in place');
      // Redrawn, not printed once: more than one state of the pull line reached the terminal.
      const pullStates = new Set(
        s.match(new RegExp(`pull ${esc(base)}: [\\d.]+/[\\d.]+ MiB [\\d.]+ [KMG]iB/s`, 'g')),
      );
      assert.ok(pullStates.size >= 2, [...pullStates].join('\n'));
      assert.match(s, /extracting base [^\n]*base\/debian \(1 layer, [\d.]+ MiB\)/);
      assert.match(s, /extracted base [^\n]*base\/debian in [\d.]+ (ms|s)/);
      assert.match(s, /\[stage 1\/1\] \[2\/3\] RUN head -c 12000000/);
      assert.match(s, /\[stage 1\/1\] \[3\/3\] done in [^\n]*: COPY a \/a/);
      assert.match(s, new RegExp(`pulled ${base.replace(/[.]/g, '\\.')}: [\\d.]+ MiB in `));
      assert.match(s, /made-big/);
    },
  );

  test('--progress plain on a terminal: plain lines, no live bar', { timeout: 300_000 }, async () => {
    const tty = await kilnOnPty(buildArgs('--progress', 'plain'));
    assert.equal(tty.code, 0, tty.screen.slice(-3000));
    // script(1) turns each \n into \r\n: only those carriage returns, and no ANSI at all.
    assert.ok(!/\r(?!\n)/.test(tty.screen), JSON.stringify(tty.screen.slice(0, 2000)));
    assert.ok(!tty.screen.includes(ESC));
    assertPaced(tty.screen.replace(/\r\n/g, '\n'), 'pull', 'pulled', base);
  });

  test('a pipe sees periodic plain lines without ANSI', { timeout: 300_000 }, async () => {
    const r = await kiln(buildArgs('--progress', 'tty'));
    assert.equal(r.code, 0, r.stderr);
    const e = r.stderr;
    assert.ok(!e.includes(ESC), e.slice(0, 2000));
    assert.ok(!e.includes('\r'), e.slice(0, 2000));
    assert.match(e, /^WARN --progress tty: stderr is not a terminal/m);
    assertPaced(e, 'pull', 'pulled', base);
    assertPaced(e, 'extract', 'extracted', base);
    assertPaced(e, 'push', 'pushed', `${reg!.host}/app/p${n}`);
    assert.match(e, /^extracting base \S*base\/debian \(1 layer, 4\d\.\d MiB\)$/m);
    assert.match(e, /^\[stage 1\/1\] \[2\/3\] RUN head/m);
    assert.match(r.stdout, /^sha256:[0-9a-f]{64}\n$/);
  });

  test('kiln warm shows its pulls too', { timeout: 120_000 }, async () => {
    const r = await kiln([
      'warm',
      '-i',
      `${base}:1`,
      '--cache-dir',
      join(work, 'warm-cache'),
      '--insecure-registry',
      reg!.host,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assertPaced(r.stderr, 'pull', 'pulled', base);
    assert.ok(!r.stderr.includes(ESC));
  });

  test(
    '--log-format json: every line is JSON, transfers are progress events',
    { timeout: 300_000 },
    async () => {
      const r = await kiln(buildArgs('--log-format', 'json', '--progress-interval', '0.2'));
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stderr.split('\n').filter((l) => l !== '');
      const events = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.ok(events.every((e) => typeof e.msg === 'string' && typeof e.level === 'string'));
      const progress = events.filter((e) => e.type === 'progress');
      for (const phase of ['pull', 'extract', 'push']) {
        const mine = progress.filter((e) => e.phase === phase);
        assert.ok(mine.length >= 2, `${phase} events in ${r.stderr.slice(0, 3000)}`);
        for (const e of mine) {
          assert.match(String(e.blob), /^sha256:[0-9a-f]{64}$/);
          assert.equal(typeof e.done, 'number');
          assert.equal(typeof e.total, 'number');
          assert.ok((e.done as number) <= (e.total as number));
        }
        const ended = mine.filter((e) => e.status === 'done');
        assert.ok(
          ended.length >= 1 && ended.every((e) => e.done === e.total && typeof e.durationMs === 'number'),
        );
        assert.ok(mine.some((e) => e.status === 'start' && e.done === 0));
      }
      assert.ok(events.some((e) => e.event === 'base-extracted' && typeof e.durationMs === 'number'));
      assert.ok(events.some((e) => e.type === 'progress-summary' && e.phase === 'push' && e.ok === true));
      // stdout stays the digest alone (scripts read it); every log line went to stderr as JSON.
      assert.match(r.stdout, /^sha256:[0-9a-f]{64}\n$/);
    },
  );
});
