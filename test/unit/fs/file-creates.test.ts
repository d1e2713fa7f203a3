/**
 * The extractor's background creates (src/fs/file-creates.ts): small files in directories the
 * extraction made go to a worker thread. The tree must be the one the extracting thread alone makes,
 * entry for entry, whatever later entries do to those files; failures name the file.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { extractLayer } from '../../../src/fs/extract.ts';
import { KilnError } from '../../../src/util/errors.ts';
import { makeTar, type LayerEntry } from '../../helpers/hostile-layers.ts';

const MODES = [0o644, 0o755, 0o600, 0o4755, 0o2711, 0o1777, 0o444];
const OWNERS = [
  [0, 0],
  [1000, 1000],
  [65534, 65534],
  [33, 0],
] as const;

/**
 * 12 directories of 40 files (modes, owners, times, sizes vary), each followed by entries that rework
 * its files at once: while the files are still queued for the worker or being made by it.
 */
function layerEntries(): LayerEntry[] {
  const rework: Record<number, LayerEntry[]> = {
    // Bigger than the worker takes: made on the extracting thread, in the same directory.
    0: [{ name: 'opt/d0/big', content: randomBytes(1_200_000).toString('latin1') }],
    1: [
      { name: 'opt/d1/f3', content: 'replaced by a second entry' },
      { name: 'opt/d1/f4', type: 'symlink', linkname: '../d0/f1' },
      { name: 'opt/d1/f5/', type: 'directory', mode: 0o750 },
      { name: 'opt/d1/f5/inside', content: 'a file in the directory that replaced a file' },
    ],
    2: [{ name: 'opt/d2/link', type: 'link', linkname: 'opt/d2/f7' }],
    3: [{ name: 'opt/d3/.wh.f8' }],
    4: [{ name: 'opt/d4/.wh..wh..opq' }, { name: 'opt/d4/after-opaque', content: 'kept' }],
    // The directory d5, its files perhaps not made yet, becomes a symlink: nothing may land through it.
    5: [{ name: 'opt/d5', type: 'symlink', linkname: 'd6' }],
    6: [{ name: 'opt/d5/through-the-link', content: 'lands in the symlink d5 resolves to, inside the root' }],
  };
  const out: LayerEntry[] = [{ name: 'opt/', type: 'directory', mode: 0o755 }];
  let n = 0;
  for (let d = 0; d < 12; d++) {
    // Some directories come as entries (setgid among them), some only implicitly as parents.
    if (d % 3 !== 2)
      out.push({ name: `opt/d${d}/`, type: 'directory', mode: d % 3 ? 0o2775 : 0o755, gid: d % 3 ? 50 : 0 });
    for (let f = 0; f < 40; f++, n++) {
      const [uid, gid] = OWNERS[n % OWNERS.length]!;
      out.push({
        name: `opt/d${d}/f${f}`,
        mode: MODES[n % MODES.length]!,
        uid,
        gid,
        mtime: new Date(1_600_000_000_000 + n * 7_000),
        content: randomBytes(n % 5 === 0 ? 0 : (n * 37) % 3000).toString('latin1'),
      });
    }
    out.push(...(rework[d] ?? []));
  }
  return out;
}

/** Every entry under root: type, mode, owner, mtime (s), size, links, content digest or link target. */
function treeOf(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, rel: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const r = `${rel}/${name}`;
      const st = lstatSync(p);
      const kind = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : st.isFile() ? 'f' : '?';
      const what = st.isFile()
        ? createHash('sha256').update(readFileSync(p)).digest('hex').slice(0, 16)
        : st.isSymbolicLink()
          ? readlinkSync(p)
          : '';
      const mtime = st.isDirectory() ? '' : String(Math.floor(st.mtimeMs / 1000));
      out.push(
        `${r} ${kind} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${mtime} ${st.size} ${st.nlink} ${what}`,
      );
      if (st.isDirectory()) walk(p, r);
    }
  };
  walk(root, '');
  return out;
}

async function extractInto(layer: Buffer, backgroundAfter: number) {
  const root = await mkdtemp(join(tmpdir(), 'kiln-bg-'));
  const r = await extractLayer(Readable.from([layer]), root, { backgroundAfter });
  return { root, ...r };
}

