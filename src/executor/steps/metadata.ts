/**
 * Instructions that only change the image config (ENV, LABEL, EXPOSE, VOLUME, USER, CMD,
 * ENTRYPOINT, SHELL, STOPSIGNAL, HEALTHCHECK, ONBUILD, MAINTAINER, ARG). Each adds a history entry
 * with empty_layer, as BuildKit does; WORKDIR also creates the directory (a layer when it had to).
 */
import { chown, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { CommandForm, Instruction } from '../../dockerfile/instructions.ts';
import type { HealthConfig } from '../../image/types.ts';
import {
  addOnbuild,
  addVolumes,
  currentShell,
  exposePorts,
  parseDuration,
  setCmd,
  setEntrypoint,
  setEnv,
  setHealthcheck,
  setLabels,
  setShell,
  setStopSignal,
  setUser,
  setWorkdir,
} from '../config-ops.ts';
import { goQuotedList, layerHistory } from '../history.ts';
import { resolveInRoot } from '../../fs/rootpath.ts';
import { resolveFileOwner } from '../passwd.ts';
import type { StepContext } from './context.ts';

export function commandArgv(cmd: CommandForm, shell: string[]): string[] {
  return cmd.form === 'exec' ? cmd.argv : [...shell, cmd.script];
}

export async function metadataStep(ins: Instruction, ctx: StepContext): Promise<boolean> {
  const b = ctx.builder;
  const shell = currentShell(b.config);
  switch (ins.kind) {
    case 'arg':
      // ARG values are already in the scope (dispatch); BuildKit records no history for ARG.
      return true;
    case 'env':
      for (const [k, v] of ins.pairs) ctx.scope.setEnv(k, v);
      b.metadata(`ENV ${ins.pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`, (cfg) => setEnv(cfg, ins.pairs));
      return true;
    case 'label':
      b.metadata(`LABEL ${ins.pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`, (cfg) =>
        setLabels(cfg, ins.pairs),
      );
      return true;
    case 'expose':
      b.metadata(`EXPOSE ${ins.values.join(' ')}`, (cfg) => exposePorts(cfg, ins.values, ins.at));
      return true;
    case 'volume':
      b.metadata(`VOLUME ${goQuotedList(ins.values)}`, (cfg) => addVolumes(cfg, ins.values, ins.at));
      return true;
    case 'user':
      b.metadata(`USER ${ins.value}`, (cfg) => setUser(cfg, ins.value));
      return true;
    case 'stopsignal':
      b.metadata(`STOPSIGNAL ${ins.value}`, (cfg) => setStopSignal(cfg, ins.value, ins.at));
      return true;
    case 'maintainer':
      b.metadata(`MAINTAINER ${ins.value}`, (cfg) => {
        cfg.author = ins.value;
      });
      return true;
    case 'cmd': {
      const argv = commandArgv(ins.command, shell);
      b.metadata(`CMD ${goQuotedList(argv)}`, (cfg) => setCmd(cfg, argv));
      b.cmdSetInStage = true;
      return true;
    }
    case 'entrypoint': {
      const argv = commandArgv(ins.command, shell);
      b.metadata(`ENTRYPOINT ${goQuotedList(argv)}`, (cfg) => setEntrypoint(cfg, argv, b.cmdSetInStage));
      return true;
    }
    case 'shell':
      b.metadata(`SHELL ${goQuotedList(ins.argv)}`, (cfg) => setShell(cfg, ins.argv));
      return true;
    case 'healthcheck': {
      if (ins.none) {
        b.metadata('HEALTHCHECK NONE', (cfg) => setHealthcheck(cfg, 'none'));
        return true;
      }
      const test = ins.test!.form === 'exec' ? ['CMD', ...ins.test!.argv] : ['CMD-SHELL', ins.test!.script];
      const hc: HealthConfig = { Test: test };
      if (ins.interval !== undefined) hc.Interval = parseDuration(ins.interval, '--interval', ins.at);
      if (ins.timeout !== undefined) hc.Timeout = parseDuration(ins.timeout, '--timeout', ins.at);
      if (ins.startPeriod !== undefined)
        hc.StartPeriod = parseDuration(ins.startPeriod, '--start-period', ins.at);
      if (ins.startInterval !== undefined)
        hc.StartInterval = parseDuration(ins.startInterval, '--start-interval', ins.at);
      if (ins.retries !== undefined) hc.Retries = ins.retries;
      b.metadata(`HEALTHCHECK ${JSON.stringify(hc)}`, (cfg) => setHealthcheck(cfg, hc));
      return true;
    }
    case 'onbuild':
      b.metadata(`ONBUILD ${ins.trigger}`, (cfg) => addOnbuild(cfg, ins.trigger));
      return true;
    case 'workdir': {
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
      return true;
    }
    default:
      return false;
  }
}
