/**
 * Parity harness: builds one corpus case with kiln (the CLI, as a child process) and with buildah
 * (chroot isolation, vfs storage, no layer cache), pushes both to a test registry, unpacks both with
 * skopeo + umoci and compares file trees and image configs.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { cp, lstat, mkdir, readFile, readdir, readlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

export const REPO_ROOT = resolve(import.meta.dirname, '../..');
export const CASES_DIR = join(import.meta.dirname, 'cases');
const KILN_MAIN = join(REPO_ROOT, 'src/cli/main.ts');

export interface KnownDifference {
  /** Path in the rootfs (exact, or a prefix ending in `/`). */
  path?: string;
  /** Config field (Env, Cmd, ...). */
  field?: string;
  reason: string;
}

/**
 * Where a third-party case comes from: the repository, the file and the commit it was read at, and
 * how the case departs from it (bases moved to the local busybox/debian images, binaries that would
 * be compiled or downloaded replaced by stand-ins, steps that need the internet dropped).
 */
export interface CaseSource {
  repository: string;
  path: string;
  commit: string;
  adaptation: string;
}

export interface CaseSpec {
  base: 'busybox' | 'debian';
  /** Set for the third-party corpus (cases 50 and up). */
  source?: CaseSource;
  buildArgs?: Record<string, string>;
  target?: string;
  /** Secret id -> value; written to files outside the context and passed to both builders. */
  secrets?: Record<string, string>;
  /** Shell script run (as root, cwd = the copied context) before building, to make big or binary inputs. */
  setup?: string;
  run?: { expectStdout: string; args?: string[] };
  knownDifferences?: KnownDifference[];
  /**
   * buildah 1.28 (Debian bookworm) lacks some BuildKit syntax. When set, buildah builds this
   * Dockerfile instead: it spells the same result with the syntax buildah has, so the comparison
   * still checks kiln's semantics against an independent builder.
   */
  buildah?: { dockerfile: string; reason: string };
  /** Images this case pushes first with kiln (e.g. an ONBUILD parent): dockerfile -> repo name. */
  prebuild?: { dockerfile: string; repo: string }[];
}

