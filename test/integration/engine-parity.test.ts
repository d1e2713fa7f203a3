/**
 * One Dockerfile corpus, built with --reproducible on this host as root in the chroot rung (overlay
 * snapshots) and in the plain rung (walk snapshots, the plain rung's emulated /etc files), must give
 * the same image: equal manifest digests and, layer by layer, equal tar listings (names, types,
 * modes, owners, sizes, times, link targets). Both engines decide "changed" by the one rule of
 * src/fs/same-entry.ts; each step of the corpus exercises a part of it: useradd (a lock file opened
 * for writing and nothing written, rewritten backups), chown -R, renames, deletions, a file deleted
 * and recreated, a new nested directory, `touch` to the same mtime, chmod/chown to the same value, a
 * hardlink pair made and then touched, and a 2,000-file COPY.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kiln } from '../helpers/cli.ts';
import { pushDebianImage } from '../helpers/debian.ts';
import { startRegistry } from '../helpers/registry.ts';
import type { TestRegistry } from '../helpers/registry.ts';

const isRoot = process.getuid?.() === 0;

const CORPUS = (base: string) => `FROM ${base}
COPY many/ /srv/many/
RUN useradd -m app && chown -R app /home/app
RUN mkdir -p /data/a/b/c && echo one > /data/a/b/c/f && echo keep > /data/keep && echo gone > /data/gone \\
 && printf 'pair\\n' > /data/h1 && ln /data/h1 /data/h2 && echo same > /data/recreated
RUN mv /data/keep /data/kept && rm /data/gone && echo new > /data/new \\
 && rm /data/recreated && echo same > /data/recreated && mkdir -p /data/x/y/z && echo deep > /data/x/y/z/f
RUN touch -m -d @0 /etc/debian_version && chmod 644 /etc/debian_version && chown 0:0 /etc/debian_version \\
 && touch -m -r /data/kept /data/kept && chmod 644 /data/kept && chown 0:0 /data/kept \\
 && chmod 644 /data/h1 && touch -m -r /data/h2 /data/h2 && mv /data/new /data/new.tmp && mv /data/new.tmp /data/new
RUN chmod 600 /data/h2 && chown -R app /data/a && rm -rf /data/x && mkdir /data/x && echo again > /data/x/f
`;

interface Built {
  digest: string;
  /** Per layer, `tar -tv`-like lines. */
  listings: string[][];
}

/** Every layer of an OCI layout's one image, listed in archive order with every header field kiln sets. */
async function readImage(layout: string): Promise<Built> {
  const blob = (d: string) => readFile(join(layout, 'blobs', 'sha256', d.slice('sha256:'.length)));
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as {
    manifests: { digest: string }[];
  };
  assert.equal(index.manifests.length, 1);
  const digest = index.manifests[0]!.digest;
  const manifest = JSON.parse((await blob(digest)).toString()) as { layers: { digest: string }[] };
  const listings: string[][] = [];
  for (const l of manifest.layers) {
    const tar = gunzipSync(await blob(l.digest));
    const out = execFileSync('tar', ['-tv', '--numeric-owner', '--full-time', '-f', '-'], {
      input: tar,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    listings.push(out.split('\n').filter(Boolean));
  }
  return { digest, listings };
}

describe(
  'the same image from the overlay and the walk snapshot engines',
  { skip: !isRoot && 'needs root', timeout: 5 * 60_000 },
  () => {
    let reg: TestRegistry;
    let work: string;
    let ctx: string;
    const built = new Map<string, Built>();

    before(async () => {
      work = await mkdtemp(join(tmpdir(), 'kiln-engine-parity-'));
      await chmod(work, 0o755);
      reg = await startRegistry();
      await pushDebianImage(reg, 'base/debian', 'bookworm');
      ctx = join(work, 'ctx');
      for (let d = 0; d < 20; d++) {
        await mkdir(join(ctx, 'many', `d${d}`), { recursive: true });
        for (let f = 0; f < 100; f++) await writeFile(join(ctx, 'many', `d${d}`, `f${f}.txt`), `${d}/${f}\n`);
      }
      await writeFile(join(ctx, 'Dockerfile'), CORPUS(`${reg.host}/base/debian:bookworm`));
    });
    after(async () => {
      await reg?.stop();
      if (work) await rm(work, { recursive: true, force: true });
    });

    const variants = [
      { name: 'chroot-overlay', isolation: 'chroot', engine: 'overlay', rung: /^isolation: chroot /m },
      { name: 'plain-walk', isolation: 'plain', engine: 'walk', rung: /^isolation: plain /m },
    ];
    for (const v of variants) {
      test(`builds in ${v.name}`, async () => {
        const out = join(work, `layout-${v.name}`);
        const t0 = Date.now();
        const r = await kiln(
          [
            'build',
            '-c',
            ctx,
            '--no-push',
            '--reproducible',
            '--insecure-registry',
            reg.host,
            '--isolation',
            v.isolation,
            '--oci-layout-path',
            out,
            '--work-dir',
            join(work, `w-${v.name}`),
          ],
          { KILN_SNAPSHOT_ENGINE: v.engine },
        );
        assert.equal(r.code, 0, r.stderr.slice(-4000));
        assert.match(r.stderr, v.rung, 'the build used the rung asked for');
        assert.match(r.stderr, new RegExp(`snapshots: ${v.engine}`), 'and the engine asked for');
        const img = await readImage(out);
        console.log(`${v.name}: ${img.digest} in ${Date.now() - t0} ms`);
        built.set(v.name, img);
      });
    }

    test('identical layer listings and manifest digests', () => {
      const a = built.get('chroot-overlay');
      const b = built.get('plain-walk');
      assert.ok(a && b, 'both builds ran');
      assert.equal(a.listings.length, b.listings.length, 'layer count');
      for (let i = 0; i < a.listings.length; i++) {
        assert.deepEqual(b.listings[i], a.listings[i], `layer ${i}: plain-walk (actual) vs chroot-overlay`);
      }
      // What the rule keeps out is out of both: the plain rung's stand-ins, copy-ups that change
      // nothing (useradd's lock file), opaque marks over nothing. Layer 0 is the base.
      const [, copy, useradd, , , last] = a.listings;
      // touch/chmod/chown to the same values and a rename away and back: no layer at all.
      assert.equal(a.listings.length, 6, 'base, COPY and four RUN layers: the same-values RUN made none');
      assert.equal(copy!.filter((l) => l.startsWith('-')).length, 2000, 'the COPY layer has the 2,000 files');
      for (const l of a.listings.slice(1))
        assert.doesNotMatch(l.join('\n'), / etc\/(hosts|resolv\.conf|hostname)$/m);
      assert.doesNotMatch(useradd!.join('\n'), /\.pwd\.lock/);
      const opaque = a.listings.flat().filter((l) => l.includes('.wh..wh..opq'));
      assert.deepEqual(
        opaque.map((l) => l.split(' ').pop()),
        ['data/x/.wh..wh..opq'],
        'only the replaced /data/x is opaque',
      );
      assert.ok(
        last!.some((l) => / data\/h2 link to data\/h1$/.test(l)),
        'the chmod-ed hardlink pair stays one inode',
      );
      assert.equal(a.digest, b.digest, 'manifest digests');
    });
  },
);
