/**
 * Hand-written hostile layers (tar-stream, in process) and the host canaries they aim at. Each layer
 * gets its own name prefix (`hNN`) so that the layers that must be contained can be stacked in one
 * image without meeting each other; the canary is a real host directory whose absolute path the
 * layers point their symlinks, hardlinks and names at. `snapshotHost` records what an escape would
 * change (content, mode, owner, xattrs, times, names), before and after.
 */
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import type { TestRegistry } from './registry.ts';
import { SetupError } from './setup-error.ts';

export type LayerEntry = Partial<tar.Header> & {
  name: string;
  content?: string | Buffer;
  pax?: Record<string, string>;
};

/** What a build (or an extraction) of the layer must do. */
export type Expect =
  /** Succeeds; the hostile entries stay inside the root. */
  | 'contained'
  /** Fails with a clear fs error (exit 8, KilnError category fs). */
  | 'refused'
  /** Either of the two, depending on the rung (ids that cannot be mapped, names the filesystem refuses). */
  | 'either';

export interface HostileLayer {
  id: string;
  what: string;
  expect: Expect;
  /** The layer blob, gzip-compressed (or deliberately broken). */
  blob: Buffer;
  /** Checks inside an extracted rootfs (unit tests extract as root with devices skipped). */
  inside?: (root: string) => void;
}

export interface HostileTarget {
  /** Absolute host directory the layers aim at. */
  canary: string;
  /** Name of files an escape by relative traversal would create (checked in `/`, tmp and the canary). */
  tag: string;
}

// --- tar making ------------------------------------------------------------------------------------

export async function makeTar(entries: LayerEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(Buffer.from(c as Uint8Array));
  })();
  for (const { content, ...h } of entries) {
    await new Promise<void>((resolve, reject) =>
      pack.entry({ mtime: new Date(1_000_000_000), ...h }, content ?? '', (err) =>
        err ? reject(err) : resolve(),
      ),
    );
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** security.capability v2 with cap_net_raw permitted+effective: every byte below 0x80 (PAX-safe). */
export const CAP_NET_RAW = Buffer.from('0100000200200000000000000000000000000000', 'hex');
const CAP_PAX = CAP_NET_RAW.toString('latin1');

/** A ustar header block by hand (for what tar-stream refuses to write: a size it does not hold). */
function rawHeader(name: string, type: string, size: number): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0, 'ascii');
  b.write('0000644\0', 100, 'ascii');
  b.write('0000000\0', 108, 'ascii');
  b.write('0000000\0', 116, 'ascii');
  b.write(size.toString(8).padStart(11, '0') + '\0', 124, 'ascii');
  b.write('00000000000\0', 136, 'ascii');
  b.write(type, 156, 'ascii');
  b.write('ustar\x0000', 257, 'latin1');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  return b;
}

// --- the catalog -----------------------------------------------------------------------------------

function isFile(p: string): boolean {
  return lstatSync(p, { throwIfNoEntry: false })?.isFile() === true;
}

function must(cond: boolean, what: string): void {
  if (!cond) throw new Error(`inside check failed: ${what}`);
}

