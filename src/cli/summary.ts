/**
 * The block `kiln build` prints to stderr when a build finishes: what was built, where it went, how
 * big, how long, which isolation rung ran RUN, and one row per step with its cache status. A pure
 * function of the BuildResult so it is tested without building anything; stdout stays the digest.
 */
import type { BuildResult, StepReport } from '../result.ts';

export interface SummaryOptions {
  /** Widest an instruction may be before it is cut with `…` (default 60). */
  instructionWidth?: number;
}

/** 1536 → `1.5 KiB`; bytes below 1 KiB as `N B`. */
export function humanSize(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '?';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${bytes} B`;
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

/** 850 → `850ms`, 12345 → `12.3s`, 125000 → `2m05s`, 3723000 → `1h02m03s`. */
export function humanDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const total = Math.round(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const pad = (n: number): string => String(n).padStart(2, '0');
  return h > 0 ? `${h}h${pad(m)}m${pad(s)}s` : `${m}m${pad(s)}s`;
}

/** Cuts `text` to `width` characters, the last one `…`; newlines and runs of space become one space. */
export function truncate(text: string, width: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  if (flat.length <= width) return flat;
  return width <= 1 ? '…'.slice(0, width) : `${flat.slice(0, width - 1)}…`;
}

function cacheCell(step: StepReport): string {
  if (step.cache === 'none') return '-';
  if (step.cache === 'miss' && step.cacheReason) return `miss (${truncate(step.cacheReason, 40)})`;
  return step.cache;
}

function table(header: string[], rows: string[][], rightAligned: ReadonlySet<number>): string[] {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((cell, c) => {
        const last = c === cells.length - 1;
        if (rightAligned.has(c)) return cell.padStart(widths[c]!);
        return last ? cell : cell.padEnd(widths[c]!);
      })
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

export function formatSummary(result: BuildResult, options: SummaryOptions = {}): string {
  const width = options.instructionWidth ?? 60;
  const out: string[] = ['', 'Build summary'];
  const field = (name: string, value: string): void => {
    out.push(`  ${(name ? `${name}:` : '').padEnd(11)} ${value}`);
  };
  if (result.destinations.length === 0) field('image', '(no destination)');
  else
    result.destinations.forEach((d, i) =>
      field(i === 0 ? (result.destinations.length > 1 ? 'images' : 'image') : '', d),
    );
  field('pushed', result.pushed ? 'yes' : 'no');
  field('digest', result.platforms ? `${result.digest} (index)` : result.digest);
  const platforms = result.platforms ?? [];
  const pw = Math.max(0, ...platforms.map((p) => p.platform.length));
  // A platform's attestation manifest beside its image (what `kiln inspect` finds under it).
  platforms.forEach((p, i) =>
    field(
      i === 0 ? 'platforms' : '',
      `${p.platform.padEnd(pw)}  ${p.digest}${p.attestations?.manifest ? `  attestations ${p.attestations.manifest}` : ''}`,
    ),
  );
  field('image id', result.imageId);
  field('size', `${humanSize(result.size)} (${result.size} bytes)`);
  field('layers', String(result.layers));
  field('time', humanDuration(result.durationMs));
  field(
    'isolation',
    result.isolation.reason
      ? `${result.isolation.rung} (${truncate(result.isolation.reason, 80)})`
      : result.isolation.rung,
  );
  if (result.steps.length > 0) {
    const hits = result.steps.filter((s) => s.cache === 'hit').length;
    const misses = result.steps.filter((s) => s.cache === 'miss').length;
    field('cache', `${hits} hit, ${misses} miss, ${result.steps.length - hits - misses} uncached`);
    out.push('');
    const rows = result.steps.map((s) => [
      s.stage,
      String(s.line),
      truncate(s.instruction, width),
      humanDuration(s.durationMs),
      cacheCell(s),
    ]);
    for (const l of table(['STAGE', 'LINE', 'INSTRUCTION', 'TIME', 'CACHE'], rows, new Set([1, 3])))
      out.push(`  ${l}`);
  }
  return `${out.join('\n')}\n`;
}