describe('background file creates', () => {
  test('the worker makes the same tree, entry for entry, as the extracting thread alone', async () => {
    const layer = gzipSync(await makeTar(layerEntries()));
    const alone = await extractInto(layer, Infinity);
    const worker = await extractInto(layer, 0);
    const byDefault = await extractInto(layer, 200);
    try {
      assert.equal(alone.background, 0);
      // Every small regular file of the 480 went to the worker, the big one did not.
      assert.ok(worker.background >= 480, `${worker.background} files by the worker`);
      assert.ok(byDefault.background > 0 && byDefault.background < worker.background);
      const want = treeOf(alone.root);
      assert.ok(want.length > 440, `${want.length} entries`); // 480 files, less the 40 of d5
      assert.deepEqual(treeOf(worker.root), want);
      assert.deepEqual(treeOf(byDefault.root), want);
      // Spot checks that the trees are the layer's, not merely alike.
      const line = (p: string): string => want.find((l) => l.startsWith(`${p} `))!;
      assert.match(line('/opt/d0/f3'), / f 4755 33:0 /); // setuid kept: chown came before chmod
      assert.match(line('/opt/d1/f3'), / f 644 0:0 \d+ 26 1 /);
      assert.match(line('/opt/d1/f4'), / l .* \.\.\/d0\/f1$/);
      assert.match(line('/opt/d1/f5'), / d 750 /);
      assert.match(line('/opt/d2/link'), / f .* 2 /);
      assert.equal(line('/opt/d3/f8'), undefined);
      // The opaque marker removes lower entries only: the layer's own 40 files in d4 stay.
      assert.equal(want.filter((l) => l.startsWith('/opt/d4/')).length, 41);
      // d5 became a symlink to d6: its 40 files went with the directory.
      assert.match(line('/opt/d5'), / l .* d6$/);
      assert.ok(line('/opt/d6/through-the-link'));
    } finally {
      for (const r of [alone, worker, byDefault]) await rm(r.root, { recursive: true, force: true });
    }
  });

  test('a file the worker cannot create fails the layer with BAD_LAYER naming it', async () => {
    const long = 'n'.repeat(300); // over NAME_MAX: open fails with ENAMETOOLONG
    const entries: LayerEntry[] = [
      ...Array.from({ length: 30 }, (_, i) => ({ name: `d/f${i}`, content: `file ${i}` })),
      { name: `d/${long}`, content: 'x' },
      ...Array.from({ length: 30 }, (_, i) => ({ name: `e/f${i}`, content: `file ${i}` })),
    ];
    const layer = await makeTar(entries);
    for (const backgroundAfter of [Infinity, 0]) {
      const root = await mkdtemp(join(tmpdir(), 'kiln-bg-'));
      try {
        await assert.rejects(
          extractLayer(Readable.from([layer]), root, { backgroundAfter }),
          (e: unknown) =>
            e instanceof KilnError &&
            e.code === 'BAD_LAYER' &&
            /name too long/i.test(e.message) &&
            (backgroundAfter === 0 ? e.message.includes(long) : true),
        );
      } finally {
        await rm(root, { recursive: true, force: true });
      }
    }
  });

  test('a layer over an existing tree: files in directories it did not make stay on the extracting thread', async () => {
    const root = await mkdtemp(join(tmpdir(), 'kiln-bg-'));
    try {
      await mkdir(join(root, 'usr/bin'), { recursive: true });
      const entries: LayerEntry[] = [
        ...Array.from({ length: 50 }, (_, i) => ({ name: `usr/bin/tool${i}`, content: `tool ${i}` })),
        ...Array.from({ length: 50 }, (_, i) => ({ name: `usr/share/new/f${i}`, content: `new ${i}` })),
      ];
      const r = await extractLayer(Readable.from([await makeTar(entries)]), root, { backgroundAfter: 0 });
      // usr/share/new (made by this layer) goes to the worker; usr/bin (there before) cannot.
      assert.equal(r.background, 50);
      assert.equal(readFileSync(join(root, 'usr/bin/tool49'), 'utf8'), 'tool 49');
      assert.equal(readFileSync(join(root, 'usr/share/new/f49'), 'utf8'), 'new 49');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
