/**
 * Decides the isolation rung by really trying each one with tiny commands, best first:
 *
 * - rootless: a user namespace (`unshare --user --map-root-user --mount`), mount/pid/uts/ipc
 *   namespaces inside it, overlayfs inside it, and a full subordinate id map (--map-auto, i.e.
 *   newuidmap + /etc/subuid). When kiln already runs as root of a user namespace (re-executed), the
 *   namespaces are tried directly and the map is read from /proc/self/uid_map.
 * - chroot: real root; `unshare --mount --uts --ipc --pid --fork` and a mount inside.
 * - plain: chroot(2) only (works under Docker's default seccomp profile).
 *
 * As unprivileged user only rootless can work; as real root chroot is preferred (device nodes and
 * every id work), then rootless, then plain. Every rung gets a report; a failed one carries the
 * failing command's first stderr line.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { posix } from 'node:path';
import { KilnError } from '../util/errors.ts';
import { ensureWorkDir } from '../fs/work-dir.ts';
import { findTool, firstLine, inInitialUserNamespace, mappedIdCount, runTool, shq } from './tools.ts';
import type { ProbeResult, Rung, RungReport } from './types.ts';
import type { SnapshotEngine } from '../fs/types.ts';
import { trialRun } from './probe-trial.ts';
import { PLAIN_PROC_ENV, plainProcWanted, prootUnavailable } from './plain-proot.ts';
import type { PlainProc } from './plain-proot.ts';
import { SINGLE_ID_ENV, chooseIdMap } from './userns.ts';

export type IsolationWant = 'auto' | Rung;

export interface ProbeOptions {
  want: IsolationWant;
  /** A directory kiln may write to; the probe works in a temporary directory below it. */
  workDir: string;
  /** Give every working rung a trial RUN (`kiln probe`), not only until one is chosen (a build). */
  tryAll?: boolean;
  /**
   * Check rungs only until one is chosen, in preference order (a build): the rest are reported as
   * not probed. Their checks were a third of the probe, which the build's first tree waits for.
   */
  stopAtChosen?: boolean;
  /** The build writes zstd layers: the zstd program must be installed. */
  needZstd?: boolean;
}

/** What a single-id map costs a build (README "Isolation" says the same). */
export const SINGLE_ID_LIMITS =
  'base layers are kept as pulled, but files a RUN creates or changes are owned by root in the image, and chown to other ids fails';

const HINTS: Record<Rung, string> = {
  rootless:
    'allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces>0), ' +
    'run the container with --security-opt seccomp=unconfined --security-opt apparmor=unconfined, or run as root with --isolation chroot or plain',
  chroot:
    'run the container with --privileged or --security-opt seccomp=unconfined (kiln must be root), or use --isolation plain',
  plain: 'run kiln as root (the plain rung needs CAP_SYS_CHROOT and CAP_MKNOD)',
};

interface RungOutcome extends RungReport {
  overlay: boolean;
  fullIdMap?: boolean;
  /** sethostname(2) is denied: the RUN keeps the inherited host name. */
  keepUtsName?: boolean;
}

interface Ctx {
  dir: string;
  unshare?: string;
  sh: string;
  euid: number;
  initNs: boolean;
}

function describe(cmd: string[]): string {
  return cmd.map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : shq(w))).join(' ');
}

/** Runs `cmd`; undefined when it worked, else "`cmd` failed: <stderr line>". */
async function attempt(cmd: string[]): Promise<string | undefined> {
  const r = await runTool(cmd[0]!, cmd.slice(1), { timeoutMs: 10000 });
  if (r.code === 0) return undefined;
  const why = firstLine(r.stderr, r.signal ? `killed by ${r.signal}` : `exit code ${r.code}`);
  return `\`${describe(cmd)}\` failed: ${why}`;
}

async function overlayDirs(dir: string, name: string): Promise<string> {
  const base = posix.join(dir, name);
  for (const d of ['lower', 'upper', 'work', 'merged']) await mkdir(posix.join(base, d), { recursive: true });
  return `lowerdir=${base}/lower,upperdir=${base}/upper,workdir=${base}/work ${base}/merged`;
}