/** The hostile layers, aimed at `t`. Ids are stable (h01…): tests name them in their expectations. */
export async function hostileLayers(t: HostileTarget): Promise<HostileLayer[]> {
  const C = t.canary;
  const Crel = C.slice(1);
  const up = '../'.repeat(24);
  const defs: Array<{
    what: string;
    expect: Expect;
    entries?: (p: string) => LayerEntry[];
    blob?: (p: string) => Promise<Buffer>;
    inside?: (root: string, p: string) => void;
  }> = [
    {
      what: 'relative traversal ../../x',
      expect: 'contained',
      entries: () => [{ name: `${up}${t.tag}`, content: 'escaped' }],
    },
    {
      what: 'traversal through a directory a/../../x',
      expect: 'contained',
      entries: (p) => [{ name: `${p}/a/${up}${t.tag}-2`, content: 'escaped' }],
    },
    {
      what: 'absolute name onto the canary file',
      expect: 'contained',
      entries: () => [{ name: `${C}/file`, content: 'overwritten' }],
      inside: (r) =>
        must(readFileSync(join(r, Crel, 'file'), 'utf8') === 'overwritten', 'absolute name lands in root'),
    },
    {
      what: 'symlink to / then a file through it',
      expect: 'contained',
      entries: (p) => [
        { name: `${p}-evil`, type: 'symlink', linkname: '/' },
        { name: `${p}-evil/${Crel}/file`, content: 'overwritten' },
      ],
    },
    {
      what: 'symlink up ../../.. then a file through it',
      expect: 'contained',
      entries: (p) => [
        { name: `${p}-up`, type: 'symlink', linkname: up.slice(0, -1) },
        { name: `${p}-up/${Crel}/file`, content: 'overwritten' },
      ],
    },
    {
      what: 'symlink to the canary dir, then a directory entry through it',
      expect: 'contained',
      entries: (p) => [
        { name: `${p}-out`, type: 'symlink', linkname: C },
        { name: `${p}-out/newdir/`, type: 'directory', mode: 0o777 },
        { name: `${p}-out/sub/`, type: 'directory', mode: 0o777, mtime: new Date(1000) },
      ],
      inside: (r) => must(existsSync(join(r, Crel, 'newdir')), 'dir made inside'),
    },
    {
      what: 'symlink to the canary file, then a file with the same name',
      expect: 'contained',
      entries: (p) => [
        { name: `${p}-lnk`, type: 'symlink', linkname: `${C}/file` },
        { name: `${p}-lnk`, content: 'replaces the link' },
      ],
      inside: (r, p) => must(isFile(join(r, `${p}-lnk`)), 'link replaced by a file'),
    },
    {
      what: 'symlink to the canary file, then a hardlink to the symlink',
      expect: 'contained',
      entries: (p) => [
        { name: `${p}-lnk`, type: 'symlink', linkname: `${C}/file` },
        { name: `${p}-hard`, type: 'link', linkname: `${p}-lnk` },
      ],
      inside: (r, p) => must(lstatSync(join(r, `${p}-hard`)).isSymbolicLink(), 'hardlink to the link itself'),
    },
    {
      what: 'hardlink with ../ to the canary file',
      expect: 'refused',
      entries: (p) => [{ name: `${p}-pw`, type: 'link', linkname: `${up}${Crel}/file` }],
    },
    {
      what: 'hardlink with an absolute target at the canary file',
      expect: 'refused',
      entries: (p) => [{ name: `${p}-pw`, type: 'link', linkname: `${C}/file` }],
    },
    {
      what: 'hardlink through a symlinked directory to the canary file',
      expect: 'refused',
      entries: (p) => [
        { name: `${p}-e`, type: 'symlink', linkname: C },
        { name: `${p}-pw`, type: 'link', linkname: `${p}-e/file` },
      ],
    },
    {
      what: 'deferred xattrs: d/victim with security.capability, then d replaced by a symlink to the canary',
      expect: 'contained',
      entries: (p): LayerEntry[] => [
        { name: `${p}/`, type: 'directory' },
        {
          name: `${p}/victim`,
          content: 'image file',
          mode: 0o755,
          pax: { 'SCHILY.xattr.security.capability': CAP_PAX, 'SCHILY.xattr.user.evil': 'yes' },
        },
        { name: `${p}/sub/`, type: 'directory', pax: { 'SCHILY.xattr.user.evil': 'dir' } },
        { name: p, type: 'symlink', linkname: C },
      ],
    },
    {
      what: 'deferred directory mtime: m/sub/, then m replaced by a symlink to the canary',
      expect: 'contained',
      entries: (p) => [
        { name: `${p}/`, type: 'directory', mtime: new Date(2000) },
        { name: `${p}/sub/`, type: 'directory', mtime: new Date(1000), mode: 0o777 },
        { name: `${p}/file`, content: 'x', mtime: new Date(1000) },
        { name: p, type: 'symlink', linkname: C },
      ],
    },
    {
      what: 'deferred mtime and xattrs through a chain: d/, d/sub/, then d -> l1 -> l2 -> canary',
      expect: 'contained',
      entries: (p): LayerEntry[] => [
        { name: `${p}-l2`, type: 'symlink', linkname: C },
        { name: `${p}-l1`, type: 'symlink', linkname: `${p}-l2` },
        { name: `${p}/`, type: 'directory' },
        {
          name: `${p}/sub/`,
          type: 'directory',
          mtime: new Date(1000),
          pax: { 'SCHILY.xattr.user.evil': 'y' },
        },
        { name: `${p}/victim`, content: 'v', pax: { 'SCHILY.xattr.user.evil': 'y' } },
        { name: p, type: 'symlink', linkname: `${p}-l1` },
      ],
    },
    {
      what: 'chain of symlinks c1 -> c2 -> c3 -> canary, a file through c1',
      expect: 'contained',
      entries: (p) => [
        { name: `${p}-c3`, type: 'symlink', linkname: C },
        { name: `${p}-c2`, type: 'symlink', linkname: `/${p}-c3` },
        { name: `${p}-c1`, type: 'symlink', linkname: `${p}-c2` },
        { name: `${p}-c1/file`, content: 'overwritten' },
      ],
    },
    {
      what: 'symlink whose target climbs out of a missing dir: l -> missing/../evil, evil -> canary',
      expect: 'contained',
      entries: (p) => [
        { name: `${p}-evil`, type: 'symlink', linkname: C },
        { name: `${p}-l`, type: 'symlink', linkname: `missing/../${p}-evil` },
        { name: `${p}-l/file`, content: 'overwritten' },
        { name: `${p}-m`, type: 'symlink', linkname: `missing/../../${p}-evil` },
        { name: `${p}-m/victim`, type: 'link', linkname: `${p}-l/file` },
      ],
      inside: (r) => must(readFileSync(join(r, Crel, 'file'), 'utf8') === 'overwritten', 'landed in root'),
    },
    {
      what: 'a directory turned into a file and back, children each time',
      expect: 'contained',
      entries: (p) => [
        { name: `${p}/`, type: 'directory' },
        { name: `${p}/x`, content: '1' },
        { name: p, content: 'now a file' },
        { name: `${p}/`, type: 'directory', mode: 0o700 },
        { name: `${p}/y`, content: '2' },
      ],
      inside: (r, p) => {
        must(readdirSync(join(r, p)).join() === 'y', 'only y in the re-made dir');
        must((lstatSync(join(r, p)).mode & 0o777) === 0o700, 'mode of the second dir');
      },
    },
    {
      what: 'a directory replaced by a symlink to the canary, then files and a dir through it',
      expect: 'contained',
      entries: (p) => [
        { name: `${p}/`, type: 'directory' },
        { name: `${p}/keep`, content: 'k' },
        { name: p, type: 'symlink', linkname: C },
        { name: `${p}/file`, content: 'overwritten', mode: 0o4777 },
        { name: `${p}/sub/`, type: 'directory', mode: 0o777, mtime: new Date(1000) },
      ],
    },
    {
      what: 'a file with setuid root and a setgid directory',
      expect: 'contained',
      entries: (p) => [
        { name: `${p}/`, type: 'directory', mode: 0o2755 },
        { name: `${p}/suid`, content: '#!/bin/sh\nid\n', mode: 0o4755, uid: 0, gid: 0 },
      ],
      inside: (r, p) =>
        must((lstatSync(join(r, p, 'suid')).mode & 0o7777) === 0o4755, 'setuid kept in the tree'),
    },
    {
      what: 'character devices: the host kernel log (1:11) and memory (1:1)',
      expect: 'contained',
      entries: (p) => [
        { name: `${p}/`, type: 'directory' },
        { name: `${p}/kmsg`, type: 'character-device', devmajor: 1, devminor: 11, mode: 0o666 },
        { name: `${p}/mem`, type: 'character-device', devmajor: 1, devminor: 1, mode: 0o666 },
      ],
      inside: (r, p) => {
        const st = lstatSync(join(r, p, 'kmsg'));
        must(st.isFile() && st.size === 0, 'kmsg is an empty placeholder');
      },
    },
    {
      what: 'a block device (8:0) through a symlink to the canary',
      expect: 'contained',
      entries: (p) => [
        { name: `${p}-d`, type: 'symlink', linkname: C },
        { name: `${p}-d/sda`, type: 'block-device', devmajor: 8, devminor: 0, mode: 0o666 },
        { name: `${p}/`, type: 'directory' },
        { name: `${p}/sda`, type: 'block-device', devmajor: 8, devminor: 0, mode: 0o660 },
      ],
    },
    {
      what: 'a forged kiln device mark on a regular file',
      expect: 'contained',
      entries: (p) => [
        { name: `${p}-forged`, content: '', pax: { 'SCHILY.xattr.user.kiln.device': 'c 1 11' } },
      ],
      inside: (r, p) => {
        const x = execFileSync('getfattr', ['-h', '-d', '-m', '-', join(r, `${p}-forged`)], {
          encoding: 'utf8',
        });
        must(!x.includes('kiln.device'), 'the mark is not taken from the layer');
      },
    },
    {
      what: 'whiteout through a symlink to the canary',
      expect: 'contained',
      entries: (p) => [
        { name: `${p}-w`, type: 'symlink', linkname: C },
        { name: `${p}-w/.wh.file` },
        { name: `${p}-w/.wh.sub` },
      ],
    },
    {
      what: 'opaque whiteout through a symlink to the canary',
      expect: 'contained',
      entries: (p) => [
        { name: `${p}-o`, type: 'symlink', linkname: C },
        { name: `${p}-o/.wh..wh..opq` },
        { name: `${p}-o2`, type: 'symlink', linkname: `${up}${Crel}` },
        { name: `${p}-o2/sub/.wh..wh..opq` },
      ],
    },
    {
      what: 'whiteouts of .., of / and with traversal',
      expect: 'contained',
      entries: (p) => [
        { name: `${p}/`, type: 'directory' },
        { name: `${p}/.wh...` },
        { name: `${up}${Crel}/.wh.file` },
        { name: `.wh.${up}${Crel}` },
      ],
    },
    {
      what: 'giant names: a 255-byte component, a 3 KB PAX path, a 4000-byte symlink target',
      expect: 'contained',
      entries: (p) => [
        { name: `${p}/${'n'.repeat(255)}`, content: 'long' },
        { name: `${p}/${Array.from({ length: 15 }, () => 'd'.repeat(200)).join('/')}/f`, content: 'deep' },
        { name: `${p}/longlink`, type: 'symlink', linkname: 'x/'.repeat(2000) },
      ],
    },
    {
      what: 'a name longer than NAME_MAX (300 bytes)',
      expect: 'either',
      entries: (p) => [{ name: `${p}/${'n'.repeat(300)}`, content: 'too long' }],
    },
    {
      what: 'a 2 MB PAX record (a comment) before a file',
      expect: 'contained',
      entries: (p) => [
        { name: `${p}-pax`, content: 'after a big pax header', pax: { comment: 'c'.repeat(2 << 20) } },
      ],
    },
    {
      what: 'PAX uid/gid beyond 32 bits',
      expect: 'either',
      entries: (p) => [
        { name: `${p}-ids`, content: 'x', pax: { uid: String(2 ** 40), gid: String(2 ** 40) } },
      ],
    },
    {
      what: 'duplicate entries: a file twice, a dir twice, a symlink then a dir',
      expect: 'contained',
      entries: (p) => [
        { name: `${p}/`, type: 'directory', mode: 0o755 },
        { name: `${p}/f`, content: 'first', mode: 0o600 },
        { name: `${p}/f`, content: 'second', mode: 0o644 },
        { name: `${p}/`, type: 'directory', mode: 0o750 },
        { name: `${p}/s`, type: 'symlink', linkname: C },
        { name: `${p}/s/`, type: 'directory' },
      ],
      inside: (r, p) => {
        must(readFileSync(join(r, p, 'f'), 'utf8') === 'second', 'last file wins');
        must((lstatSync(join(r, p)).mode & 0o777) === 0o750, 'last dir mode wins');
      },
    },
    {
      what: 'a symlink loop, then a file through it',
      expect: 'refused',
      entries: (p) => [
        { name: `${p}-a`, type: 'symlink', linkname: `${p}-b` },
        { name: `${p}-b`, type: 'symlink', linkname: `${p}-a` },
        { name: `${p}-a/x`, content: 'x' },
      ],
    },
    {
      what: 'a hardlink to a directory',
      expect: 'refused',
      entries: (p) => [
        { name: `${p}/`, type: 'directory' },
        { name: `${p}-h`, type: 'link', linkname: `${p}` },
      ],
    },
    {
      what: 'the root entry ./ with mode 0777 and odd owner, names with control characters',
      expect: 'contained',
      entries: (p) => [
        { name: './', type: 'directory', mode: 0o777, uid: 4242 },
        { name: `${p}-\x1b[31mred\x07\n`, content: 'ctl' },
      ],
    },
    {
      what: 'a file under a path whose parent is a file in the same layer',
      expect: 'refused',
      entries: (p) => [
        { name: `${p}`, content: 'a file' },
        { name: `${p}/child`, content: 'x' },
      ],
    },
    {
      what: 'a truncated gzip stream',
      expect: 'refused',
      blob: async (p) => {
        const gz = gzipSync(await makeTar([{ name: `${p}-f`, content: randomBytes(64 << 10) }]));
        return gz.subarray(0, gz.length >> 1);
      },
    },
    {
      what: 'a tar whose last file is cut short (declared 1 MB, 1 KB present)',
      expect: 'refused',
      blob: async (p) =>
        gzipSync(Buffer.concat([rawHeader(`${p}-cut`, '0', 1 << 20), Buffer.alloc(1024, 0x41)])),
    },
    {
      what: 'not a tar at all (random bytes, gzip-wrapped)',
      expect: 'refused',
      blob: async () => gzipSync(randomBytes(4096)),
    },
  ];
  const out: HostileLayer[] = [];
  for (const [i, d] of defs.entries()) {
    const id = `h${String(i + 1).padStart(2, '0')}`;
    const blob = d.blob ? await d.blob(id) : gzipSync(await makeTar(d.entries!(id)));
    out.push({
      id,
      what: d.what,
      expect: d.expect,
      blob,
      ...(d.inside ? { inside: (root: string) => d.inside!(root, id) } : {}),
    });
  }
  return out;
}

