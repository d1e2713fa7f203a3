/**
 * Package metadata parsers for the SBOM: each turns the bytes of one metadata file found in the
 * image into packages. Pure functions (no I/O), so they are tested on hand-written inputs.
 *
 * Covered: dpkg status (and distroless status.d), apk's installed db, npm lockfiles and
 * node_modules package.json, Python *.dist-info/METADATA. Not covered: rpm (its db is a
 * Berkeley DB / sqlite file that needs rpm's own library to read), Go build info (it needs every
 * executable read in full to find it: too costly on the build's critical path).
 */

export type PackageType = 'deb' | 'apk' | 'npm' | 'pypi';

export interface Package {
  type: PackageType;
  name: string;
  version: string;
  arch?: string;
  license?: string;
  /** Source package (deb) or origin (apk) when it differs from the name. */
  source?: string;
  /** Where in the image it was found (the metadata file). */
  location: string;
}

export interface Distro {
  /** os-release ID: debian, ubuntu, alpine, ... */
  id: string;
  versionId?: string;
}

/** RFC 822-style stanzas (dpkg status): `Field: value` with continuation lines starting with space. */
function stanzas(text: string): Array<Map<string, string>> {
  const out: Array<Map<string, string>> = [];
  for (const block of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last: string | undefined;
    for (const line of block.split('\n')) {
      if (/^[ \t]/.test(line)) {
        if (last) fields.set(last, `${fields.get(last) ?? ''}\n${line.trim()}`);
        continue;
      }
      const i = line.indexOf(':');
      if (i <= 0) continue;
      last = line.slice(0, i).trim();
      fields.set(last, line.slice(i + 1).trim());
    }
    if (fields.size) out.push(fields);
  }
  return out;
}

/**
 * dpkg's status file. Like `dpkg-query -W`, every package is listed except those whose state is
 * `not-installed` (purged ones dpkg still remembers).
 */
export function parseDpkgStatus(text: string, location: string): Package[] {
  const out: Package[] = [];
  for (const s of stanzas(text)) {
    const name = s.get('Package');
    const status = (s.get('Status') ?? 'install ok installed').split(/\s+/);
    if (!name || status[2] === 'not-installed') continue;
    const pkg: Package = { type: 'deb', name, version: s.get('Version') ?? '', location };
    const arch = s.get('Architecture');
    if (arch) pkg.arch = arch;
    // `Source: name (version)` when the binary version differs.
    const source = s.get('Source')?.split(/\s+/)[0];
    if (source && source !== name) pkg.source = source;
    out.push(pkg);
  }
  return out;
}

/** Alpine's /lib/apk/db/installed: stanzas of one-letter keys (P name, V version, A arch, L license, o origin). */
export function parseApkInstalled(text: string, location: string): Package[] {
  const out: Package[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    const f = new Map<string, string>();
    for (const line of block.split('\n')) {
      if (line.length > 2 && line[1] === ':' && !f.has(line[0]!)) f.set(line[0]!, line.slice(2));
    }
    const name = f.get('P');
    if (!name) continue;
    const pkg: Package = { type: 'apk', name, version: f.get('V') ?? '', location };
    const arch = f.get('A');
    const license = f.get('L');
    const origin = f.get('o');
    if (arch) pkg.arch = arch;
    if (license) pkg.license = license;
    if (origin && origin !== name) pkg.source = origin;
    out.push(pkg);
  }
  return out;
}

interface LockEntry {
  version?: unknown;
  license?: unknown;
  link?: unknown;
  dependencies?: unknown;
  name?: unknown;
}

/** The package name of a lockfile `packages` key: the part after its last `node_modules/`. */
function nameFromLockKey(key: string): string | undefined {
  const i = key.lastIndexOf('node_modules/');
  return i < 0 ? undefined : key.slice(i + 'node_modules/'.length);
}

/**
 * package-lock.json / npm-shrinkwrap.json: lockfile v2/v3 `packages` (keys are install paths) or
 * v1 `dependencies` (nested). The root project itself (key "") is not a dependency and is left out,
 * as are links to workspace folders (they have no version of their own).
 */
export function parseNpmLock(text: string, location: string): Package[] {
  let doc: { packages?: Record<string, LockEntry>; dependencies?: Record<string, LockEntry> };
  try {
    doc = JSON.parse(text) as typeof doc;
  } catch {
    return [];
  }
  const out: Package[] = [];
  if (doc.packages && typeof doc.packages === 'object') {
    for (const [key, e] of Object.entries(doc.packages)) {
      const name = typeof e.name === 'string' ? e.name : nameFromLockKey(key);
      if (!key || !name || e.link === true || typeof e.version !== 'string') continue;
      const pkg: Package = { type: 'npm', name, version: e.version, location };
      if (typeof e.license === 'string') pkg.license = e.license;
      out.push(pkg);
    }
    return out;
  }
  const walk = (deps: unknown): void => {
    if (!deps || typeof deps !== 'object') return;
    for (const [name, e] of Object.entries(deps as Record<string, LockEntry>)) {
      if (typeof e.version === 'string' && !e.version.startsWith('file:'))
        out.push({ type: 'npm', name, version: e.version, location });
      walk(e.dependencies);
    }
  };
  walk(doc.dependencies);
  return out;
}