async function probeRootless(ctx: Ctx): Promise<RungOutcome> {
  const fail = (reason: string): RungOutcome => ({ rung: 'rootless', ok: false, reason, overlay: false });
  if (!ctx.unshare) return fail("'unshare' (util-linux) is not installed");
  const nsenter = findTool('nsenter');
  const setpriv = findTool('setpriv');
  if (!nsenter || !setpriv) return fail("'nsenter' or 'setpriv' (util-linux) is not installed");

  if (ctx.euid === 0 && !ctx.initNs) {
    // Already root of a user namespace (kiln re-executed itself, or a rootless container).
    const err = await attempt([ctx.unshare, '--mount', '--uts', '--ipc', '--pid', '--fork', 'true']);
    if (err) return fail(err);
    const opts = await overlayDirs(ctx.dir, 'ovl-rootless');
    const ovl = await attempt([ctx.unshare, '--mount', ctx.sh, '-c', `mount -t overlay overlay -o ${opts}`]);
    const ids = Math.min(mappedIdCount('/proc/self/uid_map'), mappedIdCount('/proc/self/gid_map'));
    const full = ids >= 65536;
    const procDir = posix.join(ctx.dir, 'proc-rootless');
    await mkdir(procDir, { recursive: true });
    // What the RUN set-up tries first (namespaced-script.ts): a fresh proc of the RUN's pid namespace.
    const freshProc = !(await attempt([
      ctx.unshare,
      '--mount',
      '--pid',
      '--fork',
      ctx.sh,
      '-c',
      `mount -t proc -o nosuid,nodev,noexec proc ${shq(procDir)}`,
    ]));
    // What the RUN set-up does next: the step's host name in its own UTS namespace. podman's default
    // seccomp profile denies sethostname without CAP_SYS_ADMIN (an OpenShift-like pod drops it).
    const name = findTool('hostname');
    const setName = `{ echo kiln-probe > /proc/sys/kernel/hostname; } 2>/dev/null${name ? ` || ${shq(name)} kiln-probe` : ''}`;
    const utsErr = await attempt([ctx.unshare, '--uts', ctx.sh, '-c', setName]);
    const utsNote = utsErr
      ? `; sethostname is denied (${utsErr}; a seccomp profile that allows it only with CAP_SYS_ADMIN, like podman's default): RUN keeps the container's host name in its own UTS namespace (/etc/hostname shows the step's)`
      : '';
    const procNote = freshProc
      ? ''
      : "; /proc is the container's, bound (a fresh proc cannot be mounted over a masked /proc: RUN sees the container's processes; unmask it with procMount: Unmasked or podman --security-opt unmask=ALL)";
    const single = process.env[SINGLE_ID_ENV];
    const map = full
      ? ''
      : ids === 1
        ? ` (single-id map${single ? `: ${single}` : ''}; ${SINGLE_ID_LIMITS})`
        : ' (not a full map: files owned by unmapped ids cannot be created)';
    return {
      rung: 'rootless',
      ok: true,
      reason: `running as root of a user namespace with ${ids} mapped ids${map}${procNote}${utsNote}; overlayfs ${ovl ? 'unavailable: ' + ovl : 'works'}`,
      overlay: !ovl,
      fullIdMap: full,
      ...(utsErr ? { keepUtsName: true } : {}),
    };
  }

  const userns = [ctx.unshare, '--user', '--map-root-user'];
  let err = await attempt([...userns, '--mount', 'true']);
  if (err) return fail(err);
  err = await attempt([...userns, '--mount', '--uts', '--ipc', '--pid', '--fork', 'true']);
  if (err) return fail(err);
  const opts = await overlayDirs(ctx.dir, 'ovl-userns');
  const ovl = await attempt([...userns, '--mount', ctx.sh, '-c', `mount -t overlay overlay -o ${opts}`]);

  let fullIdMap: boolean;
  let mapNote: string;
  if (ctx.euid === 0) {
    fullIdMap = true;
    mapNote = 'running as root, any id map can be written';
  } else {
    // The same decision, with the same helper and a trial of it, as the re-exec makes.
    const map = await chooseIdMap();
    fullIdMap = map.mode === 'full';
    mapNote =
      map.mode === 'full'
        ? `full id map with ${map.uid.count} subordinate ids from /etc/subuid`
        : `${map.why}: single-id map (${SINGLE_ID_LIMITS})`;
  }
  return {
    rung: 'rootless',
    ok: true,
    reason: `user namespaces work; ${mapNote}; overlayfs ${ovl ? 'unavailable: ' + ovl : 'works'}`,
    overlay: !ovl,
    fullIdMap,
  };
}