export interface Env {
  registry: string;
  httpUrl: string;
  work: string;
  buildahRoot: string;
  buildahRunRoot: string;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

async function must(cmd: string, args: string[], what: string, cwd?: string): Promise<RunResult> {
  const r = await run(cmd, args, { cwd });
  if (r.code !== 0) {
    throw new Error(`${what} failed (exit ${r.code}): ${cmd} ${args.join(' ')}\n${r.stderr.slice(-4000)}`);
  }
  return r;
}

export async function loadCase(name: string): Promise<CaseSpec> {
  return JSON.parse(await readFile(join(CASES_DIR, name, 'case.json'), 'utf8')) as CaseSpec;
}

/** Copies the case to the work dir, fills `@REGISTRY@`/`@HTTP@` in Dockerfiles and runs the setup step. */
export async function prepareContext(env: Env, name: string, spec: CaseSpec): Promise<string> {
  const ctx = join(env.work, name, 'ctx');
  await mkdir(join(env.work, name), { recursive: true });
  await cp(join(CASES_DIR, name), ctx, { recursive: true, verbatimSymlinks: true });
  for (const f of await readdir(ctx)) {
    if (!f.startsWith('Dockerfile')) continue;
    const text = await readFile(join(ctx, f), 'utf8');
    await writeFile(
      join(ctx, f),
      text.replaceAll('@REGISTRY@', env.registry).replaceAll('@HTTP@', env.httpUrl),
    );
  }
  if (spec.setup) await must('sh', ['-euc', spec.setup], `setup of ${name}`, ctx);
  return ctx;
}

async function secretFlags(env: Env, name: string, spec: CaseSpec): Promise<string[]> {
  const flags: string[] = [];
  for (const [id, value] of Object.entries(spec.secrets ?? {})) {
    const file = join(env.work, name, `secret-${id}`);
    await writeFile(file, value, { mode: 0o600 });
    flags.push('--secret', `id=${id},src=${file}`);
  }
  return flags;
}

function commonFlags(spec: CaseSpec): string[] {
  const flags: string[] = [];
  for (const [k, v] of Object.entries(spec.buildArgs ?? {})) flags.push('--build-arg', `${k}=${v}`);
  if (spec.target) flags.push('--target', spec.target);
  return flags;
}

export function kilnBuild(
  env: Env,
  ctx: string,
  dockerfile: string,
  dest: string,
  extra: string[],
): Promise<RunResult> {
  return run(
    process.execPath,
    [
      '--import',
      'tsx',
      KILN_MAIN,
      'build',
      '-c',
      ctx,
      '-f',
      join(ctx, dockerfile),
      '-d',
      `${env.registry}/${dest}`,
      '--insecure-registry',
      env.registry,
      ...extra,
    ],
    { cwd: REPO_ROOT },
  );
}

function buildahGlobal(env: Env): string[] {
  return ['--root', env.buildahRoot, '--runroot', env.buildahRunRoot, '--storage-driver', 'vfs'];
}

/** Builds and pushes the case with both builders at once; returns how long each took (ms). */
export async function buildBoth(
  env: Env,
  name: string,
  spec: CaseSpec,
  ctx: string,
): Promise<{ kilnMs: number; buildahMs: number }> {
  const secrets = await secretFlags(env, name, spec);
  const flags = [...commonFlags(spec), ...secrets];
  for (const pre of spec.prebuild ?? []) {
    const r = await kilnBuild(env, ctx, pre.dockerfile, `${pre.repo}:latest`, []);
    if (r.code !== 0) throw new Error(`kiln prebuild ${pre.dockerfile} failed:\n${r.stderr.slice(-4000)}`);
  }
  const tag = `localhost/parity-${name}:latest`;
  const t0 = Date.now();
  let kilnMs = 0;
  let buildahMs = 0;
  const kiln = kilnBuild(env, ctx, 'Dockerfile', `kiln/${name}:latest`, flags).then((r) => {
    kilnMs = Date.now() - t0;
    return r;
  });
  const buildah = (async () => {
    await must(
      'buildah',
      [
        ...buildahGlobal(env),
        'build',
        '--isolation',
        'chroot',
        '--layers=false',
        '--tls-verify=false',
        // buildah drops HEALTHCHECK (and ONBUILD, SHELL) from OCI-format images; Docker keeps them.
        '--format',
        'docker',
        '-t',
        tag,
        '-f',
        join(ctx, spec.buildah?.dockerfile ?? 'Dockerfile'),
        ...flags,
        ctx,
      ],
      `buildah build ${name}`,
    );
    await must(
      'buildah',
      [
        ...buildahGlobal(env),
        'push',
        '--tls-verify=false',
        tag,
        `docker://${env.registry}/buildah/${name}:latest`,
      ],
      `buildah push ${name}`,
    );
    // No `buildah rmi`: deleting a vfs image costs seconds per case; the whole buildah root lives in
    // the work dir, removed once at the end.
    buildahMs = Date.now() - t0;
  })();
  const [k] = await Promise.all([kiln, buildah]);
  if (k.code !== 0) throw new Error(`kiln build ${name} failed (exit ${k.code}):\n${k.stderr.slice(-4000)}`);
  return { kilnMs, buildahMs };
}

export interface Unpacked {
  rootfs: string;
  config: ImageConfig;
  /** The whole config blob as text (history included), to search for leaked secrets. */
  configText: string;
}

export interface ImageConfig {
  Env?: string[];
  Cmd?: string[];
  Entrypoint?: string[];
  User?: string;
  WorkingDir?: string;
  ExposedPorts?: Record<string, unknown>;
  Volumes?: Record<string, unknown>;
  Labels?: Record<string, string>;
  StopSignal?: string;
  Healthcheck?: unknown;
  OnBuild?: string[];
  [k: string]: unknown;
}

export async function unpack(env: Env, name: string, who: 'kiln' | 'buildah'): Promise<Unpacked> {
  const dir = join(env.work, name, who);
  const layout = join(dir, 'oci');
  const bundle = join(dir, 'bundle');
  await mkdir(dir, { recursive: true });
  await must(
    'skopeo',
    [
      '--insecure-policy',
      'copy',
      '--src-tls-verify=false',
      `docker://${env.registry}/${who}/${name}:latest`,
      `oci:${layout}:img`,
    ],
    `skopeo copy ${who}/${name}`,
  );
  await must('umoci', ['unpack', '--image', `${layout}:img`, bundle], `umoci unpack ${who}/${name}`);
  // The raw config blob from the registry: skopeo's conversion of a Docker-format image (buildah's)
  // to an OCI layout drops Docker-only fields such as Healthcheck.
  const configText = (
    await must(
      'skopeo',
      [
        'inspect',
        '--raw',
        '--config',
        '--tls-verify=false',
        `docker://${env.registry}/${who}/${name}:latest`,
      ],
      `skopeo inspect ${who}/${name}`,
    )
  ).stdout;
  const config = (JSON.parse(configText) as { config?: ImageConfig }).config ?? {};
  return { rootfs: join(bundle, 'rootfs'), config, configText };
}

export interface Entry {
  type: string;
  mode: string;
  uid: number;
  gid: number;
  size?: number;
  sha256?: string;
  target?: string;
  /** For regular files with nlink > 1: the first path (sorted) sharing the inode. */
  hardlinkOf?: string;
  xattrs?: Record<string, string>;
}

function sha256File(path: string): Promise<string> {
  return new Promise((res, rej) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (d) => h.update(d))
      .on('error', rej)
      .on('end', () => res(h.digest('hex')));
  });
}

