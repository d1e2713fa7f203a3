/**
 * Filling the COPY file pool before the tree exists (src/fs/pool-fill.ts, planned by
 * src/executor/copy-pool-plan.ts): the COPY that follows links every filled entry and its tree is
 * the one a COPY without the pool makes; a source changed after planning, a stopped fill and a
 * destination the tree redirects leave the COPY to make those files itself.
 */
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyIntoRoot, type CopyOptions } from '../../../src/executor/copy-files.ts';
import { planPoolFill } from '../../../src/executor/copy-pool-plan.ts';
import { FilePool } from '../../../src/fs/file-pool.ts';
import { PoolFill } from '../../../src/fs/pool-fill.ts';

let base = '';
let ctx = '';
const FILES = 300;
beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'kiln-fill-'));
  ctx = join(base, 'ctx');
  for (let i = 0; i < FILES; i++) {
    const d = join(ctx, 'src', `d${i % 7}`);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, `f${i}`), `file ${i}\n`.repeat(i % 50));
    if (i % 3 === 0) chmodSync(join(d, `f${i}`), 0o755);
    utimesSync(join(d, `f${i}`), 1_000_000 + i, 1_000_000 + i);
  }
  writeFileSync(join(ctx, 'src', 'skipped.log'), 'not copied');
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

const opts = (pool?: FilePool): CopyOptions => ({
  dest: '/app/src/',
  workdir: '/',
  preserveOwnership: false,
  parents: false,
  multiple: false,
  skip: (host) => host.endsWith('.log'),
  ...(pool ? { pool } : {}),
});
const src = () => [{ hostPath: join(ctx, 'src'), relPath: 'src', sourceRoot: ctx }];

/** Waits until the pool holds `n` entries (temporaries, dot names, not counted). */
async function pooled(n: number): Promise<void> {
  while (readdirSync(join(base, 'pool')).filter((e) => !e.startsWith('.')).length < n)
    await new Promise((r) => setTimeout(r, 10));
}

/** Every entry under `root`: path, type, mode, owner, mtime and bytes. */
function listing(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string): void => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      const st = lstatSync(p);
      const body = st.isFile() ? readFileSync(p, 'utf8') : '';
      out.push(
        `${rel}/${n} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.isDirectory() ? '' : st.mtimeMs} ${body}`,
      );
      if (st.isDirectory()) walk(p, `${rel}/${n}`);
    }
  };
  walk(root, '');
  return out;
}

async function copyTo(name: string, pool?: FilePool): Promise<string> {
  const root = join(base, name);
  mkdirSync(root);
  await copyIntoRoot(root, src(), opts(pool));
  return root;
}

test('a filled pool gives the COPY every file by link, and the same tree as a COPY without it', async () => {
  const pool = new FilePool(join(base, 'pool'));
  const items = await planPoolFill(pool, src(), opts());
  assert.equal(items.length, FILES, 'every copied regular file, not the skipped one');
  // Run to the end before stopping: stop() waits for the batches in flight.
  const fill = new PoolFill(pool.ready()!, items);
  await pooled(FILES);
  const r = await fill.stop();
  assert.equal(r.made, FILES);
  assert.equal(r.failed, undefined);
  assert.deepEqual(
    readdirSync(join(base, 'pool')).filter((n) => n.startsWith('.')),
    [],
    'no temporary left',
  );

  const filled = await copyTo('filled', pool);
  assert.equal(pool.linked, FILES);
  assert.equal(pool.added, 0);
  const plain = await copyTo('plain');
  assert.deepEqual(listing(filled), listing(plain));
  // Planned again, nothing is left to fill.
  assert.equal((await planPoolFill(pool, src(), opts())).length, 0);
});

test('a source changed after planning is not filled; the COPY makes it with its new bytes', async () => {
  const pool = new FilePool(join(base, 'pool'));
  const items = await planPoolFill(pool, src(), opts());
  const changed = join(ctx, 'src', 'd0', 'f0');
  writeFileSync(changed, 'changed after planning\n');
  const fill = new PoolFill(pool.ready()!, items);
  await pooled(FILES - 1);
  const r = await fill.stop();
  assert.equal(r.made, FILES - 1);
  const root = await copyTo('root', pool);
  assert.equal(pool.linked, FILES - 1);
  assert.equal(pool.added, 1);
  assert.equal(readFileSync(join(root, 'app/src/d0/f0'), 'utf8'), 'changed after planning\n');
});

test('a fill stopped at once leaves the rest to the COPY, which still makes the same tree', async () => {
  const pool = new FilePool(join(base, 'pool'));
  const fill = new PoolFill(pool.ready()!, await planPoolFill(pool, src(), opts()));
  const r = await fill.stop();
  assert.ok(r.made < FILES, `stopped before the end (${r.made} made)`);
  const root = await copyTo('root', pool);
  assert.equal(pool.linked, r.made);
  assert.equal(pool.added, FILES - r.made);
  assert.deepEqual(listing(root), listing(await copyTo('plain')));
});

test('a destination the tree redirects through a symlink gets other keys: nothing filled is linked there', async () => {
  const pool = new FilePool(join(base, 'pool'));
  const fill = new PoolFill(pool.ready()!, await planPoolFill(pool, src(), opts()));
  await pooled(FILES);
  await fill.stop();
  const root = join(base, 'redirected');
  mkdirSync(join(root, 'srv'), { recursive: true });
  symlinkSync('/srv', join(root, 'app'));
  await copyIntoRoot(root, src(), opts(pool));
  assert.equal(pool.linked, 0, 'the image paths are /srv/src/..., not the planned /app/src/...');
  assert.equal(readFileSync(join(root, 'srv/src/d1/f1'), 'utf8'), 'file 1\n');
});