async function probeChroot(ctx: Ctx): Promise<RungOutcome> {
  const fail = (reason: string): RungOutcome => ({ rung: 'chroot', ok: false, reason, overlay: false });
  if (ctx.euid !== 0) return fail(`needs root, running as uid ${ctx.euid}`);
  if (!ctx.unshare) return fail("'unshare' (util-linux) is not installed");
  if (!findTool('nsenter') || !findTool('setpriv') || !findTool('mount')) {
    return fail("'nsenter', 'setpriv' or 'mount' (util-linux) is not installed");
  }
  const mnt = posix.join(ctx.dir, 'chroot-mnt');
  await mkdir(mnt, { recursive: true });
  const err = await attempt([
    ctx.unshare,
    '--mount',
    '--uts',
    '--ipc',
    '--pid',
    '--fork',
    ctx.sh,
    '-c',
    `mount -t tmpfs kiln-probe ${shq(mnt)} && mount -t proc proc ${shq(mnt)}`,
  ]);
  if (err) return fail(err);
  const opts = await overlayDirs(ctx.dir, 'ovl-chroot');
  const ovl = await attempt([ctx.unshare, '--mount', ctx.sh, '-c', `mount -t overlay overlay -o ${opts}`]);
  const where = ctx.initNs ? 'as root' : 'as root of a user namespace (device nodes cannot be created)';
  return {
    rung: 'chroot',
    ok: true,
    reason: `mount, pid, uts and ipc namespaces work ${where}; overlayfs ${ovl ? 'unavailable: ' + ovl : 'works'}`,
    overlay: !ovl,
    fullIdMap: ctx.initNs ? undefined : mappedIdCount() >= 65536,
  };
}

async function probePlain(ctx: Ctx): Promise<RungOutcome> {
  const fail = (reason: string): RungOutcome => ({ rung: 'plain', ok: false, reason, overlay: false });
  if (ctx.euid !== 0) return fail(`needs root, running as uid ${ctx.euid}`);
  const chroot = findTool('chroot');
  if (!chroot) return fail("'chroot' (coreutils) is not installed");
  if (!findTool('nsenter') || !findTool('setpriv'))
    return fail("'nsenter' or 'setpriv' (util-linux) is not installed");
  const dir = posix.join(ctx.dir, 'plain-root');
  await mkdir(dir, { recursive: true });
  // An empty root: chroot(2) succeeding shows as "cannot run" (127), failing as 125.
  const r = await runTool(chroot, [dir, '/kiln-probe-none'], { timeoutMs: 10000 });
  if (r.code !== 127) {
    return fail(`\`chroot ${dir} /kiln-probe-none\` failed: ${firstLine(r.stderr, `exit code ${r.code}`)}`);
  }
  return {
    rung: 'plain',
    ok: true,
    reason: 'chroot works (no namespaces: no network isolation, mounts are emulated by copying)',
    overlay: false,
  };
}

/** Environment variable forcing the snapshot engine (`overlay`, `walk`; `auto` or unset: probe). */
export const SNAPSHOT_ENV = 'KILN_SNAPSHOT_ENGINE';

type EngineWant = 'auto' | SnapshotEngine;

function engineWanted(): EngineWant {
  const want = process.env[SNAPSHOT_ENV] || 'auto';
  if (want !== 'auto' && want !== 'overlay' && want !== 'walk') {
    throw new KilnError('usage', 'SNAPSHOT_ENGINE', `${SNAPSHOT_ENV}=${want}: unknown snapshot engine`, {
      hint: `set ${SNAPSHOT_ENV} to overlay, walk or auto`,
    });
  }
  return want;
}

/** The host tools a snapshot engine needs that are missing, with the package that has them. */
export function missingEngineTools(engine: SnapshotEngine): { tools: string[]; pkg: string } | undefined {
  if (engine !== 'overlay') return undefined;
  const tools = ['getfattr', 'setfattr', 'mount', 'umount'].filter((t) => !findTool(t));
  if (tools.length === 0) return undefined;
  const pkg = tools.some((t) => t.endsWith('fattr')) ? 'attr' : 'mount';
  return { tools, pkg };
}

