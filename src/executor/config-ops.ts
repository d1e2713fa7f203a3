/**
 * How each metadata instruction changes the image config, following Docker (BuildKit) semantics.
 * Inputs are already expanded; these functions only touch the config object they are given.
 */
import { posix } from 'node:path';
import type { ContainerConfig, HealthConfig, ImageConfig } from '../image/types.ts';
import { KilnError, type SourcePosition } from '../util/errors.ts';

export function containerConfig(cfg: ImageConfig): ContainerConfig {
  cfg.config ??= {};
  return cfg.config;
}

/** Env as an ordered list of KEY=value, replacing an existing KEY in place (Docker keeps the position). */
export function setEnv(cfg: ImageConfig, pairs: Array<[string, string]>): void {
  const c = containerConfig(cfg);
  const env = c.Env ? [...c.Env] : [];
  for (const [k, v] of pairs) {
    const i = env.findIndex((e) => e === k || e.startsWith(`${k}=`));
    if (i >= 0) env[i] = `${k}=${v}`;
    else env.push(`${k}=${v}`);
  }
  c.Env = env;
}

export function getEnv(cfg: ImageConfig): Map<string, string> {
  const m = new Map<string, string>();
  for (const e of cfg.config?.Env ?? []) {
    const i = e.indexOf('=');
    if (i < 0) m.set(e, '');
    else m.set(e.slice(0, i), e.slice(i + 1));
  }
  return m;
}

export function setLabels(cfg: ImageConfig, pairs: Array<[string, string]>): void {
  const c = containerConfig(cfg);
  c.Labels = { ...(c.Labels ?? {}) };
  for (const [k, v] of pairs) c.Labels[k] = v;
}

/** `80`, `80/tcp`, `53/udp`, `8000-8002/tcp` → normalised `port/proto` keys. */
export function exposePorts(cfg: ImageConfig, specs: string[], at?: SourcePosition): void {
  const c = containerConfig(cfg);
  const ports = { ...(c.ExposedPorts ?? {}) };
  for (const spec of specs) {
    const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(spec);
    if (!m) {
      throw new KilnError('dockerfile', 'BAD_EXPOSE', `invalid port "${spec}" in EXPOSE`, {
        position: at,
        hint: 'write ports as 80, 80/tcp, 53/udp or a range like 8000-8010/tcp',
      });
    }
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    const proto = (m[3] ?? 'tcp').toLowerCase();
    if (hi < lo || hi > 65535) {
      throw new KilnError('dockerfile', 'BAD_EXPOSE', `invalid port range "${spec}" in EXPOSE`, {
        position: at,
        hint: 'the end of a range must be at least its start and at most 65535',
      });
    }
    for (let p = lo; p <= hi; p++) ports[`${p}/${proto}`] = {};
  }
  c.ExposedPorts = ports;
}

export function addVolumes(cfg: ImageConfig, paths: string[], at?: SourcePosition): void {
  const c = containerConfig(cfg);
  const vols = { ...(c.Volumes ?? {}) };
  for (const p of paths) {
    if (p.trim() === '') {
      throw new KilnError('dockerfile', 'BAD_VOLUME', 'VOLUME specified can not be an empty string', {
        position: at,
      });
    }
    vols[p] = {};
  }
  c.Volumes = vols;
}

export function setUser(cfg: ImageConfig, user: string): void {
  containerConfig(cfg).User = user;
}

/** WORKDIR: relative paths resolve against the current one; the result is always clean and absolute. */
export function setWorkdir(cfg: ImageConfig, dir: string): string {
  const c = containerConfig(cfg);
  const base = c.WorkingDir || '/';
  const next = posix.resolve(base, dir);
  c.WorkingDir = next;
  return next;
}

/**
 * ENTRYPOINT replaces the entrypoint and, as BuildKit does, drops a CMD inherited from the base
 * image; a CMD set earlier in the same stage (`cmdSetInStage`) is kept.
 */
export function setEntrypoint(cfg: ImageConfig, argv: string[], cmdSetInStage: boolean): void {
  const c = containerConfig(cfg);
  c.Entrypoint = argv;
  if (!cmdSetInStage) c.Cmd = null;
}

export function setCmd(cfg: ImageConfig, argv: string[]): void {
  containerConfig(cfg).Cmd = argv;
}

export function setStopSignal(cfg: ImageConfig, signal: string, at?: SourcePosition): void {
  if (!/^(SIG[A-Z0-9+-]+|[A-Z0-9]+|\d+)$/.test(signal)) {
    throw new KilnError('dockerfile', 'BAD_STOPSIGNAL', `invalid STOPSIGNAL "${signal}"`, {
      position: at,
      hint: 'use a signal name like SIGTERM or a number like 15',
    });
  }
  containerConfig(cfg).StopSignal = signal;
}

export function setShell(cfg: ImageConfig, shell: string[]): void {
  containerConfig(cfg).Shell = shell;
}

export function setHealthcheck(cfg: ImageConfig, hc: HealthConfig | 'none'): void {
  const c = containerConfig(cfg);
  c.Healthcheck = hc === 'none' ? { Test: ['NONE'] } : hc;
}

export function addOnbuild(cfg: ImageConfig, trigger: string): void {
  const c = containerConfig(cfg);
  c.OnBuild = [...(c.OnBuild ?? []), trigger];
}

/** The default shell for shell-form RUN/CMD/ENTRYPOINT on Linux. */
export const DEFAULT_SHELL = ['/bin/sh', '-c'];

export function currentShell(cfg: ImageConfig): string[] {
  const s = cfg.config?.Shell;
  return s && s.length > 0 ? s : DEFAULT_SHELL;
}

/** Go duration strings as HEALTHCHECK takes them (`30s`, `1m30s`, `500ms`) → nanoseconds. */
export function parseDuration(value: string, flag: string, at?: SourcePosition): number {
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  const unit: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  if (value === '0') return 0;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(value); m; m = re.exec(value)) {
    total += Number(m[1]) * unit[m[2]!]!;
    matched = re.lastIndex;
  }
  if (matched !== value.length || value.length === 0) {
    throw new KilnError('dockerfile', 'BAD_DURATION', `invalid duration "${value}" for ${flag}`, {
      position: at,
      hint: 'use a duration like 30s, 1m30s or 500ms',
    });
  }
  return Math.round(total);
}
