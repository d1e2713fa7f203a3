/**
 * The other direction of the flag table: typed flag values → `kiln build` argv, for the CI adapters
 * (which start the CLI as a child process and must not bundle commander). Booleans are written as
 * `--flag=true|false` so that no value that follows can be read as theirs.
 */
import {
  BUILD_FLAGS,
  BUILD_ONLY_FLAGS,
  type BuildOnlyValues,
  type FlagSpec,
  type FlagValues,
} from './flag-table.ts';

export type FlagArgs = Partial<FlagValues & BuildOnlyValues>;

const TABLE: Record<string, FlagSpec> = { ...BUILD_FLAGS, ...BUILD_ONLY_FLAGS };

/** argv for `values`, in the order their keys were written; undefined values are left out. */
export function flagArgv(values: FlagArgs): string[] {
  const out: string[] = [];
  for (const [key, v] of Object.entries(values) as Array<[string, unknown]>) {
    const f = TABLE[key];
    if (!f) throw new Error(`flagArgv: ${key} is not in the flag table`);
    if (v === undefined) continue;
    if (f.type === 'bool') out.push(`${f.long}=${v === true}`);
    else if (Array.isArray(v)) for (const item of v) out.push(f.long, String(item));
    else out.push(f.long, String(v));
  }
  return out;
}
