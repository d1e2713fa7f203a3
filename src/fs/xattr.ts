/**
 * Extended attributes through the attr tools (`getfattr`/`setfattr`): Node has no xattr API. Reads
 * and writes are batched, many paths per process. Best effort, except security.capability, whose
 * loss would silently break binaries such as ping. The one getfattr output decoder of kiln: the
 * snapshot engines and extraction all read and write through here.
 */
import { KilnError } from '../util/errors.ts';
import { firstLine, runCommand } from '../util/command.ts';

export const CAPABILITY_XATTR = 'security.capability';
/**
 * Marks an empty placeholder file that stands for a device node of a layer in the build tree
 * (`c 1 3`, `b 8 0`): extraction writes it instead of the device, the layer writer turns it back.
 */
export const DEVICE_XATTR = 'user.kiln.device';

/**
 * The owner (`uid:gid`) a layer gave a file that a single-id user namespace could not chown to
 * (extraction with ignoreChownErrors): the tree has it owned by root, the layer writer writes this
 * owner back, so a RUN layer that carries the file unchanged in owner keeps the image's owner.
 */
export const OWNER_XATTR = 'user.kiln.owner';

/** The owner an OWNER_XATTR value names, or undefined when it is not one. */
export function parseOwnerXattr(v: Buffer): { uid: number; gid: number } | undefined {
  const m = /^(\d{1,10}):(\d{1,10})$/.exec(v.toString('latin1'));
  return m ? { uid: Number(m[1]), gid: Number(m[2]) } : undefined;
}

/** The device a placeholder stands for, or undefined when the value is not one. */
export function parseDeviceXattr(v: Buffer): { kind: 'c' | 'b'; major: number; minor: number } | undefined {
  const m = /^([cb]) (\d{1,10}) (\d{1,10})$/.exec(v.toString('latin1'));
  if (!m) return undefined;
  return { kind: m[1] as 'c' | 'b', major: Number(m[2]), minor: Number(m[3]) };
}
/**
 * Paths per getfattr run, bounded by bytes: each run is a fork of a large Node process (~15 ms), so
 * fewer, longer argument lists win. 512 KiB stays well under ARG_MAX (2 MiB with an 8 MiB stack).
 */
const BATCH_BYTES = 512 * 1024;

function* batches(paths: string[]): Generator<string[]> {
  let cur: string[] = [];
  let bytes = 0;
  for (const p of paths) {
    const n = Buffer.byteLength(p) + 1;
    if (cur.length > 0 && bytes + n > BATCH_BYTES) {
      yield cur;
      cur = [];
      bytes = 0;
    }
    cur.push(p);
    bytes += n;
  }
  if (cur.length > 0) yield cur;
}

/** Attributes that describe the host or the snapshot machinery, not the image. */
export function keepXattr(name: string): boolean {
  return !(
    name.startsWith('trusted.overlay.') ||
    name.startsWith('user.overlay.') ||
    name === 'security.selinux'
  );
}

/** Undo getfattr's octal escaping of names (`\012`, `\\`). */
function unescapeName(s: string): string {
  if (!s.includes('\\')) return s;
  const bytes: number[] = [];
  const raw = Buffer.from(s, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x5c && i + 3 < raw.length && /^[0-7]{3}$/.test(raw.subarray(i + 1, i + 4).toString())) {
      bytes.push(parseInt(raw.subarray(i + 1, i + 4).toString(), 8));
      i += 3;
    } else if (raw[i] === 0x5c && raw[i + 1] === 0x5c) {
      bytes.push(0x5c);
      i += 1;
    } else bytes.push(raw[i]!);
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Escape a name for `setfattr --restore`. */
function escapeName(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    if (b === 0x5c) out += '\\\\';
    else if (b < 0x21 || b > 0x7e || b === 0x3d) out += '\\' + b.toString(8).padStart(3, '0');
    else out += String.fromCharCode(b);
  }
  return out;
}

function decodeValue(v: string): Buffer {
  if (v.startsWith('0x')) return Buffer.from(v.slice(2), 'hex');
  if (v.startsWith('0s')) return Buffer.from(v.slice(2), 'base64');
  if (v.startsWith('"') && v.endsWith('"')) return Buffer.from(v.slice(1, -1), 'utf8');
  return Buffer.from(v, 'utf8');
}

/** Parses `getfattr -d -e hex` output: host path → attribute name → value. */
function parseDump(stdout: string, keep: (path: string) => boolean): Map<string, Map<string, Buffer>> {
  const out = new Map<string, Map<string, Buffer>>();
  let current: Map<string, Buffer> | undefined;
  for (const line of stdout.split('\n')) {
    if (line.startsWith('# file: ')) {
      const p = unescapeName(line.slice(8));
      current = keep(p) ? (out.get(p) ?? new Map()) : undefined;
      if (current) out.set(p, current);
      continue;
    }
    const eq = line.indexOf('=');
    if (!current || line === '' || eq <= 0) continue;
    current.set(unescapeName(line.slice(0, eq)), decodeValue(line.slice(eq + 1)));
  }
  return out;
}

