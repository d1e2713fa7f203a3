import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import {
  chmod,
  chown,
  link,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { extractLayer } from '../../../src/fs/extract.ts';
import { writeLayer } from '../../../src/fs/layer-writer.ts';
import type { Diff } from '../../../src/fs/types.ts';

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const HAS_SETCAP = has('setcap');
const HAS_ZSTD = has('zstd');
const LONG = 'l'.repeat(60) + '/' + 'm'.repeat(70) + '/' + 'n'.repeat(90);

async function tmp(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `kiln-${prefix}-`));
}

/** A tree with one of each kind of entry; returns its image paths, sorted, parents included. */
async function makeTree(root: string): Promise<{ paths: string[]; cap: boolean }> {
  await mkdir(join(root, 'etc/deep/er'), { recursive: true });
  await writeFile(join(root, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
  await writeFile(join(root, 'etc/deep/er/file.txt'), 'nested\n');
  await writeFile(join(root, 'big.bin'), Buffer.alloc(300_000, 7));
  await symlink('etc/passwd', join(root, 'link'));
  await writeFile(join(root, 'hard1'), 'same inode\n');
  await link(join(root, 'hard1'), join(root, 'hard2'));
  execFileSync('mkfifo', [join(root, 'fifo')]);
  await writeFile(join(root, 'suid'), '#!/bin/sh\n');
  await chmod(join(root, 'suid'), 0o4755);
  await mkdir(join(root, 'sticky'));
  await chmod(join(root, 'sticky'), 0o1777);
  await writeFile(join(root, 'owned'), 'mine\n');
  await chown(join(root, 'owned'), 1234, 5678);
  await mkdir(join(root, LONG), { recursive: true });
  await writeFile(join(root, LONG, 'ünïcödé.txt'), 'long and non-ascii\n');
  let cap = false;
  if (HAS_SETCAP) {
    await writeFile(join(root, 'ping'), '\x7fELF-ish');
    await chmod(join(root, 'ping'), 0o755);
    execFileSync('setcap', ['cap_net_raw+ep', join(root, 'ping')]);
    cap = true;
  }
  await utimes(join(root, 'etc/passwd'), 1_000_000, 1_000_000);
  await utimes(join(root, 'etc/deep'), 2_000_000, 2_000_000);
  const paths: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const n of (await readdir(join(root, dir))).sort()) {
      const p = posix.join(dir, n);
      paths.push(p);
      if ((await lstat(join(root, p))).isDirectory()) await walk(p);
    }
  };
  await walk('/');
  return { paths: paths.sort(), cap };
}

function getCap(p: string): string {
  const r = spawnSync('getfattr', ['-h', '-n', 'security.capability', '-e', 'hex', '--absolute-names', p], {
    encoding: 'utf8',
  });
  return r.stdout.split('\n').find((l) => l.startsWith('security.capability=')) ?? '';
}

async function compareTrees(a: string, b: string, paths: string[]): Promise<void> {
  for (const p of paths) {
    const sa = await lstat(join(a, p));
    const sb = await lstat(join(b, p));
    assert.equal(sb.mode, sa.mode, `mode of ${p}`);
    assert.equal(sb.uid, sa.uid, `uid of ${p}`);
    assert.equal(sb.gid, sa.gid, `gid of ${p}`);
    if (!sa.isDirectory()) assert.equal(sb.size, sa.size, `size of ${p}`);
    assert.equal(Math.floor(sb.mtimeMs / 1000), Math.floor(sa.mtimeMs / 1000), `mtime of ${p}`);
    if (sa.isSymbolicLink()) assert.equal(await readlink(join(b, p)), await readlink(join(a, p)));
    if (sa.isFile())
      assert.deepEqual(await readFile(join(b, p)), await readFile(join(a, p)), `content of ${p}`);
    if (sa.isFile()) assert.equal(getCap(join(b, p)), getCap(join(a, p)), `capability of ${p}`);
  }
}

async function sha256File(p: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(p)) h.update(c as Buffer);
  return 'sha256:' + h.digest('hex');
}

function diffOf(root: string, paths: string[], extra: Partial<Diff> = {}): Diff {
  return { root, changed: paths, deleted: [], opaque: [], ...extra };
}

