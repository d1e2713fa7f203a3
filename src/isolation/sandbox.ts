/**
 * Runs one RUN command in a prepared root directory.
 *
 * rootless / chroot: `unshare --mount --uts --ipc --pid --fork [--net]` starts a small host `sh` as
 * PID 1 of the new namespaces; it mounts a fresh /proc, /sys (read-only), a minimal /dev, binds the
 * generated /etc/hosts, /etc/resolv.conf and /etc/hostname, then the RunSpec mounts, and finally execs
 * `env -i <spec.env> setpriv --regid G --groups … nsenter --root=<root> --wd=<cwd> -S U -- argv`. All mounts
 * live in the private mount namespace and vanish with it. In the rootless rung the builder already runs
 * as root of a user namespace (see userns.ts), so the same code applies, with fallbacks where the
 * kernel forbids a fresh proc/sysfs mount.
 *
 * plain: no namespaces and no mount(2) (Docker's default seccomp profile): chroot only. /dev nodes are
 * made with mknod, bind mounts are emulated by copying (rw ones are copied back), tmpfs by an empty
 * directory, and everything is removed or put back afterwards. There is no /proc and no network
 * isolation in this rung.
 *
 * Mount targets, /proc, /dev, /etc/hosts… that did not exist in the root are created as stubs before
 * the run and removed after it, as BuildKit does, so they never end up in a layer.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import {
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  rename,
  rm,
  rmdir,
  stat,
  symlink,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { posix } from 'node:path';
import { randomBytes } from 'node:crypto';
import { resolveInRoot } from '../fs/rootpath.ts';
import { KilnError } from '../util/errors.ts';
import { findTool, runTool, shq } from './tools.ts';
import type { MountSpec, Rung, RunResult, RunSpec, Sandbox } from './types.ts';

export const DEFAULT_HOSTNAME = 'kiln';
const TAIL_BYTES = 4096;
/** Exit status reserved for "the sandbox could not be set up" (reported as an isolation error). */
const SETUP_FAILED = 125;

export interface SandboxOptions {
  /** Scratch directory for per-run files (generated hosts/resolv.conf/hostname). */
  workDir: string;
  /** Output sink used when the RunSpec has no onStdout/onStderr. */
  onOutput?: (chunk: Buffer, stream: 'stdout' | 'stderr') => void;
  /** Non-fatal notes (e.g. network none is not possible in the plain rung). */
  onWarning?: (message: string) => void;
}

interface Tools {
  unshare: string;
  nsenter: string;
  setpriv: string;
  env: string;
  sh: string;
  mount: string;
  mknod: string;
  cp: string;
  hostname?: string;
  ip?: string;
}

function requireTools(rung: Rung): Tools {
  const need = (name: string, pkg: string): string => {
    const p = findTool(name);
    if (!p) {
      throw new KilnError(
        'isolation',
        'TOOL_MISSING',
        `the ${rung} sandbox needs '${name}', which is not installed`,
        {
          hint: `install ${pkg} (e.g. apt-get install ${pkg})`,
        },
      );
    }
    return p;
  };
  const namespaced = rung !== 'plain';
  return {
    unshare: namespaced ? need('unshare', 'util-linux') : '',
    mount: namespaced ? need('mount', 'mount') : '',
    nsenter: need('nsenter', 'util-linux'),
    setpriv: need('setpriv', 'util-linux'),
    env: need('env', 'coreutils'),
    sh: need('sh', 'dash'),
    mknod: rung === 'plain' ? need('mknod', 'coreutils') : '',
    cp: rung === 'plain' ? need('cp', 'coreutils') : '',
    hostname: findTool('hostname'),
    ip: findTool('ip'),
  };
}

export function createSandbox(rung: Rung, opts: SandboxOptions): Sandbox {
  const tools = requireTools(rung);
  return {
    rung,
    run: (spec) => runOnce(rung, tools, opts, spec),
  };
}

/** Files and directories created in the root for this run only, in creation order. */
class Stubs {
  readonly created: { path: string; dir: boolean }[] = [];

  /** Makes `host` (and missing parents below `root`) exist; records what it created. */
  async ensure(root: string, host: string, kind: 'dir' | 'file'): Promise<void> {
    try {
      await this.create(root, host, kind);
    } catch (e) {
      const where = '/' + posix.relative(root, host);
      const why = e instanceof Error && 'code' in e ? String(e.code) : String(e);
      throw new KilnError(
        'isolation',
        'MOUNT_TARGET',
        `cannot create mount target ${where} in the root (${why})`,
        {
          cause: e,
          hint: 'a file in the image is in the way of the mount target',
        },
      );
    }
  }