/** Overlay first (when wanted, mountable and its tools are here), then walk, with why overlay was not taken. */
function engineCandidates(want: EngineWant, overlay: boolean): { engines: SnapshotEngine[]; note?: string } {
  if (want === 'walk') return { engines: ['walk'], note: `${SNAPSHOT_ENV}=walk` };
  const missing = missingEngineTools('overlay');
  if (want === 'overlay' && (!overlay || missing)) {
    throw new KilnError(
      'fs',
      'OVERLAY_MOUNT',
      `${SNAPSHOT_ENV}=overlay, but ${missing ? `${missing.tools.join(', ')} not installed` : 'overlayfs cannot be mounted here'}`,
      {
        hint: missing
          ? `install the ${missing.pkg} package (apt-get install ${missing.pkg})`
          : `unset ${SNAPSHOT_ENV}`,
      },
    );
  }
  if (!overlay) return { engines: ['walk'], note: 'this rung cannot mount overlayfs' };
  if (missing) {
    return {
      engines: ['walk'],
      note: `overlay snapshots need ${missing.tools.join(', ')} (install the ${missing.pkg} package); using walk snapshots`,
    };
  }
  return { engines: want === 'overlay' ? ['overlay'] : ['overlay', 'walk'] };
}

/** Tools the build needs beyond the rung and engine: zstd for zstd layers. */
function checkBuildTools(opts: ProbeOptions): void {
  if (opts.needZstd && !findTool('zstd')) {
    throw new KilnError(
      'fs',
      'ZSTD_UNAVAILABLE',
      'zstd layers need the zstd program, which is not installed',
      {
        hint: 'install the zstd package (apt-get install zstd), or use --compression gzip',
      },
    );
  }
}

/** Rungs in order of preference for this process. */
export function preferenceOrder(euid: number, initNs: boolean): Rung[] {
  if (euid === 0 && initNs) return ['chroot', 'rootless', 'plain'];
  return ['rootless', 'chroot', 'plain'];
}

