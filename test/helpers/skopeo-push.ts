/**
 * Pushes an OCI layout's image (or, with `all`, its whole index) to a test registry with skopeo,
 * as the base-image helpers do; returns the pushed manifest's digest.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { registryCreds, type TestRegistry } from './registry.ts';
import { SetupError } from './setup-error.ts';

const execFileP = promisify(execFile);

export async function skopeoPushLayout(
  reg: TestRegistry,
  layout: string,
  layoutRef: string,
  dest: { repo: string; tag: string },
  opts: { all?: boolean; tmpRoot: string },
): Promise<string> {
  await mkdir(opts.tmpRoot, { recursive: true });
  const work = await mkdtemp(join(opts.tmpRoot, 'push-'));
  const digestFile = join(work, 'digest');
  const target = `${reg.host}/${dest.repo}:${dest.tag}`;
  const args = ['--insecure-policy', 'copy', ...(opts.all ? ['--all'] : [])];
  args.push('--dest-tls-verify=false', '--digestfile', digestFile);
  const creds = registryCreds(reg);
  if (creds) args.push('--dest-creds', creds);
  args.push(`oci:${layout}:${layoutRef}`, `docker://${target}`);
  try {
    try {
      await execFileP('skopeo', args, { maxBuffer: 64 << 20 });
    } catch (e) {
      throw new SetupError('registry', 'TEST_PUSH_FAILED', `skopeo copy to ${target} failed`, {
        hint: ((e as { stderr?: string }).stderr ?? String(e)).trim().split('\n').slice(-3).join(' | '),
        cause: e,
      });
    }
    const digest = (await readFile(digestFile, 'utf8')).trim();
    if (!/^sha256:[a-f0-9]{64}$/.test(digest))
      throw new SetupError('internal', 'TEST_PUSH_DIGEST', `skopeo wrote an unexpected digest "${digest}"`);
    return digest;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
