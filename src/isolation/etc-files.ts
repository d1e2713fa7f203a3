/** The generated /etc/hosts, /etc/resolv.conf and /etc/hostname a run sees. */
import { readFile, writeFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { KilnError } from '../util/errors.ts';
import type { RunSpec } from './types.ts';

export interface EtcFiles {
  hosts: string;
  resolv: string;
  hostname: string;
}

/** Writes the files into `dir` (a private temporary directory of this run). */
export async function writeEtcFiles(dir: string, spec: RunSpec, hostname: string): Promise<EtcFiles> {
  const hosts = posix.join(dir, 'hosts');
  const resolv = posix.join(dir, 'resolv.conf');
  const hn = posix.join(dir, 'hostname');
  const hostsText = spec.hostsFile
    ? await readFile(spec.hostsFile, 'utf8')
    : `127.0.0.1\tlocalhost ${hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`;
  let resolvText = '';
  try {
    resolvText = await readFile(spec.resolvConfFile ?? '/etc/resolv.conf', 'utf8');
  } catch (e) {
    if (spec.resolvConfFile) {
      throw new KilnError('isolation', 'RESOLV_CONF', `cannot read ${spec.resolvConfFile}`, { cause: e });
    }
  }
  // Copies, so that a RUN writing to them never changes the host's files.
  await writeFile(hosts, hostsText, { mode: 0o644 });
  await writeFile(resolv, resolvText, { mode: 0o644 });
  await writeFile(hn, `${hostname}\n`, { mode: 0o644 });
  return { hosts, resolv, hostname: hn };
}
