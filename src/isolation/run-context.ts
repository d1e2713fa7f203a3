/** Everything one run of a rung needs, prepared by sandbox.ts. */
import type { ResolvedMount, Stubs } from './root-stubs.ts';
import type { RunTools } from './run-tools.ts';
import type { ProotAssets } from './plain-proot.ts';
import type { OutputSinks } from './spawn-run.ts';
import type { RunSpec } from './types.ts';

export interface RunContext {
  tools: RunTools;
  opts: OutputSinks & { onWarning?: (message: string) => void; keepUtsName?: boolean };
  spec: RunSpec;
  root: string;
  hostCwd: string;
  hostname: string;
  /** Private scratch directory of this run. */
  tmp: string;
  stubs: Stubs;
  etcMounts: ResolvedMount[];
  mounts: ResolvedMount[];
  setgroupsDenied: boolean;
  /** Plain rung in PRoot mode: its assets, prepared on first use. */
  proot?: () => Promise<ProotAssets>;
  /** Directories below this one may be made traversable for PRoot's tracees (plain-run.ts). */
  shareTop: string;
}
