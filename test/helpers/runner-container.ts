/**
 * kiln inside real runner containers: podman with runc (`--cgroup-manager=cgroupfs`, ulimits within
 * the host's), no image registry: the container's root is a directory made here once (the host's
 * /etc copied, /usr bound read-only, the checkout bound read-only at /repo, so `node --import tsx
 * /repo/src/cli/main.ts` is kiln from this tree). Each environment is the podman flags of one runner
 * setup kiln documents (GitLab Docker executor defaults, a custom seccomp profile, --privileged, a
 * restricted Kubernetes pod with and without a subuid range, an OpenShift-like uid without a passwd
 * entry on a read-only root).
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO } from './cli.ts';

const FIXTURES = join(REPO, 'test/integration/fixtures/runner-containers');
export const DOCKER_SECCOMP = join(FIXTURES, 'docker-default-seccomp.json');
export const UNSHARE_SECCOMP = join(FIXTURES, 'unshare-mount-seccomp.json');

/** Docker's default capability set of a container. */
export const DOCKER_CAPS = [
  'CHOWN',
  'DAC_OVERRIDE',
  'FSETID',
  'FOWNER',
  'MKNOD',
  'NET_RAW',
  'SETGID',
  'SETUID',
  'SETFCAP',
  'SETPCAP',
  'NET_BIND_SERVICE',
  'SYS_CHROOT',
  'KILL',
  'AUDIT_WRITE',
];

export interface RunnerEnv {
  name: string;
  /** podman run flags of this setup. */
  flags: string[];
  /** uid:gid the job runs as. */
  user: string;
  /** /etc/subuid and /etc/subgid contents inside the container. */
  subids: string;
  /** Read-only root: only /work (an emptyDir-like volume) is writable. */
  readOnly?: boolean;
}

const caps = (list: string[]) => ['--cap-drop', 'all', ...list.flatMap((c) => ['--cap-add', c])];

export const RUNNER_ENVS: RunnerEnv[] = [
  {
    name: 'docker-default',
    flags: [...caps(DOCKER_CAPS), '--security-opt', `seccomp=${DOCKER_SECCOMP}`],
    user: '0:0',
    subids: '',
  },
  {
    // The same with `cap_add = ["SYS_PTRACE"]`: the plain rung gets /proc through PRoot.
    name: 'docker-default-ptrace',
    flags: [...caps([...DOCKER_CAPS, 'SYS_PTRACE']), '--security-opt', `seccomp=${DOCKER_SECCOMP}`],
    user: '0:0',
    subids: '',
  },
  {
    name: 'custom-seccomp',
    flags: [
      ...caps(DOCKER_CAPS),
      '--security-opt',
      `seccomp=${UNSHARE_SECCOMP}`,
      '--security-opt',
      'apparmor=unconfined',
    ],
    user: '0:0',
    subids: '',
  },
  { name: 'privileged', flags: ['--privileged'], user: '0:0', subids: '' },
  {
    name: 'k8s-restricted-subuid',
    flags: [...caps(['SETUID', 'SETGID']), '--security-opt', 'seccomp=unconfined'],
    user: '1000:1000',
    subids: 'builder:100000:65536\n',
  },
  {
    name: 'k8s-restricted',
    flags: [...caps(['SETUID', 'SETGID']), '--security-opt', 'seccomp=unconfined'],
    user: '1000:1000',
    subids: '',
  },
  {
    name: 'openshift-readonly',
    flags: [...caps([]), '--read-only', '--read-only-tmpfs=false'],
    user: '1000790000:0',
    subids: '',
    readOnly: true,
  },
];

/** The shared root directory (made once under `dir`). */
export function runnerRootfs(dir: string): string {
  const root = join(dir, 'rootfs');
  if (existsSync(join(root, 'etc', 'passwd'))) return root;
  for (const d of [
    'proc',
    'dev',
    'sys',
    'tmp',
    'var/tmp',
    'run',
    'usr',
    'repo',
    'work',
    'root',
    'home/builder',
  ]) {
    mkdirSync(join(root, d), { recursive: true });
  }
  for (const l of ['bin', 'sbin', 'lib', 'lib64']) symlinkSync(`usr/${l}`, join(root, l));
  cpSync('/etc', join(root, 'etc'), { recursive: true, verbatimSymlinks: true });
  const passwd = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .filter((l) => l && !/^[^:]*:[^:]*:1000:/.test(l))
    .join('\n');
  writeFileSync(join(root, 'etc', 'passwd'), `${passwd}\nbuilder:x:1000:1000::/home/builder:/bin/sh\n`);
  return root;
}

export interface ContainerResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunnerCall {
  env: RunnerEnv;
  rootfs: string;
  /** Host dir of the writable job volume (/work). */
  work: string;
  /** Host dirs shown at the same path (contexts, secrets). */
  share?: string[];
  vars?: Record<string, string>;
  timeoutMs?: number;
}

/** Runs `argv` in the call's container. */
export async function inRunner(call: RunnerCall, argv: string[]): Promise<ContainerResult> {
  const { env, rootfs, work, share = [], vars: extraEnv = {}, timeoutMs = 600_000 } = call;
  await mkdir(join(work, 'tmp'), { recursive: true });
  await chmod(work, 0o777);
  await chmod(join(work, 'tmp'), 0o1777);
  const etc = join(work, '..', `${env.name}-etc`);
  await mkdir(etc, { recursive: true });
  await writeFile(join(etc, 'subuid'), env.subids);
  await writeFile(join(etc, 'subgid'), env.subids);
  const vars = {
    TMPDIR: '/work/tmp',
    HOME: '/work',
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    ...extraEnv,
  };
  const args = [
    '--runtime',
    'runc',
    '--cgroup-manager=cgroupfs',
    'run',
    '--rm',
    '--network',
    'host',
    '--ulimit',
    'nofile=8192:8192',
    '--ulimit',
    'nproc=8192:8192',
    '--user',
    env.user,
    ...env.flags,
    '-v',
    '/usr:/usr:ro',
    '-v',
    `${REPO}:/repo:ro`,
    '-v',
    `${work}:/work`,
    ...share.flatMap((d) => ['-v', `${d}:${d}`]),
    '-v',
    `${join(etc, 'subuid')}:/etc/subuid:ro`,
    '-v',
    `${join(etc, 'subgid')}:/etc/subgid:ro`,
    '-w',
    '/repo',
    ...Object.entries(vars).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
    '--rootfs',
    rootfs,
    ...argv,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn('podman', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-400_000)));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** kiln from the bound checkout, inside the container. */
export function kilnInRunner(call: RunnerCall, args: string[]): Promise<ContainerResult> {
  return inRunner(call, ['node', '--import', 'tsx', '/repo/src/cli/main.ts', ...args]);
}
