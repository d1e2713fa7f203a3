import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { formatSummary, humanDuration, humanSize, truncate } from '../../../src/cli/summary.ts';
import type { BuildResult } from '../../../src/result.ts';

const digest = `sha256:${'a'.repeat(64)}`;
const imageId = `sha256:${'b'.repeat(64)}`;

function result(over: Partial<BuildResult> = {}): BuildResult {
  return {
    digest,
    imageId,
    destinations: ['registry.local/app:1'],
    pushed: true,
    size: 3 * 1024 * 1024 + 512 * 1024,
    layers: 4,
    isolation: { rung: 'rootless', reason: 'user namespace with a full subuid map' },
    steps: [
      { stage: 'build', instruction: 'FROM golang:1.22', line: 1, durationMs: 1200, cache: 'none' },
      {
        stage: 'build',
        instruction: 'RUN go build -o /out/app ./cmd/app && strip /out/app && echo done with a long tail',
        line: 4,
        durationMs: 65_000,
        cache: 'miss',
        cacheReason: 'file ./go.sum changed',
      },
      { stage: '1', instruction: 'COPY --from=build /out/app /app', line: 7, durationMs: 40, cache: 'hit' },
    ],
    durationMs: 71_500,
    ...over,
  };
}

describe('humanSize', () => {
  for (const [bytes, want] of [
    [0, '0 B'],
    [1023, '1023 B'],
    [1024, '1.0 KiB'],
    [1536, '1.5 KiB'],
    [3 * 1024 * 1024 + 512 * 1024, '3.5 MiB'],
    [150 * 1024 * 1024, '150 MiB'],
    [5 * 1024 ** 3, '5.0 GiB'],
    [-1, '?'],
  ] as const) {
    test(`${bytes} → ${want}`, () => assert.equal(humanSize(bytes), want));
  }
});

describe('humanDuration', () => {
  for (const [ms, want] of [
    [0, '0ms'],
    [850, '850ms'],
    [1000, '1.0s'],
    [12_345, '12.3s'],
    [65_000, '1m05s'],
    [125_000, '2m05s'],
    [3_723_000, '1h02m03s'],
  ] as const) {
    test(`${ms} → ${want}`, () => assert.equal(humanDuration(ms), want));
  }
});

describe('truncate', () => {
  for (const [text, width, want] of [
    ['short', 10, 'short'],
    ['exactly10!', 10, 'exactly10!'],
    ['this is too long', 10, 'this is t…'],
    ['RUN a \\\n    && b', 40, 'RUN a \\ && b'],
  ] as const) {
    test(`${JSON.stringify(text)}/${width}`, () => assert.equal(truncate(text, width), want));
  }
});

describe('formatSummary', () => {
  test('header fields', () => {
    const s = formatSummary(result());
    for (const want of [
      /image: +registry\.local\/app:1$/m,
      /pushed: +yes$/m,
      new RegExp(`digest: +${digest}$`, 'm'),
      new RegExp(`image id: +${imageId}$`, 'm'),
      /size: +3\.5 MiB \(3670016 bytes\)$/m,
      /layers: +4$/m,
      /time: +1m12s$/m,
      /isolation: +rootless \(user namespace with a full subuid map\)$/m,
      /cache: +1 hit, 1 miss, 1 uncached$/m,
    ])
      assert.match(s, want);
  });

  test('one table row per step, in order, with cache status and reason', () => {
    const lines = formatSummary(result()).split('\n');
    const head = lines.findIndex((l) => /STAGE\s+LINE\s+INSTRUCTION\s+TIME\s+CACHE/.test(l));
    assert.ok(head > 0, 'table header present');
    const rows = lines.slice(head + 1, head + 4);
    assert.match(rows[0]!, /^ +build +1 +FROM golang:1\.22 +1\.2s +-$/);
    assert.match(rows[1]!, /^ +build +4 +RUN go build .*… +1m05s +miss \(file \.\/go\.sum changed\)$/);
    assert.match(rows[2]!, /^ +1 +7 +COPY --from=build \/out\/app \/app +40ms +hit$/);
    // Columns line up: every row's TIME column ends at the same offset as the header's.
    const timeEnd = (l: string, t: string): number => l.indexOf(t) + t.length;
    assert.equal(timeEnd(rows[0]!, '1.2s'), timeEnd(rows[1]!, '1m05s'));
    assert.equal(timeEnd(rows[2]!, '40ms'), timeEnd(rows[1]!, '1m05s'));
  });

  test('long instructions are cut to the width', () => {
    const s = formatSummary(result(), { instructionWidth: 20 });
    assert.ok(s.includes('RUN go build -o /ou…'), s);
    assert.ok(!s.includes('long tail'));
  });

  test('several destinations, not pushed, no steps', () => {
    const s = formatSummary(result({ destinations: ['a/b:1', 'a/b:latest'], pushed: false, steps: [] }));
    assert.match(s, /images: +a\/b:1\n +a\/b:latest\n/);
    assert.match(s, /pushed: +no$/m);
    assert.ok(!s.includes('STAGE'));
  });

  test('no destination', () => {
    assert.match(formatSummary(result({ destinations: [], pushed: false })), /image: +\(no destination\)$/m);
  });
});
