/**
 * The extracted-tree store through the real CLI, on a busybox base in the chroot rung (overlay
 * snapshots): a rebuild with one changed source file clones the base + cached RUN tree instead of
 * extracting them, gives the same image as a build without the store, and no in-place edit by a later
 * RUN or COPY reaches the kept files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { kiln, type CliResult } from '../helpers/cli.ts';
import { useBusyboxRegistry } from '../helpers/busybox-registry.ts';

const isRoot = process.getuid?.() === 0;
const fx = useBusyboxRegistry('kiln-tree-store');

function build(cacheDir: string, tag: string, extra: string[] = []): Promise<CliResult> {
  return kiln([
    'build',
    '-c',
    join(fx.dir, 'ctx'),
    '--destination',
    `${fx.reg.host}/app/trees:${tag}`,
    '--insecure-registry',
    fx.reg.host,
    '--isolation',
    'chroot',
    '--cache-dir',
    cacheDir,
    '--reproducible',
    '-v',
    'debug',
    ...extra,
  ]);
}

/** Content, mode, owner, link count and inode of every file under `dir`: what an in-place write changes. */
async function fingerprint(dir: string): Promise<string> {
  const h = createHash('sha256');
  const walk = async (d: string): Promise<void> => {
    for (const name of (await readdir(d)).sort()) {
      // A hit touches the entry's meta file (its LRU clock): not part of the tree.
      if (name === 'meta.json') continue;
      const p = join(d, name);
      const st = await lstat(p);
      h.update(`${p} ${st.mode} ${st.uid}:${st.gid} ${st.ino} ${st.mtimeMs}\n`);
      if (st.isDirectory()) await walk(p);
      else if (st.isFile()) h.update(await readFile(p));
    }
  };
  await walk(dir);
  return h.digest('hex');
}

function digestOf(r: CliResult): string {
  const m = /sha256:[0-9a-f]{64}/.exec(r.stdout);
  assert.ok(m, r.stdout);
  return m[0];
}

test(
  'a one-file rebuild clones the kept tree, gives the same image, and never writes the kept files',
  { skip: !isRoot },
  async () => {
    const ctx = join(fx.dir, 'ctx');
    mkdirSync(join(ctx, 'src'), { recursive: true });
    writeFileSync(
      join(ctx, 'Dockerfile'),
      [
        `FROM ${fx.base}`,
        'RUN mkdir /deps && for i in $(seq 1 300); do echo "dep $i" > /deps/$i; done',
        'COPY src/ /src/',
        // In-place edits of files the kept tree shares: append, chmod, touch; and COPY over a base file.
        'RUN cat /src/main > /out && echo edited >> /etc/passwd && chmod 700 /bin/busybox && touch -d 2001-01-01 /deps/1',
        'COPY src/main /etc/group',
      ].join('\n'),
    );
    writeFileSync(join(ctx, 'src/main'), 'v1\n');
    const cache = join(fx.dir, 'cache');
    const first = await build(cache, 'v1');
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /tree store: kept 1 layers/, 'the base is kept');
    const trees = join(cache, 'trees');
    const baseOnly = await fingerprint(trees);

    // Second build: the RUN hits, COPY misses: the kept base is cloned, the cached RUN layer applied
    // on it, and base + RUN kept together.
    writeFileSync(join(ctx, 'src/main'), 'v2\n');
    const second = await build(cache, 'v2');
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /RUN mkdir \/deps.*\(cached, dir\)/);
    assert.match(second.stderr, /tree store: 1 layers \(\w+\) cloned/);
    assert.doesNotMatch(second.stderr, /DEBUG base \S+ extracted in/, 'the base is not extracted again');
    assert.match(second.stderr, /tree store: kept 2 layers/);
    const entries = await readdir(join(trees, (await readdir(trees))[0]!));
    assert.equal(entries.length, 2, entries.join(' '));

    // Third build: nothing is extracted at all; the kept trees are unchanged by its in-place edits.
    const before = await fingerprint(trees);
    assert.notEqual(before, baseOnly);
    writeFileSync(join(ctx, 'src/main'), 'v3\n');
    const third = await build(cache, 'v3');
    assert.equal(third.code, 0, third.stderr);
    assert.match(third.stderr, /tree store: 2 layers \(\w+\) cloned/, 'base + cached RUN cloned');
    assert.doesNotMatch(third.stderr, /DEBUG base \S+ extracted in/);
    assert.doesNotMatch(
      third.stderr,
      /cached layer \S+ restored in/,
      'the cached RUN layer is not extracted',
    );
    assert.equal(
      await fingerprint(trees),
      before,
      'the kept trees are byte-for-byte, inode-for-inode unchanged',
    );

    // The same build without the store (fresh cache dir, store off) gives the same image.
    const plain = await build(join(fx.dir, 'cache-off'), 'v3-off', ['--tree-cache-size', '0']);
    assert.equal(plain.code, 0, plain.stderr);
    assert.doesNotMatch(plain.stderr, /tree store/);
    assert.equal(digestOf(third), digestOf(plain));
  },
);
