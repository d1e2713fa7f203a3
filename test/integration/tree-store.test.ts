/**
 * The extracted-tree store through the real CLI, on a busybox base in the chroot rung (overlay
 * snapshots): a rebuild with one changed source file clones the base + cached RUN tree instead of
 * extracting them, links the unchanged files its COPY makes from the store's file pool, gives the same
 * image as a build without the store, and no in-place edit by a later RUN or COPY reaches the kept
 * or pooled files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { lstat, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { kiln, type CliResult } from '../helpers/cli.ts';
import { useBusyboxRegistry } from '../helpers/busybox-registry.ts';

const isRoot = process.getuid?.() === 0;
const MANY = 100;
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

/**
 * Per kept tree: content, mode, owner, inode and mtime of every file in it (what an in-place write
 * would change).
 */
async function fingerprints(trees: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string, h: ReturnType<typeof createHash>): Promise<void> => {
    for (const name of (await readdir(d)).sort()) {
      const p = join(d, name);
      const st = await lstat(p);
      h.update(`${p} ${st.mode} ${st.uid}:${st.gid} ${st.ino} ${st.mtimeMs}\n`);
      if (st.isDirectory()) await walk(p, h);
      else if (st.isFile()) h.update(await readFile(p));
    }
  };
  for (const id of await readdir(trees))
    for (const entry of await readdir(join(trees, id))) {
      if (entry === 'files.pruned') continue;
      if (entry === 'files') {
        // The COPY file pool: one fingerprint per pooled file (later builds add files).
        for (const name of await readdir(join(trees, id, entry))) {
          const p = join(trees, id, entry, name);
          const st = await lstat(p);
          const h = createHash('sha256').update(`${st.mode} ${st.uid}:${st.gid} ${st.ino} ${st.mtimeMs}\n`);
          out.set(`pool/${name}`, h.update(await readFile(p)).digest('hex'));
        }
        continue;
      }
      const h = createHash('sha256');
      await walk(join(trees, id, entry, 'rootfs'), h);
      out.set(entry, h.digest('hex'));
    }
  return out;
}

/** Every tree kept in `before` is still there, unchanged. */
function assertUnchanged(before: Map<string, string>, after: Map<string, string>): void {
  for (const [entry, fp] of before) assert.equal(after.get(entry), fp, `kept tree ${entry} changed`);
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
        'RUN cat /src/main > /out && echo edited >> /etc/passwd && chmod 700 /bin/busybox && touch -d 2001-01-01 /deps/1 && echo edited >> /src/lib && chmod 600 /src/lib',
        'COPY src/main /etc/group',
      ].join('\n'),
    );
    writeFileSync(join(ctx, 'src/main'), 'v1\n');
    writeFileSync(join(ctx, 'src/lib'), 'lib, never changed\n');
    // Enough files for the cold runner's COPY to fill the pool while its tree is made.
    mkdirSync(join(ctx, 'src/many'), { recursive: true });
    for (let i = 0; i < MANY; i++) writeFileSync(join(ctx, 'src/many', `m${i}`), `many ${i}\n`);
    const cache = join(fx.dir, 'cache');
    const first = await build(cache, 'v1');
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /tree store: kept 1 layers/, 'the base is kept');
    assert.match(first.stderr, /tree store: kept 2 layers/, 'and the tree after the RUN that missed');
    const trees = join(cache, 'trees');
    const kept = await fingerprints(trees);
    const pooled = [...kept.keys()].filter((k) => k.startsWith('pool/')).length;
    assert.equal(kept.size - pooled, 3, 'base; base + RUN; and the tree after the second RUN');
    assert.equal(pooled, 3 + MANY, 'the files both COPYs made (src/main, src/lib, src/many/*, /etc/group)');

    // Second build: the RUN hits, COPY misses: base + RUN are cloned, nothing is extracted.
    writeFileSync(join(ctx, 'src/main'), 'v2\n');
    const second = await build(cache, 'v2');
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /RUN mkdir \/deps.*\(cached, dir\)/);
    assert.match(second.stderr, /tree store: 2 layers \(\w+\) cloned/);
    assert.doesNotMatch(second.stderr, /DEBUG base \S+ extracted in/, 'the base is not extracted again');
    assert.doesNotMatch(
      second.stderr,
      /cached layer \S+ restored in/,
      'the cached RUN layer is not extracted',
    );
    assert.match(
      second.stderr,
      new RegExp(`COPY src/ /src/: ${1 + MANY} files linked from the file pool, 1 added to it`),
      'the unchanged src/lib and src/many are linked, the changed src/main made anew',
    );
    assertUnchanged(kept, await fingerprints(trees));
    // The same sources without the store: the same image.
    const plain2 = await build(join(fx.dir, 'cache-off2'), 'v2-off', ['--tree-cache-size', '0']);
    assert.equal(plain2.code, 0, plain2.stderr);
    assert.doesNotMatch(plain2.stderr, /file pool/);
    assert.equal(digestOf(second), digestOf(plain2));

    // A cold runner: only blobs restored (the store removed), then the store is filled again.
    await rm(trees, { recursive: true, force: true });
    writeFileSync(join(ctx, 'src/main'), 'v3\n');
    const third = await build(cache, 'v3');
    assert.equal(third.code, 0, third.stderr);
    assert.match(third.stderr, /RUN mkdir \/deps.*\(cached, dir\)/);
    assert.match(
      third.stderr,
      /cached layer \S+ restored in/,
      'without the store the cached layer is extracted',
    );
    assert.match(third.stderr, /tree store: kept 2 layers/);
    // Its COPY's files were put in the pool while the base and the RUN layer were extracted (as many
    // as that took: the COPY makes the rest), all but the changed one planned as new entries.
    const fill = new RegExp(
      `COPY src/ /src/: (\\d+) of ${2 + MANY} files put in the file pool while the tree was made`,
    );
    const made = Number(fill.exec(third.stderr)?.[1] ?? NaN);
    assert.ok(made >= 0 && made <= 2 + MANY, third.stderr);
    assert.match(
      third.stderr,
      new RegExp(`COPY src/ /src/: ${made} files linked from the file pool, ${2 + MANY - made} added to it`),
    );

    // The same build without the store (fresh cache dir, store off) gives the same image.
    const plain = await build(join(fx.dir, 'cache-off'), 'v3-off', ['--tree-cache-size', '0']);
    assert.equal(plain.code, 0, plain.stderr);
    assert.doesNotMatch(plain.stderr, /tree store/);
    assert.equal(digestOf(third), digestOf(plain));
  },
);
