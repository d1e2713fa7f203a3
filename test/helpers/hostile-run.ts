/**
 * The hostile-RUN suite, reusable: a static C program (fixtures/hostile/hostile.c, built here with
 * `gcc -static`) run as RUN steps tries each way out of the sandbox and prints one verdict per attack;
 * around the build the host's canaries (a file, a process of another uid, the hostname,
 * kernel.core_pattern) are taken before and compared after. `invoke` says how to run the builder
 * (kiln in a rung, buildah, kiln in a runner container), so the same attacks run everywhere.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
const SOURCE = new URL('../integration/fixtures/hostile/hostile.c', import.meta.url).pathname;

export const ATTACKS = [
  'chroot-escape',
  'escaped-canary-write',
  'escaped-environ',
  'escaped-docker-config',
  'mknod-kmsg',
  'mount-proc',
  'mount-sysfs',
  'core-pattern',
  'ptrace',
  'kill',
  'sethostname',
  'docker-config',
  'environ',
  'linger-leak',
] as const;
export type Attack = (typeof ATTACKS)[number];

/** What one builder gets to run. */
export interface HostileBuild {
  /** Context directory with the Dockerfile and the hostile binary. */
  context: string;
  dockerfile: string;
  /** Host file for `--secret id=tok,src=…`. */
  secretFile: string;
  /** Variables the builder runs with: the registry password (KILN_REGISTRY_*) and DOCKER_CONFIG. */
  env: Record<string, string>;
}

export interface HostileOutcome {
  code: number;
  /** Everything the build printed (RUN output included). */
  output: string;
  /** The build was killed after its time limit (a lingering process held it). */
  timedOut?: boolean;
}

export type HostileInvoke = (build: HostileBuild) => Promise<HostileOutcome>;

export interface HostileReport {
  verdicts: Partial<Record<Attack, { escaped: boolean; detail: string }>>;
  /** The `CAPS …` line the first RUN printed (capget/prctl from inside the RUN). */
  caps?: string;
  outcome: HostileOutcome;
  host: {
    hostnameKept: boolean;
    corePatternKept: boolean;
    canaryFileKept: boolean;
    canaryProcessAlive: boolean;
    /** No process of the hostile program is left on the host after the build. */
    noLingering: boolean;
  };
}

/** Builds the hostile program once per directory (static, so it runs in any root). */
export async function buildHostile(dir: string): Promise<string> {
  const out = join(dir, 'hostile');
  if (!existsSync(out)) await execFileP('gcc', ['-static', '-O1', '-o', out, SOURCE]);
  return out;
}

export interface HostileSetup {
  /** Scratch directory of this run (created; world-traversable). */
  dir: string;
  /** FROM of the Dockerfile: an image with /bin/sh (busybox is enough). */
  base: string;
  /** The registry password the builder holds (its environment), and a token in its docker config. */
  password: string;
  dockerToken: string;
  /** Owner of the build's files (a rootless build user); root when undefined. */
  owner?: string;
}

/** The lingering process's leak file: named per suite run, so processes of a suite running beside this one (another test on the machine) are not taken for this one's. */
const leakPath = (tag: string) => `/leak-${tag}`;

function dockerfile(
  base: string,
  canary: string,
  canaryText: string,
  pid: number,
  s: HostileSetup,
  tag: string,
): string {
  const exec = (args: string[]) => `RUN ${JSON.stringify(['/hostile', ...args])}`;
  const config = join(s.dir, 'docker', 'config.json');
  return [
    `FROM ${base}`,
    'COPY hostile /hostile',
    exec(['caps']),
    // After the double chroot, whatever follows runs from where it got.
    exec([
      'escape',
      canary,
      canaryText,
      'append',
      'escaped-canary-write',
      canary,
      'read',
      'escaped-docker-config',
      config,
      s.dockerToken,
      'environ-as',
      'escaped-environ',
      s.password,
    ]),
    exec([
      'mknod-kmsg',
      'mount-proc',
      'mount-sysfs',
      'core-pattern',
      'ptrace',
      String(pid),
      'kill',
      String(pid),
      'sethostname',
      'hostile-pwned',
      'read',
      'docker-config',
      config,
      s.dockerToken,
      'environ',
      s.password,
    ]),
    exec(['linger', '/run/secrets/tok', leakPath(tag)]),
    'RUN --mount=type=secret,id=tok sleep 2; test -s /run/secrets/tok',
    `RUN if [ -e ${leakPath(tag)} ]; then echo "HOSTILE linger-leak ESCAPED a process of an earlier RUN read this RUN's secret"; else echo "HOSTILE linger-leak blocked no earlier process saw the secret"; fi`,
    '',
  ].join('\n');
}

