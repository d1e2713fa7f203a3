/**
 * Rootless mode: kiln re-execs itself as root of a new user namespace (like `buildah unshare`), with
 * the current user mapped to 0 and its /etc/subuid and /etc/subgid ranges mapped to 1…N, so that
 * image files owned by any id can be created. Every RUN then only needs mount/pid/uts/ipc namespaces,
 * which root of that user namespace may create.
 */
import { spawn } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import { userInfo } from 'node:os';
import { KilnError } from '../util/errors.ts';
import { findTool, firstLine, inInitialUserNamespace, runTool } from './tools.ts';

/** Set in the environment of the re-executed process. */
export const USERNS_ENV = 'KILN_IN_USERNS';
/** The name of the user who started kiln, set in the environment of the re-executed process. */
export const USER_ENV = 'KILN_REEXEC_USER';

/** The user who started kiln (outside the user namespace, when re-executed). */
export function invokingUser(): string {
  const fromEnv = process.env[USER_ENV];
  if (fromEnv && isReexecuted()) return fromEnv;
  return currentUser().name;
}

/**
 * This process's user name and uid. A uid without a passwd entry (OpenShift runs pods as an
 * arbitrary uid) has no name: the uid stands for it, as in /etc/subuid's `uid:start:count` lines.
 */
export function currentUser(): { name: string; uid: number } {
  const uid = process.getuid?.() ?? 0;
  try {
    return { name: userInfo().username, uid };
  } catch {
    // uv_os_get_passwd ENOENT: no passwd entry
    return { name: String(uid), uid };
  }
}

export interface SubIdRange {
  start: number;
  count: number;
}

/**
 * The first range of `user` (a name or a numeric id) in /etc/subuid (or `file`), undefined when it has
 * none. Entries are `name:start:count` or `uid:start:count`.
 */
export function subuidRange(
  user: string | number,
  file = '/etc/subuid',
  uidForName?: number,
): SubIdRange | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const names = new Set<string>([String(user)]);
  if (uidForName !== undefined) names.add(String(uidForName));
  for (const line of text.split('\n')) {
    const l = line.trim();
    if (l === '' || l.startsWith('#')) continue;
    const [who, start, count] = l.split(':');
    if (who === undefined || !names.has(who)) continue;
    const s = Number(start);
    const c = Number(count);
    if (Number.isInteger(s) && Number.isInteger(c) && s >= 0 && c > 0) return { start: s, count: c };
  }
  return undefined;
}

/** subuid and subgid ranges of the current user. */
export function currentSubIdRanges(): { uid?: SubIdRange; gid?: SubIdRange; user: string } {
  const info = currentUser();
  return {
    user: info.name,
    uid: subuidRange(info.name, '/etc/subuid', info.uid),
    gid: subuidRange(info.name, '/etc/subgid', info.uid),
  };
}

/** True in the process kiln re-executed into a user namespace. */
export function isReexecuted(): boolean {
  return process.env[USERNS_ENV] === '1' && !inInitialUserNamespace();
}

/** The command line of this node process, to re-exec it unchanged. */
export function selfArgv(): string[] {
  return [process.execPath, ...process.execArgv, ...process.argv.slice(1)];
}

let mapAutoSupport: boolean | undefined;
/** Whether this util-linux `unshare` has --map-auto (2.38+). */
export async function unshareSupportsMapAuto(unshare: string): Promise<boolean> {
  if (mapAutoSupport === undefined) {
    const r = await runTool(unshare, ['--help']);
    mapAutoSupport = r.stdout.includes('--map-auto');
  }
  return mapAutoSupport;
}

export interface ReexecOptions {
  /** Use newuidmap/newgidmap directly even when unshare has --map-auto. */
  forceHelper?: boolean;
  /**
   * When the full subuid/subgid map cannot be had (no range, no helpers, or the helpers cannot write
   * uid_map, as in a pod with only SETUID/SETGID), map only the current user (to 0, as `unshare -r`)
   * instead of failing. Chown to other ids then fails with EINVAL.
   */
  allowSingleIdMap?: boolean;
  /** Told once when the single-id map is used, with why. */
  onSingleIdMap?: (message: string) => void;
}

/** Set in the re-executed process's environment when it got a single-id map: why it did. */
export const SINGLE_ID_ENV = 'KILN_SINGLE_ID_MAP';

export type IdMapChoice =
  { mode: 'full'; uid: SubIdRange; gid: SubIdRange } | { mode: 'single'; why: string };

