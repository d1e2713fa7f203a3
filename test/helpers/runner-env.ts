/**
 * What the runner-environment tests share: test users with and without a subordinate id range, the
 * kiln CLI run from src as another uid (runuser for a named user, setpriv for a uid with no passwd
 * entry), and the link groups of a pushed image's layers.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO, type CliResult } from './cli.ts';

const execFileP = promisify(execFile);
const MAIN = join(REPO, 'src/cli/main.ts');

/** Creates `name` when missing and gives it exactly the subuid/subgid range `subids` (or none). */
export async function ensureUser(name: string, subids: string | undefined): Promise<number> {
  try {
    await execFileP('id', ['-u', name]);
  } catch {
    await execFileP('useradd', ['-M', '-s', '/bin/sh', name]);
  }
  for (const f of ['/etc/subuid', '/etc/subgid']) {
    const text = existsSync(f) ? await readFile(f, 'utf8') : '';
    const lines = text.split('\n').filter((l) => l.trim() !== '');
    const mine = lines.filter((l) => l.split(':')[0] === name);
    if (subids === undefined) {
      if (mine.length > 0) await writeFile(f, lines.filter((l) => !mine.includes(l)).join('\n') + '\n');
    } else if (mine.length === 0) {
      await writeFile(f, [...lines, `${name}:${subids}`].join('\n') + '\n');
    }
  }
  return Number((await execFileP('id', ['-u', name])).stdout.trim());
}

export type RunAs = { user: string } | { uid: number } | undefined;

/**
 * Runs the CLI from src. `env` is the child's whole environment on top of PATH (the test runner's
 * variables would otherwise leak in); `as` picks the identity.
 */
export function kilnAs(args: string[], as: RunAs, env: Record<string, string> = {}): Promise<CliResult> {
  const node = [process.execPath, '--import', 'tsx', MAIN, ...args];
  const childEnv: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env };
  const prefix =
    as === undefined
      ? []
      : 'user' in as
        ? ['runuser', '-u', as.user, '--']
        : ['setpriv', `--reuid=${as.uid}`, `--regid=${as.uid}`, '--clear-groups', '--'];
  const argv = [...prefix, 'env', '-i', ...Object.entries(childEnv).map(([k, v]) => `${k}=${v}`), ...node];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Copies a pushed image into an OCI layout under `dir` and returns its layer blobs, base first. */
export async function pulledLayers(ref: string, dir: string): Promise<string[]> {
  const layout = join(dir, 'layout');
  await execFileP(
    'skopeo',
    ['--insecure-policy', 'copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${layout}:img`],
    { maxBuffer: 64 << 20 },
  );
  const blob = (d: string) => join(layout, 'blobs', ...d.split(':'));
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as {
    manifests: { digest: string }[];
  };
  const manifest = JSON.parse(await readFile(blob(index.manifests[0]!.digest), 'utf8')) as {
    layers: { digest: string }[];
  };
  return manifest.layers.map((l) => blob(l.digest));
}

export interface LayerEntry {
  name: string;
  type: string;
  linkname?: string;
  uid: number;
  gid: number;
  mode: number;
  mtime: number;
}

/** The entries of a gzip (or plain) layer tar, in order. */
export async function layerEntries(path: string): Promise<LayerEntry[]> {
  const tar = await import('tar-stream');
  const { createGunzip } = await import('node:zlib');
  const { createReadStream } = await import('node:fs');
  const head = (await readFile(path)).subarray(0, 2);
  const extract = tar.extract();
  const entries: LayerEntry[] = [];
  extract.on('entry', (h, stream, next) => {
    entries.push({
      name: h.name.replace(/^\.?\//, ''),
      type: h.type ?? 'file',
      ...(h.linkname ? { linkname: h.linkname.replace(/^\.?\//, '') } : {}),
      uid: h.uid ?? 0,
      gid: h.gid ?? 0,
      mode: h.mode ?? 0,
      mtime: h.mtime ? h.mtime.getTime() : 0,
    });
    stream.on('end', next);
    stream.resume();
  });
  const input = createReadStream(path);
  const done = new Promise<void>((resolve, reject) => {
    extract.on('finish', resolve);
    extract.on('error', reject);
    input.on('error', reject);
  });
  if (head[0] === 0x1f && head[1] === 0x8b) input.pipe(createGunzip()).pipe(extract);
  else input.pipe(extract);
  await done;
  return entries;
}

/** Hardlink groups of a layer: the regular file's name → every name of it (itself first). */
export function linkGroups(entries: LayerEntry[]): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const e of entries) if (e.type === 'file') groups.set(e.name, [e.name]);
  for (const e of entries) if (e.type === 'link' && e.linkname) groups.get(e.linkname)?.push(e.name);
  return groups;
}