export async function probeIsolation(opts: ProbeOptions): Promise<ProbeResult> {
  await ensureWorkDir(opts.workDir);
  checkBuildTools(opts);
  const wantEngine = engineWanted();
  const dir = await mkdtemp(posix.join(opts.workDir, 'probe-'));
  const ctx: Ctx = {
    dir,
    unshare: findTool('unshare'),
    sh: findTool('sh') ?? '/bin/sh',
    euid: process.geteuid?.() ?? 0,
    initNs: inInitialUserNamespace(),
  };
  try {
    const checks: Record<Rung, () => Promise<RungOutcome>> = {
      rootless: () => probeRootless(ctx),
      chroot: () => probeChroot(ctx),
      plain: () => probePlain(ctx),
    };
    const outcomes = new Map<Rung, RungOutcome>();
    const outcomeOf = async (rung: Rung): Promise<RungOutcome> => {
      let o = outcomes.get(rung);
      if (!o) outcomes.set(rung, (o = await checks[rung]()));
      return o;
    };
    // `kiln probe` and callers that want every report: all three, in the order they always ran.
    if (!opts.stopAtChosen)
      for (const rung of ['rootless', 'chroot', 'plain'] as const) await outcomeOf(rung);
    const order = preferenceOrder(ctx.euid, ctx.initNs);
    const candidates = opts.want === 'auto' ? order : [opts.want];
    let chosen: ({ rung: Rung } & Picked) | undefined;
    for (const rung of order) {
      if ((chosen && !opts.tryAll) || (!candidates.includes(rung) && !opts.tryAll)) continue;
      const o = await outcomeOf(rung);
      if (!o.ok) continue;
      // Unprivileged, the rootless rung only exists after kiln re-executes itself into a user
      // namespace: the build (and `kiln probe`) give it its trial RUN there.
      const picked =
        rung === 'rootless' && ctx.euid !== 0
          ? { engine: engineCandidates(wantEngine, o.overlay).engines[0]! }
          : await tryRung(rung, o, wantEngine, dir);
      if (picked && !chosen && candidates.includes(rung)) chosen = { rung, ...picked };
    }
    if (opts.want !== 'auto' && !chosen) {
      const o = await outcomeOf(opts.want);
      throw new KilnError(
        'isolation',
        'RUNG_UNAVAILABLE',
        `isolation '${opts.want}' is not available: ${o.reason}`,
        {
          hint: HINTS[opts.want],
        },
      );
    }
    const reports: RungReport[] = order.map((r) => {
      const o = outcomes.get(r);
      if (!o)
        return {
          rung: r,
          ok: false,
          reason:
            opts.want === 'auto'
              ? `not probed: ${chosen?.rung ?? 'another rung'} comes first and works (\`kiln probe\` checks every rung)`
              : `not probed: isolation ${opts.want} was asked for`,
        };
      return { rung: r, ok: o.ok, reason: o.reason };
    });
    const c = chosen ? outcomes.get(chosen.rung)! : undefined;
    const result: ProbeResult = {
      chosen: chosen?.rung,
      reports,
      overlay: c?.overlay ?? false,
      snapshot: chosen?.engine ?? 'walk',
    };
    if (chosen?.note) result.snapshotNote = chosen.note;
    if (chosen?.plainProc) result.plainProc = chosen.plainProc;
    if (c?.keepUtsName) result.keepUtsName = true;
    // Walk although overlay was wanted and mountable: a missing tool or a failed trial.
    if (chosen?.engine === 'walk' && chosen.note?.startsWith('overlay snapshots'))
      result.snapshotFallback = true;
    if (c?.fullIdMap !== undefined) result.fullIdMap = c.fullIdMap;
    return result;
  } finally {
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** The plain rung's /proc mechanisms to try, best first, and why PRoot is not among them. */
function plainProcCandidates(): { procs: PlainProc[]; why?: string } {
  const want = plainProcWanted();
  if (want === 'none') return { procs: ['none'], why: `${PLAIN_PROC_ENV}=none` };
  const missing = prootUnavailable();
  if (want === 'proot' && missing) {
    throw new KilnError('isolation', 'RUNG_UNAVAILABLE', `${PLAIN_PROC_ENV}=proot, but ${missing}`, {
      hint: `unset ${PLAIN_PROC_ENV} to run plain-rung RUN steps without /proc`,
    });
  }
  if (missing) return { procs: ['none'], why: missing };
  return { procs: want === 'proot' ? ['proot'] : ['proot', 'none'] };
}

const PROC_NOTE: Record<PlainProc, string> = {
  proot:
    '/proc, /dev/pts bound by PRoot (ptrace path translation under a seccomp filter: not a kernel boundary like chroot)',
  none: 'no /proc (bare chroot)',
};

type Picked = { engine: SnapshotEngine; note?: string; plainProc?: PlainProc };

/**
 * Runs the trial RUN of a rung whose cheap checks passed, with each candidate engine (and, in the
 * plain rung, each /proc mechanism) in turn; marks the rung failed (with the trial's reason) when
 * none works. Returns what was taken.
 */
async function tryRung(
  rung: Rung,
  o: RungOutcome,
  want: EngineWant,
  dir: string,
): Promise<Picked | undefined> {
  if (rung !== 'plain') return tryEngines(rung, o, want, dir);
  const { procs, why } = plainProcCandidates();
  const base = o.reason;
  let prootWhy = why;
  for (const proc of procs) {
    o.ok = true;
    o.reason = base;
    const picked = await tryEngines(rung, o, want, dir, proc);
    if (picked) {
      o.reason += `; ${PROC_NOTE[proc]}${proc === 'none' && prootWhy ? `: ${prootWhy}` : ''}`;
      return { ...picked, plainProc: proc };
    }
    if (proc === 'proot') prootWhy = `PRoot's trial failed (${o.reason.slice(base.length + 6)})`;
  }
  return undefined;
}

async function tryEngines(
  rung: Rung,
  o: RungOutcome,
  want: EngineWant,
  dir: string,
  plainProc?: PlainProc,
): Promise<Picked | undefined> {
  const { engines, note } = engineCandidates(want, o.overlay);
  let overlayWhy: string | undefined;
  for (const engine of engines) {
    const err = await trialRun(rung, engine, dir, plainProc, o.keepUtsName);
    if (!err) {
      const why =
        engine === 'walk' && overlayWhy
          ? `overlay snapshots failed (${overlayWhy}); using walk snapshots`
          : note;
      o.reason += `; a trial RUN works (${engine} snapshots)`;
      return why ? { engine, note: why } : { engine };
    }
    if (engine === 'overlay') overlayWhy = err;
    else {
      o.ok = false;
      o.reason = `${o.reason}; but ${err}`;
    }
  }
  if (o.ok) {
    o.ok = false;
    o.reason = `${o.reason}; but ${overlayWhy ?? 'no snapshot engine works'}`;
  }
  return undefined;
}

/** One line per rung, for `kiln` diagnostics. */
export function formatProbe(p: ProbeResult): string {
  return p.reports
    .map(
      (r) => `${r.rung === p.chosen ? '*' : ' '} ${r.rung.padEnd(8)} ${r.ok ? 'ok  ' : 'FAIL'} ${r.reason}`,
    )
    .join('\n');
}