const choices = new Map<boolean, IdMapChoice>();
/**
 * The id map the re-exec writes here: the full subordinate map when a trial re-exec of `true` with
 * the very helper the build uses (unshare --map-auto, or newuidmap/newgidmap) works, else a single-id
 * map with why. Cached: `kiln probe` and the re-exec decide once, the same way.
 */
export async function chooseIdMap(forceHelper = false): Promise<IdMapChoice> {
  const known = choices.get(forceHelper);
  if (known) return known;
  const ranges = currentSubIdRanges();
  let choice: IdMapChoice;
  const unshare = findTool('unshare');
  if (!ranges.uid || !ranges.gid) {
    choice = { mode: 'single', why: `no /etc/${ranges.uid ? 'subgid' : 'subuid'} range for ${ranges.user}` };
  } else if (!findTool('newuidmap') || !findTool('newgidmap')) {
    choice = { mode: 'single', why: 'newuidmap/newgidmap not installed (install uidmap)' };
  } else if (!unshare) {
    choice = { mode: 'single', why: "'unshare' (util-linux) is not installed" };
  } else {
    const full: IdMapChoice = { mode: 'full', uid: ranges.uid, gid: ranges.gid };
    // unshare runs newuidmap by PATH, as in the real re-exec.
    const env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' };
    const r = await launch(unshare, [findTool('true') ?? '/bin/true'], env, full, forceHelper, 'capture');
    choice =
      r.code === 0
        ? full
        : {
            mode: 'single',
            why: `the full id map failed (${firstLine(r.stderr, `exit code ${r.code}`)}; newuidmap needs CAP_SETUID and CAP_DAC_OVERRIDE in the bounding set to write uid_map)`,
          };
  }
  choices.set(forceHelper, choice);
  return choice;
}

/** The hint of a single-id map: what gives the full one. */
export function fullMapHint(user: string): string {
  return `add a range (usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${user}) and let newuidmap/newgidmap write it (setuid root, or file capabilities cap_setuid/cap_setgid, with those capabilities and CAP_DAC_OVERRIDE not dropped from the container)`;
}

/**
 * Runs `argv` (argv[0] is the executable, e.g. `selfArgv()`) in a new user + mount namespace with the
 * id map `chooseIdMap` decided and returns its exit code (128+n when it died of signal n).
 * SIGINT/SIGTERM are forwarded.
 */
export async function reexecInUserNamespace(
  argv: string[],
  env: NodeJS.ProcessEnv,
  opts: ReexecOptions = {},
): Promise<number> {
  const unshare = findTool('unshare');
  if (!unshare) {
    throw new KilnError(
      'isolation',
      'TOOL_MISSING',
      "rootless mode needs 'unshare', which is not installed",
      {
        hint: 'install util-linux',
      },
    );
  }
  const user = currentUser().name;
  const choice = await chooseIdMap(opts.forceHelper);
  const childEnv: NodeJS.ProcessEnv = { ...env, [USERNS_ENV]: '1', [USER_ENV]: user };
  if (choice.mode === 'single') {
    if (!opts.allowSingleIdMap) {
      throw new KilnError(
        'isolation',
        currentSubIdRanges().uid ? 'USERNS_MAP' : 'NO_SUBUID',
        `cannot map the subordinate ids of ${user}: ${choice.why}`,
        {
          hint: fullMapHint(user),
        },
      );
    }
    opts.onSingleIdMap?.(`only one id is mapped: ${choice.why}`);
    childEnv[SINGLE_ID_ENV] = choice.why;
  } else {
    delete childEnv[SINGLE_ID_ENV];
  }
  return (await launch(unshare, argv, childEnv, choice, opts.forceHelper ?? false, 'inherit')).code;
}