/**
 * The attributes matching `namePattern` (a getfattr `-m` regex) of every entry under `dir`, symlinks
 * not followed, in one getfattr run: host path → name → value. Entries without one are absent.
 */
export async function readXattrsUnder(
  dir: string,
  namePattern: string,
  hint: string,
): Promise<Map<string, Map<string, Buffer>>> {
  const r = await runCommand('getfattr', [
    '-R',
    '-h',
    '--absolute-names',
    '-d',
    '-m',
    namePattern,
    '-e',
    'hex',
    dir,
  ]);
  if (r.missing) {
    throw new KilnError('fs', 'GETFATTR_MISSING', `getfattr is needed to read the xattrs under ${dir}`, {
      hint,
    });
  }
  return parseDump(r.stdout, () => true);
}

/**
 * The xattrs of each host path (symlinks themselves, not their targets), minus host-only ones.
 * Paths without attributes are absent from the map. Missing getfattr gives an empty map.
 */
export async function readXattrs(paths: string[]): Promise<Map<string, Map<string, Buffer>>> {
  const out = new Map<string, Map<string, Buffer>>();
  const wanted = new Set(paths);
  for (const batch of batches(paths)) {
    const r = await runCommand('getfattr', [
      '-h',
      '-d',
      '-m',
      '-',
      '-e',
      'hex',
      '--absolute-names',
      '--',
      ...batch,
    ]);
    if (r.missing) return out;
    for (const [p, m] of parseDump(r.stdout, (p) => wanted.has(p))) {
      for (const name of m.keys()) if (!keepXattr(name)) m.delete(name);
      if (m.size > 0) out.set(p, m);
    }
  }
  return out;
}

interface Target {
  /** What setfattr is given: a host path, or /proc/self/fd/N. */
  path: string;
  /** What messages name. */
  name: string;
  xattrs: Map<string, Buffer>;
}

/**
 * One `setfattr --restore` run for all targets. Attributes the filesystem refuses are skipped, but a
 * security.capability that cannot be set is an error.
 */
async function restore(targets: Target[], noFollow: boolean, fds: number[]): Promise<void> {
  if (targets.length === 0) return;
  let dump = '';
  for (const { path, xattrs } of targets) {
    dump += `# file: ${escapeName(path)}\n`;
    for (const [k, v] of xattrs) dump += `${escapeName(k)}=0x${v.toString('hex')}\n`;
    dump += '\n';
  }
  const h = noFollow ? ['-h'] : [];
  const all = await runCommand('setfattr', [...h, '--restore=-'], { input: dump, stdout: 'ignore', fds });
  if (all.code === 0) return;
  // Something was refused: make sure the capabilities, at least, are there.
  for (const { path, name, xattrs } of targets) {
    const cap = xattrs.get(CAPABILITY_XATTR);
    if (!cap) continue;
    const args = [...h, '-n', CAPABILITY_XATTR, '-v', `0x${cap.toString('hex')}`, '--', path];
    const r = await runCommand('setfattr', args, { stdout: 'ignore', fds });
    if (r.code !== 0) {
      throw new KilnError(
        'fs',
        'XATTR_FAILED',
        `cannot set security.capability on ${name}: ${firstLine(r.stderr)}`,
        { hint: 'install the attr package and extract onto a filesystem that supports security xattrs' },
      );
    }
  }
}

/**
 * Sets xattrs on host paths (the last component is not followed; the caller vouches for the rest).
 */
export async function applyXattrs(
  items: Array<{ path: string; xattrs: Map<string, Buffer> }>,
): Promise<void> {
  await restore(
    items.map((it) => ({ ...it, name: it.path })),
    true,
    [],
  );
}

/** Descriptors handed to one setfattr run: well under any RLIMIT_NOFILE. */
export const FD_BATCH = 128;

/**
 * Sets xattrs on open descriptors (O_PATH ones too), through /proc/self/fd of the setfattr child
 * that inherits them: the attributes land on the inode opened, whatever replaced a directory on its
 * path by a symlink since. `name` is only for messages.
 */
export async function applyXattrsToFds(
  items: Array<{ fd: number; name: string; xattrs: Map<string, Buffer> }>,
): Promise<void> {
  for (let i = 0; i < items.length; i += FD_BATCH) {
    const batch = items.slice(i, i + FD_BATCH);
    await restore(
      batch.map((it, j) => ({ path: `/proc/self/fd/${3 + j}`, name: it.name, xattrs: it.xattrs })),
      false,
      batch.map((it) => it.fd),
    );
  }
}
