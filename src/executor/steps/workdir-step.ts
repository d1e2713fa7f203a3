/**
 * WORKDIR: sets the working directory and creates it (owned by the current USER when it had to be
 * made), which is a layer when the directory was missing.
 */
import { chown, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { StringInstruction } from '../../dockerfile/instructions.ts';
import { resolveInRoot } from '../../fs/rootpath.ts';
import { setWorkdir } from '../config-ops.ts';
import { layerHistory } from '../history.ts';
import { resolveFileOwner } from '../passwd.ts';
import { configEnv } from '../step-cache.ts';
import type { StepContext } from './context.ts';
import { expandInScope } from './expand.ts';
import type { StepModule } from './module.ts';

async function workdirStep(ins: StringInstruction, ctx: StepContext): Promise<void> {
  const b = ctx.builder;
  const dir = setWorkdir(structuredClone(b.config), ins.value);
  const user = b.config.config?.User;
  await b.change(layerHistory(`WORKDIR ${dir}`), async (root) => {
    const host = await resolveInRoot(root, dir);
    const made = await mkdir(host, { recursive: true, mode: 0o755 });
    // BuildKit creates a missing WORKDIR owned by the current USER, and so every parent it had to
    // create (its mkdir -p chowns each new directory).
    if (made !== undefined && user) {
      const u = await resolveFileOwner(root, user);
      for (let p = host; ; p = dirname(p)) {
        await chown(p, u.uid, u.gid);
        if (p === made || p === root || dirname(p) === p) break;
      }
    }
  });
  setWorkdir(b.config, ins.value);
}

export const workdirModule: StepModule<StringInstruction> = {
  expand: expandInScope,
  touchesFilesystem: true,
  cache: 'layer',
  // Relative WORKDIRs join the current one; a created directory belongs to the current USER.
  keyInputs: async (_ins, ctx, h) => ({ env: configEnv(ctx, h, true), sources: '' }),
  run: workdirStep,
  restore: (ins, ctx) => void setWorkdir(ctx.builder.config, ins.value),
};
