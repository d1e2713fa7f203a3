/**
 * What a RUN may do, as capability sets: Docker's default set in the namespaced rungs (a build step
 * gets what `docker build` gives it, no more), and in the plain rung that set without what the rung
 * cannot contain (no namespaces, no pivot_root: the host's devices, network and chroot escape).
 */

/** Capability numbers (linux/capability.h). */
export const CAP = {
  CHOWN: 0,
  DAC_OVERRIDE: 1,
  FOWNER: 3,
  FSETID: 4,
  KILL: 5,
  SETGID: 6,
  SETUID: 7,
  SETPCAP: 8,
  NET_BIND_SERVICE: 10,
  NET_RAW: 13,
  SYS_CHROOT: 18,
  SYS_PTRACE: 19,
  MKNOD: 27,
  AUDIT_WRITE: 29,
  SETFCAP: 31,
} as const;
export type CapName = keyof typeof CAP;

/** Docker's (and BuildKit's) default capability set of a container / build step. */
export const DOCKER_DEFAULT_CAPS: readonly CapName[] = (Object.keys(CAP) as CapName[]).filter(
  (c) => c !== 'SYS_PTRACE',
);

/**
 * The plain rung: without SYS_CHROOT (a second chroot leads out of kiln's chroot), MKNOD (a node made
 * in the root would open the host's device: no device cgroup, no nodev mount), NET_RAW (the network
 * is the host's: raw sockets would sniff and spoof it) and KILL (the pid namespace is the host's: it
 * would signal every process of any uid).
 */
export const PLAIN_DROPPED: readonly CapName[] = ['SYS_CHROOT', 'MKNOD', 'NET_RAW', 'KILL'];
export const PLAIN_CAPS: readonly CapName[] = DOCKER_DEFAULT_CAPS.filter((c) => !PLAIN_DROPPED.includes(c));

/** One line for the probe: what a RUN in the plain rung can still reach. */
export const PLAIN_RUNG_REACH =
  "a plain-rung RUN shares the host's network, pid and ipc namespaces: it can signal processes of its own uid (kiln's when both are root) and reach the host network and abstract sockets; chroot, mknod, raw sockets, mount, sethostname and ptrace or /proc/<pid>/environ of kiln are denied";

/** Hex mask of a set, as /proc/self/status prints CapEff (16 digits). */
export function capMask(caps: readonly CapName[]): string {
  let m = 0n;
  for (const c of caps) m |= 1n << BigInt(CAP[c]);
  return m.toString(16).padStart(16, '0');
}