/** An installed package's own package.json (under node_modules). */
export function parseNpmPackageJson(text: string, location: string): Package[] {
  try {
    const doc = JSON.parse(text) as { name?: unknown; version?: unknown; license?: unknown };
    if (typeof doc.name !== 'string' || typeof doc.version !== 'string') return [];
    const pkg: Package = { type: 'npm', name: doc.name, version: doc.version, location };
    if (typeof doc.license === 'string') pkg.license = doc.license;
    return [pkg];
  } catch {
    return [];
  }
}

/** Python core metadata (PEP 566): the header block of a *.dist-info/METADATA file. */
export function parsePythonMetadata(text: string, location: string): Package[] {
  const head = text.split(/\r?\n\r?\n/)[0] ?? '';
  let name: string | undefined;
  let version: string | undefined;
  let license: string | undefined;
  for (const line of head.split(/\r?\n/)) {
    const m = /^(Name|Version|License|License-Expression):\s*(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === 'Name') name ??= m[2];
    else if (m[1] === 'Version') version ??= m[2];
    else if (m[1] === 'License-Expression' || (m[1] === 'License' && license === undefined)) license = m[2];
  }
  if (!name || !version) return [];
  const pkg: Package = { type: 'pypi', name, version, location };
  if (license && license !== 'UNKNOWN' && !license.includes('\n')) pkg.license = license;
  return [pkg];
}

/** os-release: ID and VERSION_ID. */
export function parseOsRelease(text: string): Distro | undefined {
  const get = (k: string): string | undefined => {
    const m = new RegExp(`^${k}=(.*)$`, 'm').exec(text);
    return m?.[1]?.trim().replace(/^["']|["']$/g, '');
  };
  const id = get('ID');
  if (!id) return undefined;
  const versionId = get('VERSION_ID');
  return versionId ? { id, versionId } : { id };
}

/** Which parser reads a path of the final filesystem, if any (paths are absolute, `/`-rooted). */
export function metadataKind(
  path: string,
): 'dpkg' | 'apk' | 'npm-lock' | 'npm-package' | 'python' | 'os-release' | undefined {
  if (path === '/var/lib/dpkg/status' || /^\/var\/lib\/dpkg\/status\.d\/[^/]+$/.test(path)) return 'dpkg';
  if (path === '/lib/apk/db/installed') return 'apk';
  if (path === '/etc/os-release' || path === '/usr/lib/os-release') return 'os-release';
  const base = path.slice(path.lastIndexOf('/') + 1);
  if (base === 'package-lock.json' || base === 'npm-shrinkwrap.json')
    return path.includes('/node_modules/') ? undefined : 'npm-lock';
  if (base === 'package.json' && /\/node_modules\/(@[^/]+\/)?[^/@][^/]*\/package\.json$/.test(path))
    return 'npm-package';
  if (base === 'METADATA' && /\.dist-info\/METADATA$/.test(path)) return 'python';
  return undefined;
}

const PURL_SAFE = /[^A-Za-z0-9.\-_~]/g;
const enc = (s: string): string => s.replace(PURL_SAFE, (c) => encodeURIComponent(c));

/** The package URL (purl spec) of a package. */
export function purl(p: Package, distro?: Distro): string {
  switch (p.type) {
    case 'deb':
    case 'apk': {
      const ns = distro?.id ?? (p.type === 'deb' ? 'debian' : 'alpine');
      const q: string[] = [];
      if (p.arch) q.push(`arch=${enc(p.arch)}`);
      if (distro?.versionId) q.push(`distro=${enc(`${ns}-${distro.versionId}`)}`);
      if (p.source) q.push(`upstream=${enc(p.source)}`);
      return `pkg:${p.type}/${enc(ns)}/${enc(p.name)}@${enc(p.version)}${q.length ? `?${q.join('&')}` : ''}`;
    }
    case 'npm': {
      // Scoped names keep their `@scope/` as the namespace, with the `@` encoded.
      const slash = p.name.startsWith('@') ? p.name.indexOf('/') : -1;
      const ns = slash > 0 ? `${enc(p.name.slice(0, slash))}/` : '';
      return `pkg:npm/${ns}${enc(slash > 0 ? p.name.slice(slash + 1) : p.name)}@${enc(p.version)}`;
    }
    case 'pypi':
      return `pkg:pypi/${enc(p.name.toLowerCase().replace(/[-_.]+/g, '-'))}@${enc(p.version)}`;
  }
}
