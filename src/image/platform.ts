/** `os/arch[/variant]` strings ↔ OCI Platform objects, and the host's platform. */
import type { Platform } from './types.ts';
import { KilnError } from '../util/errors.ts';

const NODE_ARCH: Record<string, string> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ia32: '386',
  ppc64: 'ppc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
};

export function hostPlatform(): Platform {
  const architecture = NODE_ARCH[process.arch] ?? process.arch;
  return architecture === 'arm64'
    ? { os: 'linux', architecture, variant: 'v8' }
    : { os: 'linux', architecture };
}

export function parsePlatform(spec: string): Platform {
  const parts = spec.trim().toLowerCase().split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === '')) {
    throw new KilnError('usage', 'BAD_PLATFORM', `invalid platform "${spec}"`, {
      hint: 'write it as os/arch or os/arch/variant, e.g. linux/amd64 or linux/arm64/v8',
    });
  }
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  return variant ? { os, architecture, variant } : { os, architecture };
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/**
 * `--platform` values as given (repeated flags, each a comma list, as buildah and BuildKit take
 * them): every one checked, in order, the same platform once.
 */
export function parsePlatformList(values: readonly string[]): Platform[] {
  const out: Platform[] = [];
  for (const v of values)
    for (const spec of v.split(',')) {
      if (spec.trim() === '') continue;
      const p = parsePlatform(spec);
      if (!out.some((q) => formatPlatform(q) === formatPlatform(p))) out.push(p);
    }
  return out;
}