function typeOf(st: import('node:fs').Stats): string {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  return 'socket';
}

/** Walks a rootfs into path -> Entry (paths start with `/`). */
export async function walkTree(rootfs: string): Promise<Map<string, Entry>> {
  const out = new Map<string, Entry>();
  const inodes = new Map<number, string>();
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(join(rootfs, rel))).sort();
    for (const n of names) {
      const p = `${rel}/${n}`;
      const abs = join(rootfs, p);
      const st = await lstat(abs);
      const e: Entry = { type: typeOf(st), mode: (st.mode & 0o7777).toString(8), uid: st.uid, gid: st.gid };
      if (st.isFile()) {
        e.size = st.size;
        e.sha256 =
          st.size < 1 << 20
            ? createHash('sha256')
                .update(await readFile(abs))
                .digest('hex')
            : await sha256File(abs);
        if (st.nlink > 1) {
          const first = inodes.get(st.ino);
          if (first === undefined) inodes.set(st.ino, p);
          else e.hardlinkOf = first;
        }
      } else if (st.isSymbolicLink()) {
        e.target = await readlink(abs);
      }
      out.set(p, e);
      if (st.isDirectory()) await walk(p);
    }
  };
  await walk('');
  const xattrs = await run('getfattr', [
    '-R',
    '-P',
    '-d',
    '-m',
    '-',
    '-e',
    'hex',
    '--absolute-names',
    rootfs,
  ]);
  let current: string | undefined;
  for (const line of xattrs.stdout.split('\n')) {
    if (line.startsWith('# file: ')) {
      current = line.slice(8).slice(rootfs.length);
      continue;
    }
    const eq = line.indexOf('=');
    if (current === undefined || eq < 0) continue;
    const e = out.get(current);
    if (!e) continue;
    (e.xattrs ??= {})[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

export interface Difference {
  path?: string;
  field?: string;
  kiln: unknown;
  buildah: unknown;
}

/**
 * Known buildah behaviour, not a kiln difference: `buildah build` (chroot isolation, 1.28) leaves the
 * mount targets of its RUN sandbox in the image when the base lacks them: empty /etc/hosts,
 * /etc/hostname and /etc/resolv.conf stubs and empty /dev, /proc, /sys, /run (and /run/secrets after a
 * secret mount) directories. BuildKit removes such mount stubs after each RUN, so Docker images do not
 * contain them and kiln must NOT have them (the parity test asserts that separately).
 */
export const BUILDAH_STUBS = [
  '/etc/hosts',
  '/etc/hostname',
  '/etc/resolv.conf',
  '/dev',
  '/proc',
  '/sys',
  '/run',
  '/run/secrets',
];

function isStub(e: Entry | undefined): boolean {
  return e !== undefined && ((e.type === 'file' && e.size === 0) || e.type === 'dir');
}

export function compareTrees(kiln: Map<string, Entry>, buildah: Map<string, Entry>): Difference[] {
  const diffs: Difference[] = [];
  const paths = new Set([...kiln.keys(), ...buildah.keys()]);
  for (const p of [...paths].sort()) {
    if (BUILDAH_STUBS.includes(p) && !kiln.has(p) && isStub(buildah.get(p))) continue;
    const k = kiln.get(p);
    const b = buildah.get(p);
    if (JSON.stringify(k) !== JSON.stringify(b)) diffs.push({ path: p, kiln: k, buildah: b });
  }
  return diffs;
}

export const CONFIG_FIELDS = [
  'Env',
  'Cmd',
  'Entrypoint',
  'User',
  'WorkingDir',
  'ExposedPorts',
  'Volumes',
  'Labels',
  'StopSignal',
  'Healthcheck',
  'OnBuild',
] as const;

function norm(v: unknown): unknown {
  if (v === undefined || v === null || v === '') return undefined;
  if (Array.isArray(v) && v.length === 0) return undefined;
  if (typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    if (Object.keys(o).length === 0) return undefined;
    return Object.fromEntries(
      Object.keys(o)
        .sort()
        .map((k) => [k, o[k]]),
    );
  }
  return v;
}

/** buildah stamps its own version label on every image (known buildah behaviour, not part of the Dockerfile). */
export const BUILDAH_LABEL = 'io.buildah.version';

export function compareConfigs(kiln: ImageConfig, buildah: ImageConfig): Difference[] {
  const diffs: Difference[] = [];
  for (const f of CONFIG_FIELDS) {
    const k = norm(kiln[f]);
    let bv: unknown = buildah[f];
    if (f === 'Labels' && bv) {
      bv = Object.fromEntries(
        Object.entries(bv as Record<string, string>).filter(([l]) => l !== BUILDAH_LABEL),
      );
    }
    const b = norm(bv);
    if (JSON.stringify(k) !== JSON.stringify(b)) diffs.push({ field: f, kiln: k, buildah: b });
  }
  return diffs;
}

export function unexplained(diffs: Difference[], known: KnownDifference[] = []): Difference[] {
  return diffs.filter(
    (d) =>
      !known.some((k) =>
        d.field !== undefined
          ? k.field === d.field
          : k.path !== undefined &&
            d.path !== undefined &&
            (k.path === d.path || (k.path.endsWith('/') && d.path.startsWith(k.path))),
      ),
  );
}

function passwdLookup(text: string, name: string, idField: number): number | undefined {
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === name) return Number(f[idField]);
  }
  return undefined;
}

