import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import { extractLayer } from '../../../src/fs/extract.ts';
import { writeLayer } from '../../../src/fs/layer-writer.ts';
import { inflateGzipFile } from '../../../src/fs/zstd.ts';
import { KilnError } from '../../../src/util/errors.ts';
import {
  hostileLayers,
  makeCanary,
  makeTar,
  newTarget,
  snapshotHost,
  type LayerEntry,
} from '../../helpers/hostile-layers.ts';

type Entry = LayerEntry;

async function tmp(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `kiln-${prefix}-`));
}

const fromBuf = (b: Buffer): Readable => Readable.from([b]);

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** lower tree: /a/{one,sub/deep}, /b/{keep,gone}, /c */
async function lowerTree(root: string): Promise<void> {
  await mkdir(join(root, 'a/sub'), { recursive: true });
  await writeFile(join(root, 'a/one'), '1');
  await writeFile(join(root, 'a/sub/deep'), 'd');
  await mkdir(join(root, 'b'));
  await writeFile(join(root, 'b/keep'), 'k');
  await writeFile(join(root, 'b/gone'), 'g');
  await writeFile(join(root, 'c'), 'c');
}

describe('extractLayer', () => {
  test('whiteouts delete lower entries and opaque dirs keep only this layer', async () => {
    const root = await tmp('root');
    try {
      await lowerTree(root);
      const seen: string[] = [];
      const layer = await makeTar([
        { name: 'a/', type: 'directory', mode: 0o755 },
        { name: 'a/-early', content: 'before the marker' },
        { name: 'a/-implicit/file', content: 'parent made without a dir entry' },
        { name: 'a/.wh..wh..opq' },
        { name: 'a/new', content: 'new' },
        { name: 'a/sub/', type: 'directory', mode: 0o755 },
        { name: 'a/sub/fresh', content: 'f' },
        { name: 'b/.wh.gone' },
        { name: '.wh.c' },
      ]);
      const r = await extractLayer(fromBuf(gzipSync(layer)), root, {
        onWhiteout: (p, kind) => seen.push(`${kind}:${p}`),
      });
      assert.equal(r.entries, 9);
      assert.deepEqual((await readdir(join(root, 'a'))).sort(), ['-early', '-implicit', 'new', 'sub']);
      assert.deepEqual(
        await readdir(join(root, 'a/sub')),
        ['fresh'],
        'lower content of a re-created dir is hidden',
      );
      assert.deepEqual(await readdir(join(root, 'b')), ['keep']);
      assert.equal(await exists(join(root, 'c')), false);
      assert.equal(await exists(join(root, 'a/.wh..wh..opq')), false, 'markers are not written');
      assert.deepEqual(seen.sort(), ['opaque:/a', 'whiteout:/b/gone', 'whiteout:/c']);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('a file replaces a dir and a dir replaces a file', async () => {
    const root = await tmp('root');
    try {
      await lowerTree(root);
      const outside = await tmp('outside');
      await symlink(join(outside, 'target'), join(root, 'dangling'));
      await extractLayer(
        fromBuf(
          await makeTar([
            { name: 'a', content: 'now a file' },
            { name: 'c/', type: 'directory' },
            { name: 'c/inside', content: 'x' },
            { name: 'dangling', content: 'replaces the symlink, not its target' },
          ]),
        ),
        root,
      );
      assert.equal(await readFile(join(root, 'a'), 'utf8'), 'now a file');
      assert.equal(await readFile(join(root, 'c/inside'), 'utf8'), 'x');
      assert.ok((await lstat(join(root, 'dangling'))).isFile());
      assert.equal(await exists(join(outside, 'target')), false);
      await rm(outside, { recursive: true, force: true });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  const escapes: Array<{
    name: string;
    entries: (outside: string, tag: string) => Entry[];
    inside: string[];
  }> = [
    { name: 'relative ../x', entries: (_o, t) => [{ name: `../${t}`, content: 'x' }], inside: ['TAG'] },
    { name: 'a/../../x', entries: (_o, t) => [{ name: `a/../../${t}`, content: 'x' }], inside: ['TAG'] },
    { name: 'absolute /x', entries: (o, t) => [{ name: `${o}/${t}`, content: 'x' }], inside: ['OUT/TAG'] },
    {
      name: 'symlink evil -> / then evil/<outside>/x',
      entries: (o, t) => [
        { name: 'evil', type: 'symlink', linkname: '/' },
        { name: `evil/${o.slice(1)}/${t}`, content: 'x' },
      ],
      inside: ['OUT/TAG'],
    },
    {
      name: 'symlink up -> ../../../.. then up/x',
      entries: (_o, t) => [
        { name: 'up', type: 'symlink', linkname: '../../../..' },
        { name: `up/${t}`, content: 'x' },
      ],
      inside: ['TAG'],
    },
    {
      name: 'symlink to the outside dir, then a dir entry through it',
      entries: (o, t) => [
        { name: 'out', type: 'symlink', linkname: o },
        { name: `out/${t}/`, type: 'directory' },
      ],
      inside: ['OUT/TAG'],
    },
  ];
  for (const c of escapes) {
    test(`path escape: ${c.name} stays inside the root`, async () => {
      const base = await tmp('base');
      const root = join(base, 'r1', 'r2', 'root');
      const outside = await tmp('outside');
      const tag = `kiln-escape-${randomBytes(4).toString('hex')}`;
      try {
        await mkdir(root, { recursive: true });
        await extractLayer(fromBuf(await makeTar(c.entries(outside, tag))), root);
        for (const dir of [
          '/',
          '/etc',
          '/tmp',
          tmpdir(),
          base,
          join(base, 'r1'),
          join(base, 'r1/r2'),
          outside,
        ]) {
          assert.equal(existsSync(join(dir, tag)), false, `${tag} written in ${dir}`);
        }
        for (const p of c.inside) {
          const rel = p.replace('OUT', outside.slice(1)).replace('TAG', tag);
          assert.ok(existsSync(join(root, rel)), `expected ${rel} inside the root`);
        }
      } finally {
        await rm(base, { recursive: true, force: true });
        await rm(outside, { recursive: true, force: true });
      }
    });
  }

  for (const linkname of ['../../etc/passwd', 'a/../../../etc/passwd', '..']) {
    test(`hardlink to ${linkname} is refused with UNSAFE_LAYER`, async () => {
      const base = await tmp('base');
      const root = join(base, 'x', 'root');
      try {
        await mkdir(root, { recursive: true });
        await assert.rejects(
          extractLayer(fromBuf(await makeTar([{ name: 'pw', type: 'link', linkname }])), root),
          (e: Error & { code?: string; category?: string }) =>
            e.name === 'KilnError' && e.code === 'UNSAFE_LAYER' && e.category === 'fs',
        );
        assert.equal(await exists(join(root, 'pw')), false);
      } finally {
        await rm(base, { recursive: true, force: true });
      }
    });
  }

  test('a hardlink through a symlink to / links the file inside the root', async () => {
    const root = await tmp('root');
    try {
      await mkdir(join(root, 'etc'));
      await writeFile(join(root, 'etc/passwd'), 'inside\n');
      await extractLayer(
        fromBuf(
          await makeTar([
            { name: 'evil', type: 'symlink', linkname: '/' },
            { name: 'pw', type: 'link', linkname: 'evil/etc/passwd' },
          ]),
        ),
        root,
      );
      assert.equal((await lstat(join(root, 'pw'))).ino, (await lstat(join(root, 'etc/passwd'))).ino);
      assert.equal(await readlink(join(root, 'evil')), '/');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('ownership, modes, mtimes (dirs after their contents), devices and binary xattrs from PAX', async () => {
    const root = await tmp('root');
    try {
      const cap = Buffer.from('0100000200200000000000000000000000000000', 'hex');
      const layer = await makeTar([
        { name: 'd/', type: 'directory', mode: 0o2750, uid: 42, gid: 43, mtime: new Date(1_234_000) },
        { name: 'd/f', content: 'x', mode: 0o4711, uid: 1234, gid: 5678, mtime: new Date(5_000_000) },
        { name: 'd/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
        { name: 'd/p', type: 'fifo', mode: 0o600 },
        { name: 'bin/', type: 'directory', mode: 0o755 },
        { name: 'bin/ping', content: 'elf', mode: 0o755 },
      ]);
      // tar-stream writes PAX values as UTF-8: splice a binary security.capability record in by hand.
      const withCap = await addPaxXattr(layer, 'bin/ping', 'security.capability', cap);
      await extractLayer(fromBuf(withCap), root, { createDevices: true });
      const d = await lstat(join(root, 'd'));
      assert.equal(d.mode & 0o7777, 0o2750);
      assert.deepEqual([d.uid, d.gid], [42, 43]);
      assert.equal(d.mtimeMs, 1_234_000, 'dir mtime survives the files written into it');
      const f = await lstat(join(root, 'd/f'));
      assert.equal(f.mode & 0o7777, 0o4711, 'setuid survives chown');
      assert.deepEqual([f.uid, f.gid, f.mtimeMs], [1234, 5678, 5_000_000]);
      assert.ok((await lstat(join(root, 'd/p'))).isFIFO());
      const dev = await lstat(join(root, 'd/null')).catch(() => null);
      if (dev) assert.ok(dev.isCharacterDevice());
      const { execFileSync } = await import('node:child_process');
      const got = execFileSync(
        'getfattr',
        ['-n', 'security.capability', '-e', 'hex', '--absolute-names', join(root, 'bin/ping')],
        { encoding: 'utf8' },
      );
      assert.match(got, new RegExp(`security.capability=0x${cap.toString('hex')}`));
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('garbage input is a KilnError, not a crash', async () => {
    const root = await tmp('root');
    try {
      await assert.rejects(
        extractLayer(fromBuf(gzipSync(Buffer.alloc(2048, 0x41))), root),
        (e: Error & { code?: string }) => e.name === 'KilnError' && e.code === 'BAD_LAYER',
      );
      await assert.rejects(
        extractLayer(fromBuf(gzipSync(Buffer.from('x')).subarray(0, 8)), root),
        (e: Error & { code?: string }) => e.name === 'KilnError',
      );
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('gzip layers through the gzip process', () => {
  // Layers inflate in a gzip child process (src/fs/zstd.ts, gunzipDecoder), as tar -xzf does, so
  // that inflating goes on while the extracting thread creates files. Its failures are its own.
  const layerOf = async (n: number): Promise<Buffer> =>
    gzipSync(
      await makeTar(
        Array.from({ length: n }, (_, i) => ({ name: `d/f${i}`, content: randomBytes(700).toString('hex') })),
      ),
    );

  test('a whole layer extracts every entry with its content', async () => {
    const root = await tmp('root');
    try {
      const r = await extractLayer(Readable.from([await layerOf(300)]), root);
      assert.equal(r.entries, 300);
      assert.equal((await readdir(join(root, 'd'))).length, 300);
      assert.equal((await readFile(join(root, 'd/f299'), 'utf8')).length, 1400);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('zero padding after the gzip member (some registries and tools add it) is accepted', async () => {
    const root = await tmp('root');
    try {
      const r = await extractLayer(
        Readable.from([Buffer.concat([await layerOf(20), Buffer.alloc(1024)])]),
        root,
      );
      assert.equal(r.entries, 20);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('a truncated gzip stream fails with GUNZIP_FAILED, a corrupt one with an error: never a short layer', async () => {
    const root = await tmp('root');
    try {
      const good = await layerOf(200);
      // Cut short: gzip itself reports it (zlib would have made this a tar error).
      await assert.rejects(
        extractLayer(Readable.from([good.subarray(0, Math.floor(good.length / 2))]), root),
        (e: Error & { code?: string }) =>
          e.name === 'KilnError' &&
          e.code === 'GUNZIP_FAILED' &&
          /gzip failed to decompress a layer .*unexpected end of file/.test(e.message),
      );
      // Damaged in the middle: whichever notices first (the tar reader or gzip's CRC) fails the layer.
      const corrupt = Buffer.from(good);
      for (let i = 200; i < 260; i++) corrupt[i] = corrupt[i]! ^ 0x5a;
      await assert.rejects(
        extractLayer(Readable.from([corrupt]), root),
        (e: Error & { code?: string }) =>
          e.name === 'KilnError' && (e.code === 'GUNZIP_FAILED' || e.code === 'BAD_LAYER'),
      );
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

/** Inserts a PAX header with one binary SCHILY.xattr record before the entry named `name`. */
async function addPaxXattr(tarBuf: Buffer, name: string, key: string, value: Buffer): Promise<Buffer> {
  const body = Buffer.concat([Buffer.from(` SCHILY.xattr.${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 2;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  const rec = Buffer.concat([Buffer.from(String(len)), body]);
  const hdr = Buffer.alloc(512);
  hdr.write('PaxHeaders/x', 0);
  hdr.write('0000644\0', 100);
  hdr.write('0000000\0', 108);
  hdr.write('0000000\0', 116);
  hdr.write(rec.length.toString(8).padStart(11, '0') + '\0', 124);
  hdr.write('00000000000\0', 136);
  hdr.write('x', 156);
  hdr.write('ustar\x0000', 257, 'latin1');
  hdr.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of hdr) sum += b;
  hdr.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  const pad = Buffer.alloc((512 - (rec.length % 512)) % 512);
  for (let off = 0; off < tarBuf.length; off += 512) {
    if (
      tarBuf
        .subarray(off, off + 100)
        .toString('latin1')
        .replace(/\0.*$/s, '') === name
    ) {
      return Buffer.concat([tarBuf.subarray(0, off), hdr, rec, pad, tarBuf.subarray(off)]);
    }
  }
  throw new Error(`no entry ${name}`);
}

describe('extractLayer against the hostile layers (test/helpers/hostile-layers.ts)', () => {
  // Twice: files made on the extracting thread, and (backgroundAfter 0) every small file in a fresh
  // directory made by the worker thread of src/fs/file-creates.ts.
  test('each layer is contained or refused with an fs error; the host canary is untouched', async () => {
    const base = await tmp('hostile');
    const target = newTarget(join(base, 'canary'));
    const layers = await hostileLayers(target);
    assert.ok(layers.length >= 30, `${layers.length} layers`);
    const outcomes: string[] = [];
    const problems: string[] = [];
    try {
      for (const backgroundAfter of [undefined, 0])
        for (const l of layers) {
          await makeCanary(target, { uid: 0, gid: 0 });
          const before = snapshotHost(target, [base]);
          const root = join(base, `root-${l.id}`, 'r');
          await mkdir(root, { recursive: true });
          let err: unknown;
          try {
            await extractLayer(fromBuf(l.blob), root, { skipDevices: true, backgroundAfter });
          } catch (e) {
            err = e;
          }
          const what = `${l.id} (${l.what}${backgroundAfter === 0 ? ', worker' : ''})`;
          if (snapshotHost(target, [base]) !== before) problems.push(`${what} changed the host`);
          if (err && l.expect === 'contained') problems.push(`${what} failed: ${String(err)}`);
          if (err && !(err instanceof KilnError && err.category === 'fs'))
            problems.push(`${what}: not an fs KilnError: ${String(err)}`);
          if (!err && l.expect === 'refused') problems.push(`${what} was accepted`);
          if (!err) {
            try {
              l.inside?.(root);
            } catch (e) {
              problems.push(`${what}: ${(e as Error).message}`);
            }
          }
          outcomes.push(`${l.id} ${err ? `refused ${(err as KilnError).code}` : 'contained'}`);
          await rm(join(base, `root-${l.id}`), { recursive: true, force: true });
        }
    } finally {
      await rm(base, { recursive: true, force: true });
    }
    assert.deepEqual(problems, []);
    assert.equal(outcomes.length, 2 * layers.length);
    if (process.env.KILN_HOSTILE_REPORT) console.log(outcomes.join('\n'));
  });

  test('devices become placeholders the layer writer turns back into the devices', async () => {
    const root = await tmp('devroot');
    const out = await tmp('devout');
    try {
      const skipped: string[] = [];
      await extractLayer(
        fromBuf(
          await makeTar([
            { name: 'dev/', type: 'directory' },
            { name: 'dev/kmsg', type: 'character-device', devmajor: 1, devminor: 11, mode: 0o600, uid: 7 },
            { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 16, mode: 0o660 },
          ]),
        ),
        root,
        { skipDevices: true, onSkipped: (p) => skipped.push(p) },
      );
      assert.deepEqual(skipped, ['/dev/kmsg', '/dev/sda']);
      const st = await lstat(join(root, 'dev/kmsg'));
      assert.ok(st.isFile() && st.size === 0, 'a placeholder, not a device');
      assert.equal(st.mode & 0o7777, 0o600);
      assert.equal(st.uid, 7);
      const layer = await writeLayer(
        { root, changed: ['/dev', '/dev/kmsg', '/dev/sda'], deleted: [], opaque: [] },
        { compression: 'none', compressionLevel: 0, outDir: out },
      );
      const got: Array<[string, string, number, number, number]> = [];
      const ex = tar.extract();
      const done = (async () => {
        for await (const e of ex) {
          got.push([
            e.header.name,
            e.header.type ?? '',
            e.header.devmajor ?? 0,
            e.header.devminor ?? 0,
            e.header.mode ?? 0,
          ]);
          assert.equal(
            (e.header.pax as Record<string, string> | undefined)?.['SCHILY.xattr.user.kiln.device'],
            undefined,
            'the mark is not written',
          );
          e.resume();
        }
      })();
      Readable.from([await readFile(layer.path)]).pipe(ex);
      await done;
      assert.deepEqual(got, [
        ['dev/', 'directory', 0, 0, 0o755],
        ['dev/kmsg', 'character-device', 1, 11, 0o600],
        ['dev/sda', 'block-device', 8, 16, 0o660],
      ]);
    } finally {
      await rm(root, { recursive: true, force: true });
      await rm(out, { recursive: true, force: true });
    }
  });
});

describe('inflateGzipFile (a cached layer inflated ahead, src/fs/zstd.ts)', () => {
  test('a gzip blob becomes its plain tar; anything else leaves no file and says false', async () => {
    const dir = await tmp('inflate');
    try {
      const tarBytes = await makeTar([{ name: 'a.txt', content: 'inflated' }]);
      await writeFile(join(dir, 'layer.gz'), gzipSync(tarBytes));
      assert.equal(await inflateGzipFile(join(dir, 'layer.gz'), join(dir, 'layer.tar')), true);
      assert.ok((await readFile(join(dir, 'layer.tar'))).equals(tarBytes));
      // The plain tar extracts as the blob would.
      const root = join(dir, 'root');
      await mkdir(root);
      await extractLayer(createReadStream(join(dir, 'layer.tar')), root);
      assert.equal(await readFile(join(root, 'a.txt'), 'utf8'), 'inflated');

      await writeFile(join(dir, 'plain'), tarBytes);
      assert.equal(await inflateGzipFile(join(dir, 'plain'), join(dir, 'plain.tar')), false);
      assert.equal(existsSync(join(dir, 'plain.tar')), false);
      const cut = gzipSync(tarBytes).subarray(0, 40);
      await writeFile(join(dir, 'cut.gz'), cut);
      assert.equal(await inflateGzipFile(join(dir, 'cut.gz'), join(dir, 'cut.tar')), false);
      assert.equal(existsSync(join(dir, 'cut.tar')), false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
