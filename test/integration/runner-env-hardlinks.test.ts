/**
 * Hardlink groups survive a later RUN that touches one name: `chown -R`, `chmod`, `touch` and `ln`
 * on a member of a group made by an earlier RUN leave one inode in the image, on every rung and both
 * snapshot engines. Overlay copy-up splits such groups (one name gets a new inode in the upper dir);
 * the assertion is on the pushed layer tar (one regular file plus hardlink entries per group) and on
 * the tree umoci unpacks.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, chown, lstat, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { probeIsolation } from '../../src/isolation/probe.ts';
import type { ProbeResult } from '../../src/isolation/types.ts';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { pushBusyboxImage } from '../helpers/images.ts';
import {
  ensureUser,
  kilnAs,
  layerEntries,
  linkGroups,
  pulledLayers,
  type RunAs,
} from '../helpers/runner-env.ts';

const execFileP = promisify(execFile);
const isRoot = process.getuid?.() === 0;
const USER = 'kilntest';

const DOCKERFILE = (base: string) => `FROM ${base}
RUN for d in l c m t n; do mkdir -p /$d/real && echo $d > /$d/real/f && ln /$d/real/f /$d/hard; done
RUN chown -R 1001:1001 /l /c && chmod 600 /m/hard && touch -t 200102030405.06 /t/hard && ln /n/real/f /n/hard2
`;

interface Case {
  name: string;
  isolation: string;
  engine: 'overlay' | 'walk';
  as?: RunAs;
  needs: string;
}

const cases: Case[] = [
  { name: 'chroot, overlay', isolation: 'chroot', engine: 'overlay', needs: 'chroot' },
  { name: 'chroot, walk', isolation: 'chroot', engine: 'walk', needs: 'chroot' },
  {
    name: 'rootless, overlay',
    isolation: 'rootless',
    engine: 'overlay',
    as: { user: USER },
    needs: 'rootless',
  },
  { name: 'plain, walk', isolation: 'plain', engine: 'walk', needs: 'plain' },
];

let work: string;
let reg: TestRegistry | undefined;
let base: string;
let probe: ProbeResult | undefined;

describe('hardlink groups across RUN steps', { skip: !isRoot && 'needs root (every rung)' }, () => {
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'kiln-hardlinks-'));
    await chmod(work, 0o755);
    await ensureUser(USER, '200000:65536');
    probe = await probeIsolation({ want: 'auto', workDir: join(work, 'probe') });
    reg = await startRegistry();
    await pushBusyboxImage(reg, 'base/busybox', '1');
    base = `${reg.host}/base/busybox:1`;
  });
  after(async () => {
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  for (const c of cases) {
    test(c.name, { timeout: 120_000 }, async (t) => {
      if (!probe?.reports.find((r) => r.rung === c.needs)?.ok)
        return t.skip(`${c.needs} is not available here`);
      const slug = c.name.replace(/\W+/g, '-');
      const dir = join(work, slug);
      const ctx = join(dir, 'ctx');
      await mkdir(ctx, { recursive: true });
      await chmod(dir, 0o1777);
      await writeFile(join(ctx, 'Dockerfile'), DOCKERFILE(base));
      if (c.as && 'user' in c.as) {
        const id = Number((await execFileP('id', ['-u', c.as.user])).stdout.trim());
        await chown(ctx, id, id);
        await chown(join(ctx, 'Dockerfile'), id, id);
      }
      const dest = `${reg!.host}/out/${slug}:1`;
      const r = await kilnAs(
        ['build', '-c', ctx, '-d', dest, '--insecure-registry', reg!.host, '--isolation', c.isolation],
        c.as,
        { TMPDIR: dir, HOME: dir, KILN_SNAPSHOT_ENGINE: c.engine },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`^isolation: ${c.isolation} \\(.*; snapshots: ${c.engine}$`, 'm'));

      const layers = await pulledLayers(dest, dir);
      const groups = linkGroups(await layerEntries(layers[layers.length - 1]!));
      const expect: Record<string, string[]> = {
        'l/real/f': ['l/real/f', 'l/hard'],
        'c/real/f': ['c/real/f', 'c/hard'],
        'm/real/f': ['m/real/f', 'm/hard'],
        't/real/f': ['t/real/f', 't/hard'],
        'n/real/f': ['n/real/f', 'n/hard', 'n/hard2'],
      };
      for (const [first, names] of Object.entries(expect)) {
        // Either name may come first in the tar; the group is what counts.
        const g = [...groups.values()].find((ns) => ns.includes(first));
        assert.deepEqual(
          g?.sort(),
          names.sort(),
          `link group of /${first} in the last layer: ${JSON.stringify([...groups.values()])}`,
        );
      }

      const bundle = join(dir, 'bundle');
      await execFileP('umoci', ['unpack', '--image', `${join(dir, 'layout')}:img`, bundle], {
        maxBuffer: 64 << 20,
      });
      const f = (p: string) => lstat(join(bundle, 'rootfs', p));
      for (const d of ['l', 'c', 'm', 't', 'n']) {
        const [a, b] = [await f(`${d}/real/f`), await f(`${d}/hard`)];
        assert.equal(a.ino, b.ino, `/${d}/hard and /${d}/real/f are one inode`);
        assert.equal(await readFile(join(bundle, 'rootfs', d, 'hard'), 'utf8'), `${d}\n`);
      }
      assert.equal((await f('c/real/f')).uid, 1001);
      assert.equal((await f('m/real/f')).mode & 0o777, 0o600);
      assert.equal((await f('t/real/f')).mtime.toISOString(), '2001-02-03T04:05:06.000Z');
      assert.equal((await f('n/real/f')).nlink, 3);
    });
  }
});
