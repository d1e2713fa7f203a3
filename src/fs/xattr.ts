/**
 * Extended attributes through the attr tools (`getfattr`/`setfattr`): Node has no xattr API. Reads
 * and writes are batched, many paths per process. Best effort, except security.capability, whose
 * loss would silently break binaries such as ping.
 */
import { KilnError } from '../util/errors.ts';
import { firstLine, runCommand } from '../util/command.ts';

export const CAPABILITY_XATTR = 'security.capability';
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
function keepXattr(name: string): boolean {
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
    let current: Map<string, Buffer> | undefined;
    for (const line of r.stdout.split('\n')) {
      if (line.startsWith('# file: ')) {
        const p = unescapeName(line.slice(8));
        current = wanted.has(p) ? new Map() : undefined;
        if (current) out.set(p, current);
        continue;
      }
      const eq = line.indexOf('=');
      if (!current || line === '' || eq <= 0) continue;
      const name = unescapeName(line.slice(0, eq));
      if (keepXattr(name)) current.set(name, decodeValue(line.slice(eq + 1)));
    }
  }
  for (const [p, m] of out) if (m.size === 0) out.delete(p);
  return out;
}

/**
 * Sets xattrs on host paths in one `setfattr --restore` run. Attributes the filesystem refuses are
 * skipped, but a security.capability that cannot be set is an error.
 */
export async function applyXattrs(
  items: Array<{ path: string; xattrs: Map<string, Buffer> }>,
): Promise<void> {
  if (items.length === 0) return;
  let dump = '';
  for (const { path, xattrs } of items) {
    dump += `# file: ${escapeName(path)}\n`;
    for (const [k, v] of xattrs) dump += `${escapeName(k)}=0x${v.toString('hex')}\n`;
    dump += '\n';
  }
  const { code } = await runCommand('setfattr', ['-h', '--restore=-'], { input: dump, stdout: 'ignore' });
  if (code === 0) return;
  // Something was refused: make sure the capabilities, at least, are there.
  for (const { path, xattrs } of items) {
    const cap = xattrs.get(CAPABILITY_XATTR);
    if (!cap) continue;
    const r = await runCommand('setfattr', [
      '-h',
      '-n',
      CAPABILITY_XATTR,
      '-v',
      `0x${cap.toString('hex')}`,
      '--',
      path,
    ]);
    if (r.code !== 0) {
      throw new KilnError(
        'fs',
        'XATTR_FAILED',
        `cannot set security.capability on ${path}: ${firstLine(r.stderr)}`,
        { hint: 'install the attr package and extract onto a filesystem that supports security xattrs' },
      );
    }
  }
}
