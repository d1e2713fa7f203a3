/**
 * The last link of every rung: the host command line that clears the environment, drops to the RUN's
 * user and groups and enters the root. Pure: the same input always gives the same argv.
 */
import type { RunSpec } from './types.ts';

export interface ExecChainTools {
  env: string;
  setpriv: string;
  nsenter: string;
}

export interface ExecChainInput {
  spec: Pick<RunSpec, 'argv' | 'env' | 'uid' | 'gid' | 'additionalGids'>;
  /** Host path of the root and of the working directory inside it. */
  root: string;
  hostCwd: string;
  /** setgroups(2) is denied in this user namespace (a single-id map): the groups are kept. */
  setgroupsDenied: boolean;
}

/** `env -i <spec.env> setpriv --regid G --groups … nsenter --root=R --wd=W --setuid=U -- argv`. */
export function execChain(tools: ExecChainTools, input: ExecChainInput): string[] {
  const { spec } = input;
  const groups = [...new Set(spec.additionalGids)];
  const groupArgs = input.setgroupsDenied
    ? ['--keep-groups']
    : groups.length > 0
      ? [`--groups=${groups.join(',')}`]
      : ['--clear-groups'];
  return [
    tools.env,
    '-i',
    '--',
    ...spec.env.filter((e) => e.includes('=') && !e.startsWith('=')),
    tools.setpriv,
    `--regid=${spec.gid}`,
    ...groupArgs,
    '--',
    tools.nsenter,
    `--root=${input.root}`,
    `--wd=${input.hostCwd}`,
    `--setuid=${spec.uid}`,
    '--',
    ...spec.argv,
  ];
}
