/** Choosing one platform's manifest from an index, with the architecture and variant aliases. */
import { formatPlatform as formatKnownPlatform } from '../image/platform.ts';
import type { Descriptor, Index, Platform } from '../image/types.ts';

/** `amd64`, `arm64`, `arm` etc. from the aliases people and uname use. */
export function normalizeArch(arch: string): string {
  switch (arch.toLowerCase()) {
    case 'x86_64':
    case 'x86-64':
    case 'x64':
      return 'amd64';
    case 'aarch64':
      return 'arm64';
    case 'armhf':
      return 'arm';
    case 'i386':
    case 'i686':
    case 'ia32':
      return '386';
    default:
      return arch.toLowerCase();
  }
}

/** The variant with the architecture's default filled in: arm64 → v8, arm → v7. */
function normalizeVariant(arch: string, variant: string | undefined): string | undefined {
  const v = variant?.toLowerCase();
  if (arch === 'arm64') return v === undefined || v === '' || v === '8' ? 'v8' : v;
  if (arch === 'arm') return v === undefined || v === '' ? 'v7' : /^\d$/.test(v) ? `v${v}` : v;
  return v === '' ? undefined : v;
}

/** `os/arch[/variant]` of a platform read from a registry, where os or arch may be missing. */
export function formatPlatform(p: Partial<Platform>): string {
  return formatKnownPlatform({
    os: p.os ?? 'unknown',
    architecture: p.architecture ?? 'unknown',
    ...(p.variant ? { variant: p.variant } : {}),
  });
}

/** Whether an index entry's platform satisfies the wanted one (variant only compared when wanted). */
export function platformMatches(have: Platform | undefined, want: Platform): boolean {
  if (!have) return false;
  if (have.os !== want.os) return false;
  const a = normalizeArch(have.architecture);
  if (a !== normalizeArch(want.architecture)) return false;
  if (want.variant === undefined || want.variant === '') return true;
  return normalizeVariant(a, have.variant) === normalizeVariant(a, want.variant);
}

/** Picks the manifest for a platform from an index; undefined when none matches. */
export function choosePlatform(index: Index, want: Platform): Descriptor | undefined {
  const matches = index.manifests.filter((m) => platformMatches(m.platform, want));
  if (matches.length <= 1) return matches[0];
  // Several variants match when none was asked for: prefer the architecture's default variant.
  const arch = normalizeArch(want.architecture);
  const def = normalizeVariant(arch, undefined);
  return matches.find((m) => normalizeVariant(arch, m.platform?.variant) === def) ?? matches[0];
}
