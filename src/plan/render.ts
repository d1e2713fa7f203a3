/** The human view of a BuildPlan printed by `kiln plan` and `kiln build --dry-run`. */
import type { CommandForm, Instruction } from '../dockerfile/instructions.ts';
import type { BuildPlan, PlannedStage } from './plan.ts';

const q = (s: string): string => JSON.stringify(s);

function cmd(c: CommandForm): string {
  return c.form === 'exec' ? `[${c.argv.map(q).join(', ')}]` : c.script;
}

/** One instruction after expansion, in Dockerfile syntax. */
export function renderInstruction(ins: Instruction): string {
  switch (ins.kind) {
    case 'from':
      return `FROM ${ins.platform ? `--platform=${ins.platform} ` : ''}${ins.image}${ins.stageName ? ` AS ${ins.stageName}` : ''}`;
    case 'run': {
      const flags = [
        ...ins.mounts.map((m) => `--mount=${m}`),
        ...(ins.network ? [`--network=${ins.network}`] : []),
        ...(ins.security ? [`--security=${ins.security}`] : []),
      ];
      const heredocs = ins.heredocs
        .map((h) => `\n    <<${h.name}: ${h.content.split('\n').length - 1} line(s)`)
        .join('');
      return `RUN ${flags.map((f) => f + ' ').join('')}${cmd(ins.command)}${heredocs}`;
    }
    case 'cmd':
    case 'entrypoint':
      return `${ins.kind.toUpperCase()} ${cmd(ins.command)}`;
    case 'shell':
      return `SHELL [${ins.argv.map(q).join(', ')}]`;
    case 'env':
    case 'label':
      return `${ins.kind.toUpperCase()} ${ins.pairs.map(([k, v]) => `${k}=${q(v)}`).join(' ')}`;
    case 'arg':
      return `ARG ${ins.args.map((a) => (a.default === undefined ? a.name : `${a.name}=${a.default}`)).join(' ')}`;
    case 'copy':
    case 'add': {
      const flags = [
        ...(ins.from !== undefined ? [`--from=${ins.from}`] : []),
        ...(ins.chown !== undefined ? [`--chown=${ins.chown}`] : []),
        ...(ins.chmod !== undefined ? [`--chmod=${ins.chmod}`] : []),
        ...(ins.link ? ['--link'] : []),
        ...(ins.parents ? ['--parents'] : []),
        ...ins.exclude.map((e) => `--exclude=${e}`),
        ...(ins.checksum !== undefined ? [`--checksum=${ins.checksum}`] : []),
        ...(ins.keepGitDir ? ['--keep-git-dir'] : []),
      ];
      return `${ins.kind.toUpperCase()} ${flags.map((f) => f + ' ').join('')}${[...ins.sources, ins.dest].join(' ')}`;
    }
    case 'expose':
    case 'volume':
      return `${ins.kind.toUpperCase()} ${ins.values.join(' ')}`;
    case 'user':
    case 'workdir':
    case 'stopsignal':
    case 'maintainer':
      return `${ins.kind.toUpperCase()} ${ins.value}`;
    case 'healthcheck': {
      if (ins.none) return 'HEALTHCHECK NONE';
      const opts = [
        ins.interval && `--interval=${ins.interval}`,
        ins.timeout && `--timeout=${ins.timeout}`,
        ins.startPeriod && `--start-period=${ins.startPeriod}`,
        ins.startInterval && `--start-interval=${ins.startInterval}`,
        ins.retries !== undefined && `--retries=${ins.retries}`,
      ].filter(Boolean);
      return `HEALTHCHECK ${opts.map((o) => `${o} `).join('')}CMD ${cmd(ins.test!)}`;
    }
    case 'onbuild':
      return `ONBUILD ${ins.trigger}`;
  }
}

function stageTitle(s: PlannedStage): string {
  const base =
    s.base.kind === 'image' ? s.base.ref : s.base.kind === 'scratch' ? 'scratch' : `stage ${s.base.index}`;
  return `stage ${s.index}${s.name ? ` "${s.name}"` : ''} from ${base}${s.platform ? ` (platform ${s.platform})` : ''}`;
}

export function renderPlan(plan: BuildPlan): string {
  const out: string[] = [];
  out.push(`Dockerfile: ${plan.file}${plan.syntax ? ` (syntax ${plan.syntax})` : ''}`);
  if (plan.globalArgs.length) {
    out.push('global ARGs:');
    for (const a of plan.globalArgs)
      out.push(`  ${a.name}=${a.value === undefined ? '<unset>' : q(a.value)}`);
  }
  const t = plan.stages[plan.target]!;
  out.push(`target: stage ${t.index}${t.name ? ` "${t.name}"` : ''}`);
  out.push(`build order: ${plan.order.map((i) => plan.stages[i]!.name ?? String(i)).join(' -> ')}`);
  for (const s of plan.stages) {
    out.push('');
    out.push(`${s.needed ? '' : '[skipped: not needed by the target] '}${stageTitle(s)}`);
    if (s.deps.length)
      out.push(`  uses stages: ${s.deps.map((d) => plan.stages[d]!.name ?? String(d)).join(', ')}`);
    if (s.imageDeps.length) out.push(`  uses images: ${s.imageDeps.join(', ')}`);
    for (const p of s.instructions)
      out.push(`  ${String(p.instruction.at.line).padStart(4)}  ${renderInstruction(p.expanded)}`);
  }
  if (plan.unusedBuildArgs.length || plan.warnings.length) out.push('');
  if (plan.unusedBuildArgs.length) {
    out.push(`warning: build arg(s) ${plan.unusedBuildArgs.join(', ')} were passed but no ARG declares them`);
  }
  for (const w of plan.warnings) {
    out.push(`warning: ${w.at ? `${w.at.file}:${w.at.line}: ` : ''}${w.message} [${w.code}]`);
  }
  return out.join('\n') + '\n';
}
