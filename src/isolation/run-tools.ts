/**
 * The host tools one sandbox rung drives, found once by absolute path when the sandbox is created, so
 * that a missing tool is a clear isolation error before any RUN starts.
 */
import { KilnError } from '../util/errors.ts';
import { findTool } from './tools.ts';
import type { Rung } from './types.ts';

export interface RunTools {
  unshare: string;
  nsenter: string;
  setpriv: string;
  env: string;
  sh: string;
  mount: string;
  mknod: string;
  cp: string;
  hostname?: string;
  ip?: string;
}

export function requireRunTools(rung: Rung): RunTools {
  const need = (name: string, pkg: string): string => {
    const p = findTool(name);
    if (!p) {
      throw new KilnError(
        'isolation',
        'TOOL_MISSING',
        `the ${rung} sandbox needs '${name}', which is not installed`,
        {
          hint: `install ${pkg} (e.g. apt-get install ${pkg})`,
        },
      );
    }
    return p;
  };
  const namespaced = rung !== 'plain';
  return {
    unshare: namespaced ? need('unshare', 'util-linux') : '',
    mount: namespaced ? need('mount', 'mount') : '',
    nsenter: need('nsenter', 'util-linux'),
    setpriv: need('setpriv', 'util-linux'),
    env: need('env', 'coreutils'),
    sh: need('sh', 'dash'),
    mknod: rung === 'plain' ? need('mknod', 'coreutils') : '',
    cp: rung === 'plain' ? need('cp', 'coreutils') : '',
    hostname: findTool('hostname'),
    ip: findTool('ip'),
  };
}