// --- the canary ------------------------------------------------------------------------------------

/** Writes the canary tree at `t.canary`, owned by `owner` (the build user, so an escape would succeed). */
export async function makeCanary(t: HostileTarget, owner: { uid: number; gid: number }): Promise<void> {
  const C = t.canary;
  await rm(C, { recursive: true, force: true });
  await mkdir(join(C, 'sub'), { recursive: true });
  await mkdir(join(C, 'dir'));
  await writeFile(join(C, 'file'), 'canary file\n');
  await writeFile(join(C, 'victim'), '#!/bin/sh\necho host tool\n');
  await writeFile(join(C, 'sub', 'inner'), 'inner\n');
  await chmod(join(C, 'file'), 0o640);
  await chmod(join(C, 'victim'), 0o755);
  await chmod(join(C, 'sub'), 0o750);
  execFileSync('setfattr', ['-n', 'user.canary', '-v', 'keep', join(C, 'file')]);
  for (const p of ['file', 'victim', 'sub/inner', 'sub', 'dir', '']) {
    await chown(join(C, p), owner.uid, owner.gid);
    await utimes(join(C, p), 1_500_000_000, 1_500_000_000);
  }
}

/** Everything an escape could change under the canary, plus the tag files anywhere they could land. */
export function snapshotHost(t: HostileTarget, extraDirs: string[] = []): string {
  const lines: string[] = [];
  const walk = (p: string): void => {
    const st = lstatSync(p, { bigint: true });
    let body = '';
    if (st.isFile()) body = createHash('sha256').update(readFileSync(p)).digest('hex');
    else if (st.isSymbolicLink()) body = readlinkSync(p);
    lines.push(
      `${p} mode=${st.mode.toString(8)} owner=${st.uid}:${st.gid} size=${st.size} mtime=${st.mtimeNs} ctime=${st.ctimeNs} ${body}`,
    );
    if (st.isDirectory()) for (const n of readdirSync(p).sort()) walk(join(p, n));
  };
  walk(t.canary);
  lines.push(
    execFileSync('getfattr', ['-R', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', t.canary], {
      encoding: 'utf8',
    }),
  );
  for (const d of ['/', '/tmp', '/work', ...extraDirs]) {
    for (const n of readdirSafe(d)) if (n.startsWith(t.tag)) lines.push(`escaped: ${join(d, n)}`);
  }
  return lines.join('\n');
}

