/**
 * The build-push-action inputs kiln does not carry out as buildx would: each one given becomes an
 * ::error (the build would differ, so the step fails before building) or a ::warning (a resource
 * or builder setting with no effect on the image), naming the input and what to do instead.
 * Nothing given is ever dropped without one of these.
 */
import type { ActionInputs } from './action-inputs.ts';

export interface Report {
  level: 'error' | 'warning' | 'notice';
  input: string;
  message: string;
}

const KNOWN_ENTITLEMENTS = new Set(['network.host', 'security.insecure']);

function entitlementReports(allow: string[]): Report[] {
  const out: Report[] = [];
  const known = allow.filter((a) => KNOWN_ENTITLEMENTS.has(a));
  const other = allow.filter((a) => !KNOWN_ENTITLEMENTS.has(a));
  if (known.length)
    out.push({
      level: 'notice',
      input: 'allow',
      message: `${known.join(', ')}: kiln needs no entitlement for RUN --network=host / --security=insecure (it warns on each such step)`,
    });
  if (other.length)
    out.push({
      level: 'warning',
      input: 'allow',
      message: `${other.join(', ')}: no such entitlement in kiln; only network.host and security.insecure exist (ignored)`,
    });
  return out;
}

/** Reports for the inputs given that kiln cannot honour as build-push-action does. */
export function inputReports(i: ActionInputs): Report[] {
  const r: Report[] = [];
  const err = (input: string, message: string): number => r.push({ level: 'error', input, message });
  const warn = (input: string, message: string): number => r.push({ level: 'warning', input, message });
  if (i.addHosts.length)
    err(
      'add-hosts',
      'kiln cannot add /etc/hosts entries to RUN steps yet; write them in the RUN itself (echo "1.2.3.4 name" >> /etc/hosts && ...) or use network: host',
    );
  if (i.ssh.length)
    err(
      'ssh',
      'kiln does not forward SSH agents or keys to RUN --mount=type=ssh; pass a deploy key with secret-files and RUN --mount=type=secret',
    );
  if (i.load && i.platforms.length > 1)
    warn(
      'load',
      `docker load takes one image per tag: of the ${i.platforms.length} platforms, only the runner's (else the first) is loaded; the push and outputs type=oci hold all of them`,
    );
  if (i.call && i.call !== 'build')
    err(
      'call',
      `call: ${i.call} is not supported (kiln only builds); run \`kiln plan\` in a step of its own to check a Dockerfile`,
    );
  if (i.network && !['default', 'none', 'host'].includes(i.network))
    err(
      'network',
      `network: ${i.network}: kiln's RUN networks are default, none and host (no named networks: there is no Docker daemon)`,
    );
  if (i.builder)
    warn(
      'builder',
      `builder: ${i.builder} is ignored: kiln is the builder (no buildx instance is used; setup-buildx-action is not needed)`,
    );
  if (i.cgroupParent)
    warn(
      'cgroup-parent',
      'ignored: kiln puts RUN steps in no cgroup of their own; limit the whole job instead',
    );
  if (i.shmSize)
    warn(
      'shm-size',
      `shm-size: ${i.shmSize} is ignored: RUN steps get a 64 MiB /dev/shm; mount a bigger tmpfs with RUN --mount=type=tmpfs,target=/dev/shm,size=...`,
    );
  if (i.ulimit.length)
    warn(
      'ulimit',
      `${i.ulimit.join(', ')} ignored: RUN steps inherit the runner's limits; set them in the RUN (ulimit -n ...) where the limit allows`,
    );
  if (i.noCacheFilters.length)
    warn(
      'no-cache-filters',
      `kiln cannot skip the cache for single stages (${i.noCacheFilters.join(', ')}): the layer cache is off for this whole build`,
    );
  r.push(...entitlementReports(i.allow));
  return r;
}
