/**
 * The exports kiln's CLI leaves to the action: `type=oci,dest=file` is an OCI layout as a tarball
 * (buildx's form; kiln writes the directory, tar packs it), and `load: true` hands the docker
 * archive kiln wrote to `docker load`. Without a docker CLI, load is an error naming what to do.
 */
import * as exec from '@actions/exec';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KilnError } from '../../util/errors.ts';
import type { ActionPlan } from './plan.ts';

/** The size of the first manifest an OCI layout's index.json names (the pushed digest's descriptor). */
async function layoutSize(dir: string): Promise<number | undefined> {
  try {
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as {
      manifests?: { size?: number }[];
    };
    return index.manifests?.[0]?.size;
  } catch {
    return undefined;
  }
}

async function must(cmd: string, args: string[], what: string, hint: string): Promise<void> {
  let code: number;
  try {
    code = await exec.exec(cmd, args, { ignoreReturnCode: true });
  } catch (e) {
    throw new KilnError('usage', 'BAD_INPUT', `${what}: cannot run ${cmd}`, { hint, cause: e });
  }
  if (code !== 0) throw new KilnError('usage', 'BAD_INPUT', `${what}: ${cmd} exited ${code}`, { hint });
}

/** Finishes the exports; returns the image descriptor's size when a layout tells it. */
export async function finishExports(plan: ActionPlan, tags: string[]): Promise<number | undefined> {
  const layout = plan.exports.ociLayoutDir ?? plan.ociLayoutTemp;
  const size = layout ? await layoutSize(layout) : undefined;
  if (plan.ociLayoutTemp && plan.exports.ociTarball) {
    await must(
      'tar',
      ['-cf', plan.exports.ociTarball, '-C', plan.ociLayoutTemp, 'oci-layout', 'index.json', 'blobs'],
      'input outputs: type=oci',
      'the runner needs tar on PATH; or write type=oci,dest=<dir>,tar=false for the directory',
    );
  }
  if (plan.exports.load) {
    const archive = plan.exports.dockerArchive ?? plan.loadArchive!;
    await must(
      'docker',
      ['load', '--input', archive],
      'input load',
      'load needs a Docker daemon and the docker CLI on the runner; without one, write the image with outputs: type=docker,dest=image.tar (or push it)',
    );
    if (tags.length === 0) process.stdout.write('kiln: loaded without a tag (give tags to name it)\n');
  }
  return size;
}