describe('writeLayer', () => {
  for (const compression of ['gzip', 'zstd', 'none'] as const) {
    test(
      `round trip through extractLayer (${compression})`,
      { skip: compression === 'zstd' && !HAS_ZSTD },
      async () => {
        const src = await tmp('src');
        const out = await tmp('out');
        const dst = await tmp('dst');
        try {
          const { paths, cap } = await makeTree(src);
          const layer = await writeLayer(diffOf(src, paths), {
            compression,
            compressionLevel: 3,
            outDir: out,
          });
          assert.equal(layer.entries, paths.length);
          const magic = (await readFile(layer.path)).subarray(0, 4).toString('hex');
          if (compression === 'gzip') assert.ok(magic.startsWith('1f8b'));
          if (compression === 'zstd') assert.equal(magic, '28b52ffd');
          const r = await extractLayer(createReadStream(layer.path), dst);
          assert.equal(r.entries, paths.length);
          await compareTrees(src, dst, paths);
          // hardlinks stay hardlinks, the fifo stays a fifo, capabilities survive
          assert.equal((await lstat(join(dst, 'hard1'))).ino, (await lstat(join(dst, 'hard2'))).ino);
          assert.ok((await lstat(join(dst, 'fifo'))).isFIFO());
          assert.equal((await lstat(join(dst, 'suid'))).mode & 0o7777, 0o4755);
          assert.equal((await lstat(join(dst, 'sticky'))).mode & 0o7777, 0o1777);
          if (cap) assert.match(getCap(join(dst, 'ping')), /^security\.capability=0x0[12]0000020020/);
        } finally {
          await Promise.all([src, out, dst].map((d) => rm(d, { recursive: true, force: true })));
        }
      },
    );
  }

  test('digest, size, diffId and file name agree with the file on disk (gzip -dc | sha256sum)', async () => {
    const src = await tmp('src');
    const out = await tmp('out');
    try {
      const { paths } = await makeTree(src);
      const layer = await writeLayer(diffOf(src, paths), {
        compression: 'gzip',
        compressionLevel: 6,
        outDir: out,
      });
      assert.equal(layer.digest, await sha256File(layer.path));
      assert.equal(layer.size, (await lstat(layer.path)).size);
      assert.equal(posix.basename(layer.path), layer.digest.slice(7));
      assert.equal(layer.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
      const sum = execFileSync('sh', ['-c', `gzip -dc "${layer.path}" | sha256sum`], { encoding: 'utf8' });
      assert.equal(layer.diffId, 'sha256:' + sum.split(' ')[0]);
      assert.deepEqual(
        (await readdir(out)).filter((n) => n.startsWith('.tmp')),
        [],
        'no temp file left',
      );
      const plain = await writeLayer(diffOf(src, paths), {
        compression: 'none',
        compressionLevel: 0,
        outDir: out,
      });
      assert.equal(plain.digest, plain.diffId);
      assert.equal(plain.diffId, layer.diffId);
    } finally {
      await Promise.all([src, out].map((d) => rm(d, { recursive: true, force: true })));
    }
  });

  test('GNU tar lists the layer: sorted names, no leading slash, dirs with /, numeric owners, links', async () => {
    const src = await tmp('src');
    const out = await tmp('out');
    try {
      const { paths } = await makeTree(src);
      const layer = await writeLayer(diffOf(src, paths, { deleted: ['/gone/file'], opaque: ['/etc'] }), {
        compression: 'gzip',
        compressionLevel: 6,
        outDir: out,
      });
      const list = execFileSync('tar', ['-tzf', layer.path], { encoding: 'utf8' }).trim().split('\n');
      const expected = [...paths.map((p) => p.slice(1)), 'etc/.wh..wh..opq', 'gone/.wh.file'];
      assert.deepEqual(list.map((n) => n.replace(/\/$/, '')).sort(), expected.sort());
      assert.deepEqual(
        list,
        [...list].sort((a, b) => (a.replace(/\/$/, '') < b.replace(/\/$/, '') ? -1 : 1)),
      );
      assert.ok(list.includes('etc/'), 'directories end with /');
      assert.ok(list.every((n) => !n.startsWith('/')));
      const verbose = execFileSync('tar', ['--numeric-owner', '-tvzf', layer.path], { encoding: 'utf8' });
      assert.match(verbose, /^h\S+ 0\/0 .* hard2 link to hard1$/m);
      assert.match(verbose, /^l\S+ 0\/0 .* link -> etc\/passwd$/m);
      assert.match(verbose, /^p\S+ .* fifo$/m);
      assert.match(verbose, /^-rwsr-xr-x 0\/0 .* suid$/m);
      assert.match(verbose, /^\S+ 1234\/5678 .* owned$/m);
    } finally {
      await Promise.all([src, out].map((d) => rm(d, { recursive: true, force: true })));
    }
  });

  test('clampMtime makes the layer reproducible even when mtimes change', async () => {
    const src = await tmp('src');
    const out = await tmp('out');
    try {
      const { paths } = await makeTree(src);
      const opts = { compression: 'gzip' as const, compressionLevel: 6, outDir: out, clampMtime: 500_000 };
      const a = await writeLayer(diffOf(src, paths), opts);
      const now = Date.now() / 1000;
      for (const p of ['hard1', 'owned', 'etc/passwd']) await utimes(join(src, p), now, now);
      const b = await writeLayer(diffOf(src, paths), opts);
      assert.equal(b.digest, a.digest);
      assert.equal(b.diffId, a.diffId);
      const verbose = execFileSync('tar', ['--full-time', '-tvzf', a.path], { encoding: 'utf8' });
      for (const line of verbose.trim().split('\n')) assert.match(line, / 1970-01-0[0-9] /, line);
      // without the clamp, touching a file changes the layer
      const c = await writeLayer(diffOf(src, paths), { ...opts, clampMtime: undefined });
      await utimes(join(src, 'owned'), now - 1000, now - 1000);
      const d = await writeLayer(diffOf(src, paths), { ...opts, clampMtime: undefined });
      assert.notEqual(c.digest, d.digest);
    } finally {
      await Promise.all([src, out].map((d) => rm(d, { recursive: true, force: true })));
    }
  });

  test('an empty diff is an empty tar with 0 entries', async () => {
    const src = await tmp('src');
    const out = await tmp('out');
    try {
      const layer = await writeLayer(diffOf(src, []), {
        compression: 'none',
        compressionLevel: 0,
        outDir: out,
      });
      assert.equal(layer.entries, 0);
      assert.equal(layer.size, 1024);
      assert.equal(execFileSync('tar', ['-tf', layer.path], { encoding: 'utf8' }), '');
    } finally {
      await Promise.all([src, out].map((d) => rm(d, { recursive: true, force: true })));
    }
  });

  test('a changed path that does not exist is a KilnError', async () => {
    const src = await tmp('src');
    try {
      await assert.rejects(
        writeLayer(diffOf(src, ['/missing']), { compression: 'gzip', compressionLevel: 6, outDir: src }),
        (e: Error & { code?: string }) => e.name === 'KilnError' && e.code === 'LAYER_WRITE_FAILED',
      );
    } finally {
      await rm(src, { recursive: true, force: true });
    }
  });

  test('contents cut across 1 MiB batches: files of every size round-trip, and every compression has the same diffId', async () => {
    const src = await tmp('src');
    const out = await tmp('out');
    const dst = await tmp('dst');
    try {
      const paths: string[] = ['/many'];
      await mkdir(join(src, 'many'));
      // 1,500 files of 700-1,600 bytes: headers and bodies fall across batch boundaries.
      for (let i = 0; i < 1500; i++) {
        const p = `/many/f${String(i).padStart(4, '0')}`;
        await writeFile(join(src, p), randomBytes(700 + ((i * 37) % 900)));
        paths.push(p);
      }
      for (const [name, size] of [
        ['big', 3.5 * 1024 * 1024 + 123],
        ['exact', 1024 * 1024],
        ['exact-less-header', 1024 * 1024 - 512],
        ['empty', 0],
      ] as const) {
        await writeFile(join(src, name), randomBytes(size));
        paths.push(`/${name}`);
      }
      paths.sort();
      const ids = new Set<string>();
      for (const compression of ['gzip', 'none', ...(HAS_ZSTD ? (['zstd'] as const) : [])] as const) {
        const layer = await writeLayer(diffOf(src, paths), { compression, compressionLevel: 1, outDir: out });
        assert.equal(layer.entries, paths.length);
        ids.add(layer.diffId);
        if (compression !== 'gzip') continue;
        const sum = execFileSync('sh', ['-c', `gzip -dc "${layer.path}" | sha256sum`], { encoding: 'utf8' });
        assert.equal(layer.diffId, 'sha256:' + sum.split(' ')[0]);
        await extractLayer(createReadStream(layer.path), dst);
        await compareTrees(src, dst, paths);
      }
      assert.equal(ids.size, 1, 'one uncompressed tar whatever the compression');
    } finally {
      await Promise.all([src, out, dst].map((d) => rm(d, { recursive: true, force: true })));
    }
  });

  test('an archive of exactly 1 MiB keeps its last batch: header, body and end blocks all there', async () => {
    const src = await tmp('src');
    const out = await tmp('out');
    try {
      // 512 (header) + body + 1024 (two zero blocks) = 1 MiB, with no padding.
      const body = randomBytes(1024 * 1024 - 1536);
      await writeFile(join(src, 'f'), body);
      const layer = await writeLayer(diffOf(src, ['/f']), {
        compression: 'none',
        compressionLevel: 0,
        outDir: out,
      });
      assert.equal(layer.size, 1024 * 1024);
      const gz = await writeLayer(diffOf(src, ['/f']), {
        compression: 'gzip',
        compressionLevel: 1,
        outDir: out,
      });
      assert.equal(gz.diffId, layer.diffId);
      assert.ok(execFileSync('tar', ['-xOf', layer.path, 'f']).equals(body));
    } finally {
      await Promise.all([src, out].map((d) => rm(d, { recursive: true, force: true })));
    }
  });
});