  private async create(root: string, host: string, kind: 'dir' | 'file'): Promise<void> {
    if (await exists(host)) return;
    const rel = posix.relative(root, host).split('/').filter(Boolean);
    let cur = root;
    for (let i = 0; i < rel.length; i++) {
      cur = posix.join(cur, rel[i]!);
      if (await exists(cur)) continue;
      const last = i === rel.length - 1;
      if (last && kind === 'file') {
        await writeFile(cur, '', { mode: 0o644 });
        this.created.push({ path: cur, dir: false });
      } else {
        await mkdir(cur, { mode: 0o755 });
        this.created.push({ path: cur, dir: true });
      }
    }
  }

  record(path: string, dir: boolean): void {
    this.created.push({ path, dir });
  }

  /** Removes the stubs, newest first; a stub the command filled in is left alone. */
  async remove(): Promise<void> {
    for (const s of [...this.created].reverse()) {
      try {
        const st = await lstat(s.path);
        if (s.dir) {
          if (st.isDirectory()) await rmdir(s.path);
        } else if (!st.isDirectory() && (!st.isFile() || st.size === 0)) {
          await unlink(s.path);
        }
      } catch {
        // gone already, or not empty: keep
      }
    }
    this.created.length = 0;
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** The generated /etc files a run sees, in a private temporary directory. */
async function writeEtcFiles(
  dir: string,
  spec: RunSpec,
  hostname: string,
): Promise<{ hosts: string; resolv: string; hostname: string }> {
  const hosts = posix.join(dir, 'hosts');
  const resolv = posix.join(dir, 'resolv.conf');
  const hn = posix.join(dir, 'hostname');
  const { readFile } = await import('node:fs/promises');
  const hostsText = spec.hostsFile
    ? await readFile(spec.hostsFile, 'utf8')
    : `127.0.0.1\tlocalhost ${hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`;
  let resolvText = '';
  try {
    resolvText = await readFile(spec.resolvConfFile ?? '/etc/resolv.conf', 'utf8');
  } catch (e) {
    if (spec.resolvConfFile) {
      throw new KilnError('isolation', 'RESOLV_CONF', `cannot read ${spec.resolvConfFile}`, { cause: e });
    }
  }
  // Copies, so that a RUN writing to them never changes the host's files.
  await writeFile(hosts, hostsText, { mode: 0o644 });
  await writeFile(resolv, resolvText, { mode: 0o644 });
  await writeFile(hn, `${hostname}\n`, { mode: 0o644 });
  return { hosts, resolv, hostname: hn };
}

interface ResolvedMount {
  spec: MountSpec;
  host: string;
  sourceIsDir: boolean;
}

/** Whether this process may not call setgroups(2) (a user namespace whose map was written unprivileged). */
function setgroupsDenied(): boolean {
  try {
    return readFileSync('/proc/self/setgroups', 'utf8').trim() === 'deny';
  } catch {
    return false;
  }
}

/** The env/setpriv/nsenter chain that clears the environment, drops to the user and enters the root. */
function execChain(tools: Tools, spec: RunSpec, root: string, hostCwd: string): string[] {
  const groups = [...new Set(spec.additionalGids)];
  // With a single-id map setgroups(2) is denied (/proc/self/setgroups is "deny"): keep the groups.
  const groupArgs = setgroupsDenied()
    ? ['--keep-groups']
    : groups.length > 0
      ? [`--groups=${groups.join(',')}`]
      : ['--clear-groups'];
  return [
    tools.env,
    '-i',
    '--',
    ...spec.env.filter((e) => e.includes('=') && !e.startsWith('=')),
    tools.setpriv,
    `--regid=${spec.gid}`,
    ...groupArgs,
    '--',
    tools.nsenter,
    `--root=${root}`,
    `--wd=${hostCwd}`,
    `--setuid=${spec.uid}`,
    '--',
    ...spec.argv,
  ];
}

/** Tail buffer of combined output: the last TAIL_BYTES bytes. */
class Tail {
  private buf = Buffer.alloc(0);
  push(chunk: Buffer): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    if (this.buf.length > TAIL_BYTES) this.buf = this.buf.subarray(this.buf.length - TAIL_BYTES);
  }
  lines(): string[] {
    const lines = this.buf.toString('utf8').split('\n');
    while (lines.length > 0 && lines[lines.length - 1]!.trim() === '') lines.pop();
    return lines;
  }
}

async function runOnce(rung: Rung, tools: Tools, opts: SandboxOptions, spec: RunSpec): Promise<RunResult> {
  if (spec.argv.length === 0) {
    throw new KilnError('run', 'EMPTY_COMMAND', 'RUN has no command');
  }
  const root = posix.resolve(spec.root);
  if (!(await isDir(root))) {
    throw new KilnError('isolation', 'ROOT_MISSING', `sandbox root ${root} is not a directory`);
  }
  const hostname = spec.hostname || DEFAULT_HOSTNAME;
  // Working directory: created if missing, as Docker does (it stays: it is not a stub).
  const hostCwd = await resolveInRoot(root, spec.cwd || '/');
  if (!(await exists(hostCwd))) await mkdir(hostCwd, { recursive: true, mode: 0o755 });

  await mkdir(opts.workDir, { recursive: true });
  const tmp = await mkdtemp(posix.join(opts.workDir, 'run-'));
  const stubs = new Stubs();
  try {
    const etc = await writeEtcFiles(tmp, spec, hostname);
    const etcMounts: ResolvedMount[] = [];
    for (const [target, source] of [
      ['/etc/hosts', etc.hosts],
      ['/etc/resolv.conf', etc.resolv],
      ['/etc/hostname', etc.hostname],
    ] as const) {
      const host = await resolveInRoot(root, target);
      etcMounts.push({ spec: { type: 'bind', source, target, readonly: false }, host, sourceIsDir: false });
    }
    const mounts: ResolvedMount[] = [];
    for (const m of spec.mounts) {
      const host = await resolveInRoot(root, m.target);
      if (host === root) {
        throw new KilnError('isolation', 'BAD_MOUNT', `cannot mount over the root directory (${m.target})`);
      }
      let sourceIsDir = true;
      if (m.type === 'bind') {
        try {
          sourceIsDir = (await stat(m.source)).isDirectory();
        } catch (e) {
          throw new KilnError('isolation', 'MOUNT_SOURCE', `mount source ${m.source} does not exist`, {
            cause: e,
          });
        }
      }
      mounts.push({ spec: m, host, sourceIsDir });
    }
    if (rung === 'plain') return await runPlain(tools, opts, spec, root, hostCwd, stubs, etcMounts, mounts);
    return await runNamespaced(tools, opts, spec, root, hostCwd, hostname, tmp, stubs, etcMounts, mounts);
  } finally {
    await stubs.remove();
    await rm(tmp, { recursive: true, force: true });
  }
}

async function runNamespaced(
  tools: Tools,
  opts: SandboxOptions,
  spec: RunSpec,
  root: string,
  hostCwd: string,
  hostname: string,
  tmp: string,
  stubs: Stubs,
  etcMounts: ResolvedMount[],
  mounts: ResolvedMount[],
): Promise<RunResult> {
  const proc = await resolveInRoot(root, '/proc');
  const sys = await resolveInRoot(root, '/sys');
  const dev = await resolveInRoot(root, '/dev');
  for (const d of [proc, sys, dev]) await stubs.ensure(root, d, 'dir');
  for (const m of [...etcMounts, ...mounts]) await stubs.ensure(root, m.host, m.sourceIsDir ? 'dir' : 'file');

  const s: string[] = [];
  s.push('fail() { echo "kiln sandbox: $*" >&3; exit ' + SETUP_FAILED + '; }');
  // Read-only bind: a remount must keep the flags locked by a user namespace, so try them in turn.
  s.push(
    'robind() { for o in ro ro,nosuid ro,nodev ro,nosuid,nodev ro,nosuid,nodev,noexec; do ' +
      `${shq(tools.mount)} -o remount,bind,$o "$1" 2>/dev/null && return 0; done; return 1; }`,
  );
  const M = shq(tools.mount);
  // The shell builtin is enough as real root; in a user namespace /proc/sys needs sethostname(2).
  const viaProc = `echo ${shq(hostname)} > /proc/sys/kernel/hostname`;
  s.push(
    tools.hostname
      ? `{ ${viaProc}; } 2>/dev/null || ${shq(tools.hostname)} ${shq(hostname)} 2>&3 || fail "cannot set the hostname"`
      : `${viaProc} 2>&3 || fail "cannot set the hostname"`,
  );
  if (spec.network === 'none' && tools.ip) s.push(`${shq(tools.ip)} link set lo up 2>/dev/null || true`);
  // A fresh proc for the new PID namespace; where the kernel refuses (masked /proc in a user
  // namespace) the host's is bound instead.
  s.push(
    `${M} -t proc -o nosuid,nodev,noexec proc ${shq(proc)} 2>/dev/null || ${M} --rbind /proc ${shq(proc)} 2>&3 || fail "cannot mount /proc"`,
  );
  s.push(
    `if ${M} -t sysfs -o ro,nosuid,nodev,noexec sysfs ${shq(sys)} 2>/dev/null; then :; ` +
      `elif ${M} --rbind /sys ${shq(sys)} 2>/dev/null; then robind ${shq(sys)} || true; fi`,
  );
  // Minimal /dev: a directory prepared here (files as bind targets, pts, shm, the usual symlinks)
  // bound over the image's /dev, then the host's harmless device nodes bound onto it.
  const devDir = posix.join(tmp, 'dev');
  await mkdir(devDir, { mode: 0o755 });
  const nodes = ['null', 'zero', 'full', 'random', 'urandom', 'tty'];
  for (const n of nodes) await writeFile(posix.join(devDir, n), '', { mode: 0o666 });
  for (const d of ['pts', 'shm']) await mkdir(posix.join(devDir, d), { mode: 0o755 });
  for (const [name, target] of [
    ['fd', '/proc/self/fd'],
    ['stdin', '/proc/self/fd/0'],
    ['stdout', '/proc/self/fd/1'],
    ['stderr', '/proc/self/fd/2'],
    ['core', '/proc/kcore'],
    ['ptmx', 'pts/ptmx'],
  ] as const) {
    await symlink(target, posix.join(devDir, name));
  }
  const D = (n: string) => shq(posix.join(dev, n));
  s.push(`${M} --bind ${shq(devDir)} ${shq(dev)} 2>&3 || fail "cannot mount /dev"`);
  for (const n of nodes) {
    s.push(
      `if [ -e /dev/${n} ]; then ${M} --bind /dev/${n} ${D(n)} 2>&3 || fail "cannot bind /dev/${n}"; fi`,
    );
  }
  s.push(
    `${M} -t devpts -o newinstance,ptmxmode=0666,mode=0620,nosuid,noexec devpts ${D('pts')} 2>/dev/null`,
  );
  s.push(
    `${M} -t tmpfs -o nosuid,nodev,noexec,mode=1777,size=65536k shm ${D('shm')} 2>&3 || fail "cannot mount /dev/shm"`,
  );
  for (const m of [...etcMounts, ...mounts]) {
    const dst = shq(m.host);
    if (m.spec.type === 'tmpfs') {
      const size = m.spec.size ? `,size=${m.spec.size}` : '';
      s.push(
        `${M} -t tmpfs -o nosuid,nodev${size} tmpfs ${dst} 2>&3 || fail "cannot mount tmpfs on ${m.spec.target}"`,
      );
    } else {
      s.push(
        `${M} --rbind ${shq(m.spec.source)} ${dst} 2>&3 || fail "cannot bind ${m.spec.source} on ${m.spec.target}"`,
      );
      if (m.spec.readonly) s.push(`robind ${dst} 2>&3 || fail "cannot make ${m.spec.target} read-only"`);
    }
  }
  s.push('exec 3>&-');
  s.push('exec "$@"');

  const args = [
    '--mount',
    '--uts',
    '--ipc',
    '--pid',
    '--fork',
    '--kill-child',
    '--propagation',
    'private',
    ...(spec.network === 'none' ? ['--net'] : []),
    '--',
    tools.sh,
    '-c',
    s.join('\n'),
    'kiln-sandbox',
    ...execChain(tools, spec, root, hostCwd),
  ];
  return await spawnAndWait(tools.unshare, args, spec, opts, false);
}

async function runPlain(
  tools: Tools,
  opts: SandboxOptions,
  spec: RunSpec,
  root: string,
  hostCwd: string,
  stubs: Stubs,
  etcMounts: ResolvedMount[],
  mounts: ResolvedMount[],
): Promise<RunResult> {
  if (spec.network === 'none') {
    opts.onWarning?.('network=none is not possible in the plain isolation rung; the host network is used');
  }
  const dev = await resolveInRoot(root, '/dev');
  await stubs.ensure(root, dev, 'dir');
  const nodes: [string, number, number][] = [
    ['null', 1, 3],
    ['zero', 1, 5],
    ['full', 1, 7],
    ['random', 1, 8],
    ['urandom', 1, 9],
    ['tty', 5, 0],
  ];
  for (const [name, major, minor] of nodes) {
    const p = posix.join(dev, name);
    if (await exists(p)) continue;
    const r = await runTool(tools.mknod, ['-m', '666', p, 'c', String(major), String(minor)]);
    if (r.code !== 0) {
      throw new KilnError('isolation', 'MKNOD_FAILED', `cannot create /dev/${name}: ${r.stderr.trim()}`, {
        hint: 'the plain rung needs CAP_MKNOD; run kiln as root in the container',
      });
    }
    stubs.record(p, false);
  }

  // Emulated mounts: whatever was at the target is moved aside and put back afterwards.
  const placed: { m: ResolvedMount; aside?: string }[] = [];
  const cp = async (src: string, dst: string, dir: boolean): Promise<void> => {
    const r = await runTool(tools.cp, dir ? ['-a', '--', `${src}/.`, dst] : ['-a', '--', src, dst]);
    if (r.code !== 0) {
      throw new KilnError('isolation', 'MOUNT_COPY', `cannot copy ${src} to ${dst}: ${r.stderr.trim()}`);
    }
  };
  try {
    for (const m of [...etcMounts, ...mounts]) {
      let aside: string | undefined;
      if (await exists(m.host)) {
        aside = `${m.host}.kiln-aside-${randomBytes(4).toString('hex')}`;
        await rename(m.host, aside);
      }
      placed.push({ m, aside });
      const dir = m.spec.type === 'tmpfs' || m.sourceIsDir;
      await stubs.ensure(root, posix.dirname(m.host), 'dir');
      if (dir) await mkdir(m.host, { mode: 0o755 });
      if (m.spec.type === 'bind') await cp(m.spec.source, m.host, dir);
    }
    return await spawnAndWait(tools.env, execChain(tools, spec, root, hostCwd).slice(1), spec, opts, true);
  } finally {
    for (const { m, aside } of placed.reverse()) {
      if (m.spec.type === 'bind' && !m.spec.readonly && m.spec.source !== m.host && !etcMounts.includes(m)) {
        // Copy a read-write bind back so caches persist.
        if (m.sourceIsDir) {
          for (const e of await readdir(m.spec.source)) {
            await rm(posix.join(m.spec.source, e), { recursive: true, force: true });
          }
          await cp(m.host, m.spec.source, true);
        } else if (await exists(m.host)) {
          await cp(m.host, m.spec.source, false);
        }
      }
      await rm(m.host, { recursive: true, force: true });
      if (aside) await rename(aside, m.host);
    }
  }
}

function spawnAndWait(
  cmd: string,
  args: string[],
  spec: RunSpec,
  opts: SandboxOptions,
  ownGroup: boolean,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const tail = new Tail();
    let setupErr = '';
    let child;
    try {
      child = spawn(cmd, args, {
        env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' },
        stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
        detached: ownGroup,
      });
    } catch (e) {
      reject(new KilnError('isolation', 'SANDBOX_START', `cannot start ${cmd}`, { cause: e }));
      return;
    }
    let killedBy: string | undefined;
    const kill = (why: string) => {
      killedBy ??= why;
      try {
        if (ownGroup && child.pid) process.kill(-child.pid, 'SIGKILL');
        else child.kill('SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = spec.timeoutMs ? setTimeout(() => kill('timeout'), spec.timeoutMs) : undefined;
    const onAbort = () => kill('aborted');
    if (spec.signal?.aborted) onAbort();
    spec.signal?.addEventListener('abort', onAbort, { once: true });

    child.stdout?.on('data', (d: Buffer) => {
      tail.push(d);
      if (spec.onStdout) spec.onStdout(d);
      else opts.onOutput?.(d, 'stdout');
    });
    child.stderr?.on('data', (d: Buffer) => {
      tail.push(d);
      if (spec.onStderr) spec.onStderr(d);
      else opts.onOutput?.(d, 'stderr');
    });
    const fd3 = child.stdio[3];
    if (fd3 && 'on' in fd3) fd3.on('data', (d: Buffer) => (setupErr += d.toString()));
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      spec.signal?.removeEventListener('abort', onAbort);
      reject(new KilnError('isolation', 'SANDBOX_START', `cannot start ${cmd}: ${e.message}`, { cause: e }));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      spec.signal?.removeEventListener('abort', onAbort);
      if (code === SETUP_FAILED && setupErr.trim() !== '') {
        reject(
          new KilnError('isolation', 'SANDBOX_SETUP', setupErr.trim().split('\n').join('; '), {
            hint: 'the sandbox could not be prepared; try another --isolation rung',
          }),
        );
        return;
      }
      if (signal) {
        const num = (osConstants.signals as Record<string, number>)[signal] ?? 0;
        resolve({
          exitCode: 128 + num,
          signal: killedBy ? `${signal} (${killedBy})` : signal,
          tail: tail.lines(),
        });
        return;
      }
      resolve({ exitCode: code ?? 1, tail: tail.lines() });
    });
  });
}
