import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { fetchUrl } from '../../../src/executor/fetch-url.ts';
import { KilnError } from '../../../src/util/errors.ts';

const body = Buffer.from('hello from a real http server\n');
const sha = 'sha256:' + createHash('sha256').update(body).digest('hex');
let server: Server;
let base = '';
let tmp = '';

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'kiln-fetch-'));
  server = createServer((req, res) => {
    if (req.url === '/redirect') {
      res.writeHead(302, { location: '/files/tool.sh' });
      res.end();
    } else if (req.url === '/files/tool.sh') {
      res.writeHead(200, { 'last-modified': 'Wed, 21 Oct 2015 07:28:00 GMT' });
      res.end(body);
    } else {
      res.writeHead(404);
      res.end('nope');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => {
  server.close();
  rmSync(tmp, { recursive: true, force: true });
});

test('downloads, names the file after the URL and takes Last-Modified as mtime', async () => {
  const f = await fetchUrl(`${base}/files/tool.sh`, tmp, { checksum: sha });
  assert.equal(f.name, 'tool.sh');
  assert.equal(f.digest, sha);
  assert.equal(f.size, body.length);
  assert.equal(f.mtime?.toISOString(), '2015-10-21T07:28:00.000Z');
  assert.deepEqual(readFileSync(f.path), body);
});

test('follows redirects but names the file after the URL as written', async () => {
  const f = await fetchUrl(`${base}/redirect`, tmp);
  assert.equal(f.name, 'redirect');
  assert.equal(f.digest, sha);
});

test('a wrong --checksum fails naming both digests', async () => {
  const wrong = 'sha256:' + '0'.repeat(64);
  await assert.rejects(fetchUrl(`${base}/files/tool.sh`, tmp, { checksum: wrong }), (e: unknown) => {
    assert.ok(e instanceof KilnError && e.code === 'CHECKSUM_MISMATCH');
    assert.ok(e.message.includes(wrong) && e.message.includes(sha));
    return true;
  });
});

test('sha512 checksums are supported', async () => {
  const s512 = 'sha512:' + createHash('sha512').update(body).digest('hex');
  const f = await fetchUrl(`${base}/files/tool.sh`, tmp, { checksum: s512 });
  assert.equal(f.digest, s512);
});

test('HTTP errors and malformed checksums are typed errors', async () => {
  await assert.rejects(
    fetchUrl(`${base}/missing`, tmp),
    (e: unknown) => e instanceof KilnError && /HTTP 404/.test(e.message),
  );
  await assert.rejects(fetchUrl(`${base}/files/tool.sh`, tmp, { checksum: 'md5:abc' }), /invalid --checksum/);
});
