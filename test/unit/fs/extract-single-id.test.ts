/**
 * Extraction in a single-id user namespace (podman's ignore_chown_errors): a chown to an unmapped id
 * is skipped and the layer's owner kept in kiln's owner xattr, which the layer writer writes back
 * (and never into the layer as an xattr); without the option it is a typed error, not exit 70.
 * Runs the fixture under `unshare --user --map-root-user` (skipped where user namespaces are denied).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tar from 'tar-stream';
import { makeTar } from '../../helpers/hostile-layers.ts';
import { REPO } from '../../helpers/cli.ts';

const FIXTURE = join(REPO, 'test/unit/fs/fixtures/extract-single-id.ts');
const userns = spawnSync('unshare', ['--user', '--map-root-user', 'true']).status === 0;
const hasAttr = spawnSync('sh', ['-c', 'command -v setfattr && command -v getfattr']).status === 0;
const skip =
  (!userns && 'unprivileged user namespaces unavailable') || (!hasAttr && 'attr tools missing') || undefined;

interface Out {
  code?: string;
  skipped?: string[];
  owners?: Record<string, number>;
  layer?: string;
}

async function inSingleIdNs(mode: 'skip' | 'strict'): Promise<{ out: Out; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-single-id-'));
  const layer = await makeTar([
    { name: 'srv/', type: 'directory', mode: 0o755, uid: 100, gid: 101 },
    { name: 'srv/data', content: 'x', mode: 0o640, uid: 100, gid: 101 },
    { name: 'srv/mine', content: 'y', mode: 0o4755, uid: 0, gid: 0 },
    { name: 'srv/link', type: 'symlink', linkname: 'data', uid: 100, gid: 101 },
  ]);
  await writeFile(join(dir, 'layer.tar'), layer);
  for (const d of ['root', 'out']) await mkdir(join(dir, d));
  const r = spawnSync(
    'unshare',
    [
      '--user',
      '--map-root-user',
      process.execPath,
      '--import',
      'tsx',
      FIXTURE,
      join(dir, 'layer.tar'),
      join(dir, 'root'),
      join(dir, 'out'),
      mode,
    ],
    { cwd: REPO, encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  return { out: JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Out, dir };
}

async function headers(path: string): Promise<Map<string, tar.Header>> {
  const ex = tar.extract();
  const got = new Map<string, tar.Header>();
  ex.on('entry', (h, s, next) => {
    got.set(h.name.replace(/\/$/, ''), h);
    s.on('end', next);
    s.resume();
  });
  const done = new Promise<void>((resolve, reject) => ex.on('finish', () => resolve()).on('error', reject));
  ex.end(await readFile(path));
  await done;
  return got;
}

describe('extraction with a single-id map', { skip }, () => {
  test('chown to unmapped ids is skipped; the layer writer gives the files their owners back', async () => {
    const { out, dir } = await inSingleIdNs('skip');
    try {
      assert.deepEqual(out.skipped?.sort(), ['/srv 100:101', '/srv/data 100:101', '/srv/link 100:101']);
      // In the tree every entry belongs to the one mapped id.
      assert.deepEqual(out.owners, { '/srv': 0, '/srv/data': 0, '/srv/link': 0, '/srv/mine': 0 });
      const h = await headers(out.layer!);
      const own = (n: string) => [h.get(n)?.uid, h.get(n)?.gid, h.get(n)?.mode];
      assert.deepEqual(own('srv'), [100, 101, 0o755]);
      assert.deepEqual(own('srv/data'), [100, 101, 0o640]);
      assert.deepEqual(own('srv/mine'), [0, 0, 0o4755]);
      // A symlink carries no xattr: its owner is the one thing lost (README "Isolation").
      assert.deepEqual(own('srv/link').slice(0, 2), [0, 0]);
      for (const [n, e] of h) {
        assert.ok(
          !Object.keys(e.pax ?? {}).some((k) => k.includes('kiln.owner')),
          `${n}: no kiln xattr in the layer`,
        );
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('without ignoreChownErrors an unmapped owner is a typed isolation error', async () => {
    const { out, dir } = await inSingleIdNs('strict');
    try {
      assert.equal(out.code, 'UNMAPPED_OWNER');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
