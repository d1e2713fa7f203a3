/**
 * Instructions that only change the image config (ENV, LABEL, EXPOSE, VOLUME, USER, CMD,
 * ENTRYPOINT, SHELL, STOPSIGNAL, HEALTHCHECK, ONBUILD, MAINTAINER), one module each. Each adds a
 * history entry with empty_layer, as BuildKit does, and is cached only through the chain.
 */
import type {
  CmdInstruction,
  CommandForm,
  HealthcheckInstruction,
  KeyValueInstruction,
  ListInstruction,
  OnbuildInstruction,
  ShellInstruction,
  StringInstruction,
} from '../../dockerfile/instructions.ts';
import type { HealthConfig, ImageConfig } from '../../image/types.ts';
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
} from '../config-ops.ts';
import { goQuotedList } from '../history.ts';
import type { StepContext } from './context.ts';
import { expandInScope, keepAsWritten } from './expand.ts';
import type { StepModule } from './module.ts';
import type { Instruction } from '../../dockerfile/instructions.ts';

export function commandArgv(cmd: CommandForm, shell: string[]): string[] {
  return cmd.form === 'exec' ? cmd.argv : [...shell, cmd.script];
}

/** A config-only module: `history` is its created_by, `mutate` its change to the config. */
function configStep<I extends Instruction>(
  expand: (ins: I, ctx: StepContext) => I,
  apply: (ins: I, ctx: StepContext) => { history: string; mutate: (cfg: ImageConfig) => void },
): StepModule<I> {
  return {
    expand,
    touchesFilesystem: false,
    cache: 'config',
    run: async (ins, ctx) => {
      const { history, mutate } = apply(ins, ctx);
      ctx.builder.metadata(history, mutate);
    },
  };
}

const pairsText = (ins: KeyValueInstruction): string => ins.pairs.map(([k, v]) => `${k}=${v}`).join(' ');

export const envModule = configStep<KeyValueInstruction>(expandInScope, (ins, ctx) => {
  for (const [k, v] of ins.pairs) ctx.scope.setEnv(k, v);
  return { history: `ENV ${pairsText(ins)}`, mutate: (cfg) => setEnv(cfg, ins.pairs) };
});

export const labelModule = configStep<KeyValueInstruction>(expandInScope, (ins) => ({
  history: `LABEL ${pairsText(ins)}`,
  mutate: (cfg) => setLabels(cfg, ins.pairs),
}));

export const exposeModule = configStep<ListInstruction>(expandInScope, (ins) => ({
  history: `EXPOSE ${ins.values.join(' ')}`,
  mutate: (cfg) => exposePorts(cfg, ins.values, ins.at),
}));

export const volumeModule = configStep<ListInstruction>(expandInScope, (ins) => ({
  history: `VOLUME ${goQuotedList(ins.values)}`,
  mutate: (cfg) => addVolumes(cfg, ins.values, ins.at),
}));

export const userModule = configStep<StringInstruction>(expandInScope, (ins) => ({
  history: `USER ${ins.value}`,
  mutate: (cfg) => setUser(cfg, ins.value),
}));

export const stopsignalModule = configStep<StringInstruction>(expandInScope, (ins) => ({
  history: `STOPSIGNAL ${ins.value}`,
  mutate: (cfg) => setStopSignal(cfg, ins.value, ins.at),
}));

export const maintainerModule = configStep<StringInstruction>(keepAsWritten, (ins) => ({
  history: `MAINTAINER ${ins.value}`,
  mutate: (cfg) => {
    cfg.author = ins.value;
  },
}));

export const cmdModule = configStep<CmdInstruction>(keepAsWritten, (ins, ctx) => {
  const b = ctx.builder;
  const argv = commandArgv(ins.command, currentShell(b.config));
  b.cmdSetInStage = true;
  return { history: `CMD ${goQuotedList(argv)}`, mutate: (cfg) => setCmd(cfg, argv) };
});

export const entrypointModule = configStep<CmdInstruction>(keepAsWritten, (ins, ctx) => {
  const b = ctx.builder;
  const argv = commandArgv(ins.command, currentShell(b.config));
  // Read before the change: a CMD earlier in this stage survives the ENTRYPOINT (BuildKit's rule).
  const keepCmd = b.cmdSetInStage;
  return { history: `ENTRYPOINT ${goQuotedList(argv)}`, mutate: (cfg) => setEntrypoint(cfg, argv, keepCmd) };
});

export const shellModule = configStep<ShellInstruction>(keepAsWritten, (ins) => ({
  history: `SHELL ${goQuotedList(ins.argv)}`,
  mutate: (cfg) => setShell(cfg, ins.argv),
}));

function healthConfig(ins: HealthcheckInstruction): HealthConfig {
  const test = ins.test!.form === 'exec' ? ['CMD', ...ins.test!.argv] : ['CMD-SHELL', ins.test!.script];
  const hc: HealthConfig = { Test: test };
  if (ins.interval !== undefined) hc.Interval = parseDuration(ins.interval, '--interval', ins.at);
  if (ins.timeout !== undefined) hc.Timeout = parseDuration(ins.timeout, '--timeout', ins.at);
  if (ins.startPeriod !== undefined)
    hc.StartPeriod = parseDuration(ins.startPeriod, '--start-period', ins.at);
  if (ins.startInterval !== undefined)
    hc.StartInterval = parseDuration(ins.startInterval, '--start-interval', ins.at);
  if (ins.retries !== undefined) hc.Retries = ins.retries;
  return hc;
}

export const healthcheckModule = configStep<HealthcheckInstruction>(keepAsWritten, (ins) => {
  if (ins.none) return { history: 'HEALTHCHECK NONE', mutate: (cfg) => setHealthcheck(cfg, 'none') };
  const hc = healthConfig(ins);
  return { history: `HEALTHCHECK ${JSON.stringify(hc)}`, mutate: (cfg) => setHealthcheck(cfg, hc) };
});

export const onbuildModule = configStep<OnbuildInstruction>(keepAsWritten, (ins) => ({
  history: `ONBUILD ${ins.trigger}`,
  mutate: (cfg) => addOnbuild(cfg, ins.trigger),
}));