/** Starts `argv` in the user namespace with `map`; 'capture' keeps its stderr (for the trial). */
async function launch(
  unshare: string,
  argv: string[],
  env: NodeJS.ProcessEnv,
  map: IdMapChoice,
  forceHelper: boolean,
  io: 'inherit' | 'capture',
): Promise<{ code: number; stderr: string }> {
  const stdio =
    io === 'inherit' ? (['inherit', 'inherit', 'inherit'] as const) : (['ignore', 'ignore', 'pipe'] as const);
  const ns = ['--mount', '--fork', '--kill-child', '--', ...argv];
  if (map.mode === 'single' || (!forceHelper && (await unshareSupportsMapAuto(unshare)))) {
    const maps = map.mode === 'single' ? ['--map-root-user'] : ['--map-root-user', '--map-auto'];
    const child = spawn(unshare, ['--user', ...maps, ...ns], { env, stdio: [...stdio] });
    const stderr = collect(child.stderr);
    const code = await waitForwarding(child);
    return { code, stderr: await stderr };
  }
  try {
    const quiet = ['ignore', 'ignore', 'ignore'] as const;
    const code = await reexecWithHelper(
      unshare,
      argv,
      env,
      map.uid,
      map.gid,
      io === 'inherit' ? (['inherit', 'inherit', 'inherit'] as const) : quiet,
    );
    return { code, stderr: '' };
  } catch (e) {
    if (io === 'capture' && e instanceof KilnError && e.code === 'USERNS_MAP')
      return { code: 1, stderr: e.message };
    throw e;
  }
}

function collect(stream: NodeJS.ReadableStream | null): Promise<string> {
  if (!stream) return Promise.resolve('');
  let text = '';
  stream.on('data', (d: Buffer) => (text = (text + d.toString()).slice(-4000)));
  return new Promise((resolve) => {
    stream.on('end', () => resolve(text));
    stream.on('error', () => resolve(text));
  });
}

function waitForwarding(child: ReturnType<typeof spawn>): Promise<number> {
  const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return new Promise((resolve, reject) => {
    child.on('error', (e) => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      reject(
        new KilnError('isolation', 'USERNS_START', `cannot start the user namespace: ${e.message}`, {
          cause: e,
        }),
      );
    });
    child.on('close', (code, signal) => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      if (signal) {
        const n = { SIGINT: 2, SIGKILL: 9, SIGTERM: 15 }[signal as string] ?? 1;
        resolve(128 + n);
      } else resolve(code ?? 1);
    });
  });
}

/**
 * Without --map-auto: the child creates the namespace and waits on fd 3; we write its maps with the
 * setuid newuidmap/newgidmap helpers, then let it go on.
 */
async function reexecWithHelper(
  unshare: string,
  argv: string[],
  env: NodeJS.ProcessEnv,
  uidRange: SubIdRange,
  gidRange: SubIdRange,
  stdio: readonly ['inherit' | 'ignore', 'inherit' | 'ignore', 'inherit' | 'ignore'],
): Promise<number> {
  const newuidmap = findTool('newuidmap');
  const newgidmap = findTool('newgidmap');
  if (!newuidmap || !newgidmap) {
    throw new KilnError('isolation', 'TOOL_MISSING', 'rootless mode needs newuidmap and newgidmap', {
      hint: 'install the uidmap package',
    });
  }
  const sh = findTool('sh') ?? '/bin/sh';
  // The shell blocks on `read` until fd 3 gets a line, then execs argv with the maps in place.
  const child = spawn(
    unshare,
    [
      '--user',
      '--mount',
      '--',
      sh,
      '-c',
      'read -r go <&3; exec 3<&-; [ "$go" = ok ] || exit 125; exec "$@"',
      'kiln',
      ...argv,
    ],
    { env, stdio: [...stdio, 'pipe'] },
  );
  const gate = child.stdio[3];
  const pid = child.pid;
  const release = (word: string) => {
    if (gate && 'write' in gate) gate.end(`${word}\n`);
  };
  const done = waitForwarding(child);
  if (!pid) return await done;
  const myNs = readNs('self');
  for (let i = 0; i < 500 && readNs(String(pid)) === myNs; i++) await new Promise((r) => setTimeout(r, 2));
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const u = await runTool(newuidmap, [
    String(pid),
    '0',
    String(uid),
    '1',
    '1',
    String(uidRange.start),
    String(uidRange.count),
  ]);
  const g = await runTool(newgidmap, [
    String(pid),
    '0',
    String(gid),
    '1',
    '1',
    String(gidRange.start),
    String(gidRange.count),
  ]);
  if (u.code !== 0 || g.code !== 0) {
    release('no');
    await done;
    throw new KilnError(
      'isolation',
      'USERNS_MAP',
      `cannot map ids: ${(u.code !== 0 ? u : g).stderr.trim()}`,
      {
        hint: 'check /etc/subuid and /etc/subgid and that newuidmap/newgidmap are setuid root',
      },
    );
  }
  release('ok');
  return await done;
}

function readNs(pid: string): string {
  try {
    // "user:[inode]"
    return readlinkSync(`/proc/${pid}/ns/user`);
  } catch {
    return '';
  }
}
