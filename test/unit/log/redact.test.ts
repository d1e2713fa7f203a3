import { test } from 'node:test';
import assert from 'node:assert/strict';
import { memoryLogger } from '../../../src/log/logger.ts';

function through(secrets: string[], chunks: string[]): string {
  const { logger } = memoryLogger();
  for (const s of secrets) logger.addSecret(s);
  let out = '';
  const w = logger.redactingWriter((c) => (out += c.toString('utf8')));
  for (const c of chunks) w.write(Buffer.from(c));
  w.end();
  return out;
}

test('a secret split across chunks, at any point, is redacted', () => {
  const secret = 'hunter2-Secret';
  const text = `before ${secret} middle ${secret}${secret} after`;
  for (let i = 1; i < text.length; i++) {
    assert.equal(
      through([secret], [text.slice(0, i), text.slice(i)]),
      'before *** middle ****** after',
      `cut at ${i}`,
    );
  }
  assert.equal(through([secret], [...text]), 'before *** middle ****** after', 'one character per chunk');
});

test('output that only looks like a secret start is held back, then let through at the end', () => {
  assert.equal(through(['abcdef'], ['x abc', 'dx', ' abc']), 'x abcdx abc');
});

test('secret files: trimmed and line by line; multi-byte characters across chunks survive', () => {
  const key = '-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----\n';
  assert.equal(through([key], ['line: MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n']), 'line: ***\n');
  assert.equal(through(['tok3n\n'], ['t=tok3n;']), 't=***;');
  const euro = Buffer.from('€ ok');
  const { logger } = memoryLogger();
  let out = '';
  const w = logger.redactingWriter((c) => (out += c.toString('utf8')));
  w.write(euro.subarray(0, 1));
  w.write(euro.subarray(1));
  w.end();
  assert.equal(out, '€ ok');
});
