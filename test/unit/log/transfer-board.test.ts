/**
 * The transfer board with a clock the test moves: plain lines per quarter or per interval (never per
 * chunk), JSON events per blob, the live line redrawn at most every 100 ms and taken away before
 * other output, and one summary per group when its last blob ends.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Logger, memoryLogger } from '../../../src/log/logger.ts';
import { StatusLine } from '../../../src/log/status-line.ts';
import { TransferBoard } from '../../../src/log/transfer-board.ts';
import { meterStream, shortSubject } from '../../../src/log/transfer.ts';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

const MIB = 1 << 20;
const blob = (c: string): string => `sha256:${c.repeat(64)}`;

function clock(): { now: () => number; tick(ms: number): void } {
  let t = 1000;
  return { now: () => t, tick: (ms) => void (t += ms) };
}

test('plain: a line per quarter of the bytes, not per chunk, and one summary', () => {
  const c = clock();
  const { logger, lines } = memoryLogger('info');
  const board = new TransferBoard({ mode: 'plain', logger, now: c.now, intervalMs: 5000 });
  const m = board.begin({ phase: 'pull', subject: 'debian', blob: blob('a'), total: 40 * MIB });
  for (let done = 0; done <= 40 * MIB; done += 64 << 10) {
    c.tick(1);
    m.update(done);
  }
  c.tick(360);
  m.end(true);
  assert.deepEqual(lines, [
    'pull debian: 10.0/40.0 MiB (25%) 62.1 MiB/s',
    'pull debian: 20.0/40.0 MiB (50%) 62.3 MiB/s',
    'pull debian: 30.0/40.0 MiB (75%) 62.4 MiB/s',
    'pulled debian: 40.0 MiB in 1.0 s (40.0 MiB/s)',
  ]);
});

test('plain: a slow transfer gets a line every interval', () => {
  const c = clock();
  const { logger, lines } = memoryLogger('info');
  const board = new TransferBoard({ mode: 'plain', logger, now: c.now, intervalMs: 5000 });
  const m = board.begin({ phase: 'push', subject: 'r/app', blob: blob('b'), total: 100 * MIB });
  for (let s = 1; s <= 12; s++) {
    c.tick(1000);
    m.update(s * MIB);
  }
  assert.deepEqual(lines, [
    'push r/app: 5.0/100.0 MiB (5%) 1.0 MiB/s',
    'push r/app: 10.0/100.0 MiB (10%) 1.0 MiB/s',
  ]);
  m.end(false);
  assert.equal(lines.at(-1), 'push r/app: stopped at 12.0/100.0 MiB');
});

test('blobs of one subject add up into one group; small blobs are not shown', () => {
  const c = clock();
  const { logger, lines } = memoryLogger('info');
  const board = new TransferBoard({ mode: 'plain', logger, now: c.now });
  const small = board.begin({ phase: 'pull', subject: 'x', blob: blob('c'), total: 1000 });
  small.update(1000);
  small.end(true);
  assert.deepEqual(lines, [], 'a 1000-byte blob is not shown');
  const a = board.begin({ phase: 'pull', subject: 'x', blob: blob('d'), total: 2 * MIB });
  const b = board.begin({ phase: 'pull', subject: 'x', blob: blob('e'), total: 2 * MIB });
  a.update(MIB);
  assert.deepEqual(lines, ['pull x: 1.0/4.0 MiB (25%) 0.0 KiB/s']);
  c.tick(2000);
  a.end(true);
  assert.equal(lines.length, 1, 'no summary while a blob of the group is in flight');
  b.end(true);
  assert.equal(lines.at(-1), 'pulled x: 4.0 MiB in 2.0 s (2.0 MiB/s)');
});

test('json: start, quarter and end events per blob, one object per line', () => {
  const c = clock();
  const out: string[] = [];
  const logger = new Logger({ format: 'json', sink: (l) => out.push(l) });
  const board = new TransferBoard({ mode: 'json', logger, now: c.now, intervalMs: 5000 });
  const m = board.begin({ phase: 'push', subject: 'r/app', blob: blob('f'), total: 8 * MIB });
  for (let i = 1; i <= 128; i++) m.update(i * (64 << 10));
  c.tick(800);
  m.end(true);
  const events = out.map((l) => JSON.parse(l) as Record<string, unknown>);
  const mine = events.filter((e) => e.type === 'progress');
  assert.deepEqual(
    mine.map((e) => [e.status, e.done]),
    [
      ['start', 0],
      ['progress', 2 * MIB],
      ['progress', 4 * MIB],
      ['progress', 6 * MIB],
      ['done', 8 * MIB],
    ],
  );
  assert.ok(mine.every((e) => e.phase === 'push' && e.blob === blob('f') && e.total === 8 * MIB));
  assert.equal(mine.at(-1)!.durationMs, 800);
  const summary = events.find((e) => e.type === 'progress-summary')!;
  assert.deepEqual(
    [summary.phase, summary.total, summary.ok, summary.durationMs],
    ['push', 8 * MIB, true, 800],
  );
});

function terminal(): { out: string[]; write(c: string | Uint8Array): void; columns: number } {
  const out: string[] = [];
  return { out, write: (c) => void out.push(c.toString()), columns: 50 };
}

test('tty: redrawn in place at most every 100 ms, cut to the width, other output above it', () => {
  const c = clock();
  const term = terminal();
  const status = new StatusLine(term, c.now);
  const logger = new Logger({ sink: (l) => status.write(`${l}\n`) });
  const board = new TransferBoard({ mode: 'tty', logger, status, now: c.now });
  const m = board.begin({ phase: 'pull', subject: 'debian', blob: blob('1'), total: 10 * MIB });
  c.tick(100);
  m.update(MIB);
  c.tick(50);
  m.update(2 * MIB); // held back: 50 ms after the last redraw
  c.tick(60);
  m.update(3 * MIB);
  assert.deepEqual(term.out, [
    '\rpull debian: [--------------------] 0.0/10.0 MiB ',
    '\r\x1b[Kpull debian: [##------------------] 1.0/10.0 MiB ',
    '\r\x1b[Kpull debian: [######--------------] 3.0/10.0 MiB ',
  ]);
  term.out.length = 0;
  logger.info('a log line');
  assert.deepEqual(term.out, [
    '\r\x1b[K',
    'a log line\n',
    '\rpull debian: [######--------------] 3.0/10.0 MiB ',
  ]);
  term.out.length = 0;
  status.write('partial RUN output'); // no newline: the status line waits for the line to end
  c.tick(200);
  m.update(4 * MIB);
  assert.deepEqual(term.out, ['\r\x1b[K', 'partial RUN output']);
  status.write(' ends\n');
  assert.equal(term.out.at(-1), '\rpull debian: [########------------] 4.0/10.0 MiB ');
  term.out.length = 0;
  m.end(true);
  assert.ok(term.out.includes('pulled debian: 10.0 MiB in 410 ms (24.4 MiB/s)\n'), JSON.stringify(term.out));
  assert.ok(!term.out.some((o) => o.includes('pull debian:')), 'the finished group leaves the live line');
  board.close();
});

test('tty: groups in flight share the line (no bar); quiet levels print no plain lines', () => {
  const c = clock();
  const term = terminal();
  term.columns = 200;
  const status = new StatusLine(term, c.now);
  const { logger } = memoryLogger('info');
  const board = new TransferBoard({ mode: 'tty', logger, status, now: c.now });
  board.begin({ phase: 'pull', subject: 'a', blob: blob('2'), total: MIB }).update(MIB / 2);
  c.tick(1000);
  board.begin({ phase: 'push', subject: 'r/b', blob: blob('3'), total: 2 * MIB });
  assert.equal(term.out.at(-1), '\r\x1b[Kpull a: 0.5/1.0 MiB 512.0 KiB/s  push r/b: 0.0/2.0 MiB 0.0 KiB/s');
  const quiet = memoryLogger('warn');
  const plain = new TransferBoard({ mode: 'plain', logger: quiet.logger, now: c.now });
  const m = plain.begin({ phase: 'pull', subject: 'a', blob: blob('4'), total: MIB });
  m.update(MIB);
  m.end(true);
  assert.deepEqual(quiet.lines, []);
});

test('meterStream counts what passes through; shortSubject names Docker Hub images as typed', async () => {
  const seen: number[] = [];
  await pipeline(
    Readable.from([Buffer.alloc(3), Buffer.alloc(5)]),
    meterStream({ update: (d) => seen.push(d), end: () => undefined }),
    new Writable({ write: (_c, _e, cb) => cb() }),
  );
  assert.deepEqual(seen, [0, 3, 8]);
  assert.equal(shortSubject('docker.io', 'library/debian'), 'debian');
  assert.equal(shortSubject('docker.io', 'bitnami/redis'), 'bitnami/redis');
  assert.equal(shortSubject('127.0.0.1:5000', 'base/debian'), '127.0.0.1:5000/base/debian');
});
