/**
 * Contracts of the isolation layer. A Sandbox runs one RUN command in a prepared root directory;
 * which rung it uses was decided once, by the probe.
 */
export type Rung = 'rootless' | 'chroot' | 'plain';

export interface RungReport {
  rung: Rung;
  ok: boolean;
  /** Why it works or, when it does not, the exact failing call and how to fix it. */
  reason: string;
}

export interface ProbeResult {
  /** Best working rung, or undefined when none works. */
  chosen?: Rung;
  reports: RungReport[];
  /** Whether the rung can mount overlayfs. */
  overlay: boolean;
  /** The snapshot engine builds use: overlay when it works end to end here, else walk. */
  snapshot: 'overlay' | 'walk';
  /** Why the snapshot engine is walk although overlay was wanted (one line), if so. */
  snapshotNote?: string;
  /** The note is a fallback worth a warning (overlay tools missing, overlay trial failed). */
  snapshotFallback?: boolean;
  /** Plain rung: how RUN gets /proc (PRoot binding, or none: the bare chroot). */
  plainProc?: 'proot' | 'none';
  /** sethostname(2) is denied here: RUN keeps the inherited host name (SandboxOptions.keepUtsName). */
  keepUtsName?: boolean;
  /** For rootless: a full subuid/subgid map (true) or a single-id map (false). */
  fullIdMap?: boolean;
}

export interface BindMount {
  type: 'bind';
  /** Host path. */
  source: string;
  /** Absolute path inside the root. */
  target: string;
  readonly: boolean;
}
export interface TmpfsMount {
  type: 'tmpfs';
  target: string;
  size?: number;
}
export type MountSpec = BindMount | TmpfsMount;

export interface RunSpec {
  /** Root directory to chroot into. */
  root: string;
  /** Full argv, already including the SHELL for shell-form RUN. */
  argv: string[];
  /** `KEY=value` entries, exactly the environment the command sees. */
  env: string[];
  /** Working directory inside the root; created if missing. */
  cwd: string;
  uid: number;
  gid: number;
  additionalGids: number[];
  mounts: MountSpec[];
  network: 'default' | 'none' | 'host';
  hostname: string;
  /** Host files shown at /etc/hosts and /etc/resolv.conf; never left behind in the root. */
  hostsFile?: string;
  resolvConfFile?: string;
  /** RUN --security=insecure: every capability (BuildKit's opt-in); otherwise Docker's default set. */
  insecure?: boolean;
  signal?: AbortSignal;
  timeoutMs?: number;
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
}

export interface RunResult {
  exitCode: number;
  signal?: string;
  /** The last lines of combined output, for error messages. */
  tail: string[];
}

export interface Sandbox {
  readonly rung: Rung;
  run(spec: RunSpec): Promise<RunResult>;
}