function readdirSafe(d: string): string[] {
  try {
    return readdirSync(d);
  } catch {
    return [];
  }
}

export function newTarget(canary: string): HostileTarget {
  return { canary, tag: `kiln-hostile-${randomBytes(4).toString('hex')}` };
}

// --- images ----------------------------------------------------------------------------------------

function sha256(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}

async function pushBlob(reg: TestRegistry, repo: string, data: Buffer): Promise<string> {
  const digest = `sha256:${sha256(data)}`;
  const start = await fetch(`${reg.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  if (start.status !== 202)
    throw new SetupError('registry', 'TEST_PUSH_FAILED', `blob upload start: ${start.status}`);
  const loc = new URL(start.headers.get('location')!, reg.url);
  loc.searchParams.set('digest', digest);
  const put = await fetch(loc, {
    method: 'PUT',
    body: data,
    headers: { 'content-type': 'application/octet-stream' },
  });
  if (put.status !== 201)
    throw new SetupError('registry', 'TEST_PUSH_FAILED', `blob upload: ${put.status} ${await put.text()}`);
  return digest;
}

/**
 * Pushes `<repo>:<tag>`: the busybox layer from `busyboxLayout`, then `layers` (gzip blobs, as they
 * are: a broken one stays broken). The diff ids of broken blobs are made up; kiln checks them only
 * after extraction, which fails first.
 */
export async function pushHostileImage(
  reg: TestRegistry,
  busyboxLayout: string,
  repo: string,
  tag: string,
  layers: Buffer[],
): Promise<string> {
  const index = JSON.parse(await readFile(join(busyboxLayout, 'index.json'), 'utf8'));
  const blob = (d: string) => readFile(join(busyboxLayout, 'blobs', 'sha256', d.slice(7)));
  const manifest = JSON.parse((await blob(index.manifests[0].digest)).toString());
  const config = JSON.parse((await blob(manifest.config.digest)).toString());
  const baseLayer = await blob(manifest.layers[0].digest);
  const all = [baseLayer, ...layers];
  const descs = [];
  const diffIds = [];
  for (const l of all) {
    descs.push({
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      digest: await pushBlob(reg, repo, l),
      size: l.length,
    });
    let plain: Buffer;
    try {
      plain = (await import('node:zlib')).gunzipSync(l);
    } catch {
      plain = l;
    }
    diffIds.push(`sha256:${sha256(plain)}`);
  }
  config.rootfs = { type: 'layers', diff_ids: diffIds };
  config.history = all.map((_, i) => ({ created: '1970-01-01T00:00:00Z', created_by: `hostile layer ${i}` }));
  const configBuf = Buffer.from(JSON.stringify(config));
  const m = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: await pushBlob(reg, repo, configBuf),
      size: configBuf.length,
    },
    layers: descs,
  };
  const body = Buffer.from(JSON.stringify(m));
  const r = await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    body,
    headers: { 'content-type': m.mediaType },
  });
  if (r.status !== 201)
    throw new SetupError('registry', 'TEST_PUSH_FAILED', `manifest push: ${r.status} ${await r.text()}`);
  return `sha256:${sha256(body)}`;
}
