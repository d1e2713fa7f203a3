/** Test keys made by openssl itself (an independent tool), for signing tests. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** An EC P-256 key pair as PEM files: `<dir>/<name>.pem` (PKCS#8 private) and `<dir>/<name>.pub`. */
export async function opensslP256(dir: string, name: string): Promise<{ key: string; pub: string }> {
  const key = join(dir, `${name}.pem`);
  const pub = join(dir, `${name}.pub`);
  await execFileP('openssl', [
    'genpkey',
    '-algorithm',
    'EC',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-out',
    key,
  ]);
  await execFileP('openssl', ['pkey', '-in', key, '-pubout', '-out', pub]);
  return { key, pub };
}