/** Runs the image's ENTRYPOINT+CMD chrooted into its rootfs as its USER, with its Env and WorkingDir. */
export async function runImage(u: Unpacked, args?: string[]): Promise<RunResult> {
  const c = u.config;
  const argv = [...(c.Entrypoint ?? []), ...(args ?? c.Cmd ?? [])];
  let uid = 0;
  let gid = 0;
  const user = c.User ?? '';
  if (user !== '') {
    const [un, gn] = user.split(':') as [string, string | undefined];
    const passwd = existsSync(join(u.rootfs, 'etc/passwd'))
      ? await readFile(join(u.rootfs, 'etc/passwd'), 'utf8')
      : '';
    const group = existsSync(join(u.rootfs, 'etc/group'))
      ? await readFile(join(u.rootfs, 'etc/group'), 'utf8')
      : '';
    uid = /^\d+$/.test(un) ? Number(un) : (passwdLookup(passwd, un, 2) ?? -1);
    if (gn !== undefined) gid = /^\d+$/.test(gn) ? Number(gn) : (passwdLookup(group, gn, 2) ?? -1);
    else gid = /^\d+$/.test(un) ? (passwdLookupByUid(passwd, uid) ?? 0) : (passwdLookup(passwd, un, 3) ?? 0);
    if (uid < 0 || gid < 0) throw new Error(`user ${user} not found in the image`);
  }
  const wd = c.WorkingDir || '/';
  return run(
    'chroot',
    [
      `--userspec=${uid}:${gid}`,
      `--groups=${gid}`,
      u.rootfs,
      '/bin/sh',
      '-c',
      'cd "$0" && exec "$@"',
      wd,
      ...argv,
    ],
    {
      env: Object.fromEntries(
        (c.Env ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]),
      ),
    },
  );
}

function passwdLookupByUid(text: string, uid: number): number | undefined {
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[2] === String(uid)) return Number(f[3]);
  }
  return undefined;
}

export async function grepTree(rootfs: string, needle: string): Promise<string[]> {
  const r = await run('grep', ['-rlF', '--', needle, rootfs]);
  return r.stdout.split('\n').filter((l) => l !== '');
}
