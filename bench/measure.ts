/**
 * Wall time and peak RSS of a command, measured by GNU time around it. Benchmarks compare kiln and
 * another tool run the same way in the same session, and report ratios, never absolute verdicts.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';

export interface Measurement {
  label: string;
  wallSeconds: number;
  maxRssMb: number;
  exitCode: number;
}

export async function measure(
  label: string,
  argv: string[],
  opts: {
    cwd?: string;
    env?: NodeJS.ProcessEnv;
    quiet?: boolean;
    /** Called for every stdout/stderr line with the time it arrived (performance.now()). */
    onLine?: (line: string, atMs: number) => void;
  } = {},
): Promise<Measurement> {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-bench-'));
  const out = join(dir, 'time');
  try {
    const exitCode = await new Promise<number>((resolve, reject) => {
      const child = spawn('/usr/bin/time', ['-f', '%e %M', '-o', out, ...argv], {
        cwd: opts.cwd,
        env: opts.env ?? process.env,
        stdio: opts.onLine
          ? ['ignore', 'pipe', 'pipe']
          : opts.quiet === false
            ? 'inherit'
            : ['ignore', 'ignore', 'pipe'],
      });
      let err = '';
      const onLine = opts.onLine;
      if (onLine) {
        for (const s of [child.stdout, child.stderr]) {
          if (!s) continue;
          createInterface({ input: s }).on('line', (l) => {
            onLine(l, performance.now());
            err = (err + l + '\n').slice(-4000);
          });
        }
      } else {
        child.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
      }
      child.on('error', reject);
      child.on('close', (code) => {
        if (code !== 0) process.stderr.write(`[bench] ${label} exited ${code}:\n${err}\n`);
        resolve(code ?? 1);
      });
    });
    const [wall, rssKb] = readFileSync(out, 'utf8').trim().split('\n').pop()!.split(' ').map(Number) as [
      number,
      number,
    ];
    return { label, wallSeconds: wall, maxRssMb: Math.round(rssKb / 1024), exitCode };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function ratio(a: Measurement, b: Measurement): string {
  return b.wallSeconds > 0 ? (a.wallSeconds / b.wallSeconds).toFixed(2) : 'n/a';
}

export function table(rows: Array<Record<string, string | number>>): string {
  if (rows.length === 0) return '';
  const cols = Object.keys(rows[0]!);
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? '').length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i]!)).join('  ');
  return [
    line(cols),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map((r) => line(cols.map((c) => String(r[c] ?? '')))),
  ].join('\n');
}

/** A scenario's table and its `key=value` metrics line, as bench/main.ts and single-scenario runs print them. */
export function printScenario(r: {
  scenario: string;
  rows: Array<Record<string, string | number>>;
  metrics: Record<string, string | number>;
}): void {
  console.log(`\n== ${r.scenario} ==\n${table(r.rows)}`);
  console.log(
    Object.entries(r.metrics)
      .map(([k, v]) => `${k}=${v}`)
      .join(' '),
  );
}