function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** Pids of processes on this machine whose command line runs the hostile program. */
/** This suite's attack processes still alive: its leak file or its own dir in their arguments. */
function hostileProcesses(tag: string, dir: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const argv = readOr(`/proc/${e}/cmdline`).split('\0');
    const ours = argv.includes(leakPath(tag)) || argv.some((a) => a.startsWith(dir + '/'));
    if (argv[0]?.endsWith('/hostile') && ours) out.push(Number(e));
  }
  return out;
}

/** Runs the suite once through `invoke` and reads the verdicts and the host's canaries. */
export async function runHostileSuite(s: HostileSetup, invoke: HostileInvoke): Promise<HostileReport> {
  await mkdir(s.dir, { recursive: true });
  await chmod(s.dir, 0o755);
  const context = join(s.dir, 'ctx');
  await mkdir(context, { recursive: true });
  await buildHostile(context);
  const canary = join(s.dir, 'canary.txt');
  const canaryText = `host canary ${Math.random().toString(36).slice(2)}`;
  const tag = Math.random().toString(36).slice(2, 10);
  await writeFile(canary, canaryText + '\n', { mode: 0o644 });
  const secretFile = join(s.dir, 'secret.txt');
  await writeFile(secretFile, 'later-run-secret\n', { mode: 0o644 });
  await mkdir(join(s.dir, 'docker'), { recursive: true });
  await writeFile(
    join(s.dir, 'docker', 'config.json'),
    JSON.stringify({ auths: { 'canary.invalid': { auth: s.dockerToken } } }),
    { mode: 0o600 },
  );
  if (s.owner) {
    await execFileP('chown', ['-R', `${s.owner}:`, context, secretFile, join(s.dir, 'docker')]);
  }
  // A process of another uid (nobody), started directly so that its pid is the sleeping process.
  const victim = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'sleep', '900'], {
    stdio: 'ignore',
  });
  const pid = victim.pid!;
  const df = join(context, 'Dockerfile');
  await writeFile(df, dockerfile(s.base, canary, canaryText, pid, s, tag));
  const before = { hostname: hostname(), core: readOr('/proc/sys/kernel/core_pattern') };
  let outcome: HostileOutcome;
  let alive = false;
  try {
    outcome = await invoke({
      context,
      dockerfile: df,
      secretFile,
      env: { DOCKER_CONFIG: join(s.dir, 'docker') },
    });
  } finally {
    try {
      process.kill(pid, 0);
      alive = victim.exitCode === null && victim.signalCode === null;
    } catch {
      alive = false;
    }
    victim.kill('SIGKILL');
  }
  const verdicts: HostileReport['verdicts'] = {};
  let caps: string | undefined;
  for (const line of outcome.output.split('\n')) {
    const m = /^HOSTILE (\S+) (blocked|ESCAPED) ?(.*)$/.exec(line.trim());
    if (m && (ATTACKS as readonly string[]).includes(m[1]!)) {
      verdicts[m[1] as Attack] = { escaped: m[2] === 'ESCAPED', detail: m[3] ?? '' };
    }
    if (line.startsWith('CAPS ')) caps ??= line.trim();
  }
  // sethostname only reports "changed its own": the verdict is the host's name.
  const lingering = hostileProcesses(tag, s.dir);
  for (const p of lingering) process.kill(p, 'SIGKILL');
  const core = readOr('/proc/sys/kernel/core_pattern');
  const report: HostileReport = {
    verdicts,
    caps,
    outcome,
    host: {
      hostnameKept: hostname() === before.hostname,
      corePatternKept: core === before.core,
      canaryFileKept: readOr(canary) === canaryText + '\n',
      canaryProcessAlive: alive,
      noLingering: lingering.length === 0,
    },
  };
  verdicts.sethostname ??= {
    escaped: !report.host.hostnameKept,
    detail: report.host.hostnameKept ? 'host name unchanged' : 'host name changed',
  };
  if (!report.host.corePatternKept) await writeFile('/proc/sys/kernel/core_pattern', before.core);
  // A sandbox that let the attack through must not leave the machine renamed.
  if (!report.host.hostnameKept) await writeFile('/proc/sys/kernel/hostname', before.hostname);
  return report;
}

/** One line per attack, for test output and the README table. */
export function formatReport(name: string, r: HostileReport): string {
  const cells = ATTACKS.map((a) => {
    const v = r.verdicts[a];
    return `${a}=${v ? (v.escaped ? 'ESCAPED' : 'blocked') : 'n/a'}`;
  });
  const h = r.host;
  return `${name}: exit ${r.outcome.code}${r.outcome.timedOut ? ' (timed out)' : ''}; ${cells.join(' ')}; host: hostname ${h.hostnameKept ? 'kept' : 'CHANGED'}, core_pattern ${h.corePatternKept ? 'kept' : 'CHANGED'}, canary file ${h.canaryFileKept ? 'kept' : 'CHANGED'}, canary process ${h.canaryProcessAlive ? 'alive' : 'KILLED'}, lingering ${h.noLingering ? 'none' : 'LEFT'}; ${r.caps ?? 'no CAPS line'}`;
}
