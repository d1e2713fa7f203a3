/**
 * Both snapshot engines, through the factory, against real temp trees changed by real commands.
 * For every scenario: the Diff lists match; the rootfs after finish() is the state the step saw;
 * and applying the Diff's semantics to a copy of the old tree reproduces that state.
 */
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, existsSync } from 'node:fs';
import { chmod, lchown, lstat, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSnapshotter, overlayAvailable } from '../../src/fs/snapshotter.ts';
import type { Diff, SnapshotEngine } from '../../src/fs/types.ts';

const BASE_EXCLUDE = ['/proc', '/sys', '/dev'];

function sh(cmd: string): void {
  execFileSync('sh', ['-c', cmd], { stdio: ['ignore', 'ignore', 'pipe'] });
}

function makeBase(r: string): void {
  sh(
    [
      `mkdir -p ${r}/etc ${r}/d/sub ${r}/bin ${r}/o ${r}/proc ${r}/tmp`,
      `printf 'a\\n' > ${r}/etc/conf`,
      `echo other > ${r}/etc/other`,
      `echo 1 > ${r}/d/sub/f1`,
      `echo 2 > ${r}/d/f2`,
      `echo f > ${r}/f`,
      `printf tool > ${r}/bin/tool`,
      `touch ${r}/o/old1 ${r}/o/old2`,
      `mkdir ${r}/h && echo pair > ${r}/h/a && ln ${r}/h/a ${r}/h/b`,
      // Old timestamps everywhere, so a step's own changes always differ from them.
      `find ${r} -exec touch -h -d '2020-01-01 00:00:00' {} +`,
    ].join(' && '),
  );
}

interface EntryState {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
  content?: string;
  target?: string;
  links?: string[];
}

function isExcluded(p: string, exclude: string[]): boolean {
  return exclude.some((e) => p === e || p.startsWith(e + '/'));
}

/** Everything observable about a tree except inode numbers: types, modes, owners, content, links, mtimes. */
function stateOf(root: string, exclude: string[]): Map<string, EntryState> {
  const out = new Map<string, EntryState>();
  const inodes = new Map<number, string[]>();
  const walk = (host: string, path: string) => {
    for (const name of readdirSync(host).sort()) {
      const p = path === '/' ? `/${name}` : `${path}/${name}`;
      if (isExcluded(p, exclude)) continue;
      const h = join(host, name);
      const st = lstatSync(h);
      const type = st.isDirectory()
        ? 'dir'
        : st.isSymbolicLink()
          ? 'symlink'
          : st.isFile()
            ? 'file'
            : 'other';
      const e: EntryState = {
        type,
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        mtimeMs: st.mtimeMs,
      };
      if (type === 'file') {
        e.content = readFileSync(h, 'utf8');
        if (st.nlink > 1) inodes.set(st.ino, [...(inodes.get(st.ino) ?? []), p]);
      }
      if (type === 'symlink') e.target = readlinkSync(h);
      out.set(p, e);
      if (type === 'dir') walk(h, p);
    }
  };
  walk(root, '/');
  for (const paths of inodes.values()) for (const p of paths) out.get(p)!.links = paths;
  return out;
}

/**
 * `dirMtimes`: directories whose mtime must match (all by default). A layer carries a directory only
 * when it changed by the snapshot rule, and a directory's mtime alone is no change (same-entry.ts).
 */
function assertSameState(
  actual: Map<string, EntryState>,
  expected: Map<string, EntryState>,
  what: string,
  dirMtimes?: (p: string) => boolean,
): void {
  assert.deepEqual([...actual.keys()], [...expected.keys()], `${what}: paths`);
  for (const [p, a] of actual) {
    const e = expected.get(p)!;
    const { mtimeMs: am, ...ar } = a;
    const { mtimeMs: em, ...er } = e;
    assert.deepEqual(ar, er, `${what}: ${p}`);
    if (a.type === 'dir' && dirMtimes && !dirMtimes(p)) continue;
    assert.ok(Math.abs(am - em) <= 1, `${what}: mtime of ${p} is ${am}, want ${em}`);
  }
}

/** Applies a Diff as a layer extractor would: deletions, opaque dirs, then changed entries from diff.root. */
async function applyDiff(target: string, diff: Diff): Promise<void> {
  for (const p of diff.deleted) rmSync(join(target, p), { recursive: true, force: true });
  for (const p of diff.opaque) {
    const dir = join(target, p);
    if (existsSync(dir) && lstatSync(dir).isDirectory()) {
      for (const n of readdirSync(dir)) rmSync(join(dir, n), { recursive: true, force: true });
    }
  }
  const dirs: string[] = [];
  const others: string[] = [];
  for (const p of diff.changed) {
    const src = lstatSync(join(diff.root, p));
    const dst = join(target, p);
    const cur = existsSync(dst) || isSymlink(dst) ? lstatSync(dst) : null;
    if (src.isDirectory()) {
      dirs.push(p);
      if (cur && !cur.isDirectory()) rmSync(dst, { force: true });
      if (!cur || !cur.isDirectory()) sh(`mkdir -p '${dst}'`);
    } else {
      others.push(p);
      if (cur) rmSync(dst, { recursive: true, force: true });
    }
  }
  if (others.length > 0) {
    // One cp run, so hardlinks between changed files stay hardlinks.
    execFileSync('cp', ['-a', '--parents', '-t', target, ...others.map((p) => p.slice(1))], {
      cwd: diff.root,
    });
  }
  for (const p of dirs.sort().reverse()) {
    const st = await lstat(join(diff.root, p), { bigint: true });
    const dst = join(target, p);
    await lchown(dst, Number(st.uid), Number(st.gid));
    await chmod(dst, Number(st.mode & 0o7777n));
    await utimes(dst, Number(st.atimeNs) / 1e9, Number(st.mtimeNs) / 1e9);
  }
}

function isSymlink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.split(' ')[4]?.startsWith(dir));
}

interface Expect {
  changed: string[];
  deleted?: string[];
  opaque?: string[];
}

interface Scenario {
  name: string;
  cmd: (r: string) => string;
  exclude?: string[];
  expect: Expect;
  /** Per-engine alternatives when the engines may express the change differently. */
  overlay?: Expect[];
  walk?: Expect[];
  /**
   * Overlay (index=off) shows the touched name of a lower hardlink pair as its own file during the
   * step; the engine joins the pair again (snapshot-relink.ts), which `check` asserts: the second
   * name then is what the first (the touched one) was.
   */
  overlaySplitsLinks?: [string, string];
  check?: (rootfs: string) => void;
}

const scenarios: Scenario[] = [
  { name: 'add file', cmd: (r) => `echo x > ${r}/etc/new`, expect: { changed: ['/etc', '/etc/new'] } },
  {
    name: 'modify file content',
    cmd: (r) => `echo changed > ${r}/etc/conf`,
    expect: { changed: ['/etc', '/etc/conf'] },
  },
  { name: 'chmod only', cmd: (r) => `chmod 600 ${r}/etc/conf`, expect: { changed: ['/etc', '/etc/conf'] } },
  {
    name: 'chown only',
    cmd: (r) => `chown 1234:5678 ${r}/etc/conf`,
    expect: { changed: ['/etc', '/etc/conf'] },
  },
  {
    name: 'touch (mtime only)',
    cmd: (r) => `touch -m -d '2001-02-03 04:05:06' ${r}/etc/conf`,
    expect: { changed: ['/etc', '/etc/conf'] },
  },
  {
    name: 'same-size rewrite with mtime restored (ctime only)',
    cmd: (r) => `printf 'b\\n' > ${r}/etc/conf && touch -m -d '2020-01-01 00:00:00' ${r}/etc/conf`,
    expect: { changed: ['/etc', '/etc/conf'] },
    // The walk engine compares the bytes with the SHA-256 it took at begin.
    check: (r) => assert.equal(readFileSync(join(r, 'etc/conf'), 'utf8'), 'b\n'),
  },
  // The shared rule (same-entry.ts): what changes only ctime, or only a copy-up, is no change.
  { name: 'chmod to the same mode', cmd: (r) => `chmod 644 ${r}/etc/conf`, expect: { changed: [] } },
  { name: 'chown to the same owner', cmd: (r) => `chown 0:0 ${r}/etc/conf`, expect: { changed: [] } },
  {
    name: 'touch to the same mtime',
    cmd: (r) => `touch -m -d '2020-01-01 00:00:00' ${r}/etc/conf`,
    expect: { changed: [] },
  },
  {
    name: 'opened for writing, nothing written (a lock file)',
    cmd: (r) => `: >> ${r}/etc/conf`,
    expect: { changed: [] },
  },
  {
    name: 'renamed away and back',
    cmd: (r) => `mv ${r}/etc/conf ${r}/etc/conf.tmp && mv ${r}/etc/conf.tmp ${r}/etc/conf`,
    expect: { changed: [] },
  },
  {
    name: 'an xattr set on an unchanged file',
    cmd: (r) => `setfattr -n user.kiln.test -v 1 ${r}/etc/conf`,
    expect: { changed: ['/etc', '/etc/conf'] },
  },
  {
    name: 'recreated with the same bytes and whole-second mtime',
    cmd: (r) =>
      `cp -p ${r}/etc/conf ${r}/tmp/c && rm ${r}/etc/conf && cp -p ${r}/tmp/c ${r}/etc/conf && rm ${r}/tmp/c`,
    expect: { changed: [] },
    // A new inode (ext4 may reuse the old number): the walk engine cannot compare the bytes, so it
    // keeps the file (a larger layer, not a wrong one).
    walk: [{ changed: [] }, { changed: ['/etc', '/etc/conf'] }],
  },
  {
    name: 'touch to the same mtime on one name of a hardlink pair',
    cmd: (r) => `touch -m -d '2020-01-01 00:00:00' ${r}/h/a`,
    expect: { changed: [] },
    overlaySplitsLinks: ['/h/a', '/h/b'],
    check: (r) => assert.equal(lstatSync(join(r, 'h/a')).ino, lstatSync(join(r, 'h/b')).ino),
  },
  {
    name: 'chmod of one name of a hardlink pair brings the other',
    cmd: (r) => `chmod 600 ${r}/h/a`,
    expect: { changed: ['/h', '/h/a', '/h/b'] },
    overlaySplitsLinks: ['/h/a', '/h/b'],
    check: (r) => assert.equal(lstatSync(join(r, 'h/a')).ino, lstatSync(join(r, 'h/b')).ino),
  },
  {
    name: 'delete file',
    cmd: (r) => `rm ${r}/etc/conf`,
    expect: { changed: ['/etc'], deleted: ['/etc/conf'] },
  },
  {
    name: 'delete dir tree (one whiteout at the top)',
    cmd: (r) => `rm -rf ${r}/d`,
    expect: { changed: [], deleted: ['/d'] },
  },
  {
    name: 'replace dir by file',
    cmd: (r) => `rm -rf ${r}/d && echo x > ${r}/d`,
    expect: { changed: ['/d'] },
  },
  {
    name: 'replace file by dir',
    cmd: (r) => `rm ${r}/f && mkdir ${r}/f && touch ${r}/f/in`,
    // Overlay marks /f opaque (made over a whiteout), but no lower directory is there to hide.
    expect: { changed: ['/f', '/f/in'] },
  },
  {
    name: 'rename file',
    cmd: (r) => `mv ${r}/etc/conf ${r}/etc/conf2`,
    expect: { changed: ['/etc', '/etc/conf2'], deleted: ['/etc/conf'] },
  },
  {
    name: 'rename dir',
    cmd: (r) => `mv ${r}/d ${r}/d2`,
    expect: { changed: ['/d2', '/d2/f2', '/d2/sub', '/d2/sub/f1'], deleted: ['/d'] },
  },
  {
    name: 'hardlink creation',
    cmd: (r) => `ln ${r}/bin/tool ${r}/bin/tool2`,
    expect: { changed: ['/bin', '/bin/tool', '/bin/tool2'] },
    check: (r) => assert.equal(lstatSync(join(r, 'bin/tool')).ino, lstatSync(join(r, 'bin/tool2')).ino),
  },
  {
    name: 'symlink',
    cmd: (r) => `ln -s ../etc/conf ${r}/bin/link`,
    expect: { changed: ['/bin', '/bin/link'] },
    check: (r) => assert.equal(readlinkSync(join(r, 'bin/link')), '../etc/conf'),
  },
  {
    name: 'opaque dir (rm -rf, mkdir, new file)',
    cmd: (r) => `rm -rf ${r}/o && mkdir ${r}/o && touch ${r}/o/new`,
    expect: { changed: ['/o', '/o/new'], opaque: ['/o'] },
    // ext4 may hand the new dir the old inode number: the walk engine tells them by birth time.
  },
  {
    name: 'excluded paths never appear',
    exclude: ['/cache', '/etc/hosts'],
    cmd: (r) =>
      `echo x > ${r}/proc/x && mkdir -p ${r}/cache/a && touch ${r}/cache/a/b ${r}/etc/hosts && echo y > ${r}/etc/new`,
    expect: { changed: ['/etc', '/etc/new'] },
  },
  {
    name: 'nested new dirs include parents',
    cmd: (r) => `mkdir -p ${r}/a/b/c && touch ${r}/a/b/c/f`,
    expect: { changed: ['/a', '/a/b', '/a/b/c', '/a/b/c/f'] },
  },
  {
    name: 'deep change in existing dirs includes unchanged parents',
    cmd: (r) => `touch ${r}/d/sub/new`,
    expect: { changed: ['/d', '/d/sub', '/d/sub/new'] },
  },
  { name: 'chmod dir only', cmd: (r) => `chmod 700 ${r}/d`, expect: { changed: ['/d'] } },
  {
    name: 'nothing changed',
    cmd: (r) => `cat ${r}/etc/conf > /dev/null && ls -R ${r} > /dev/null`,
    expect: { changed: [] },
  },
];

function norm(e: Expect): Required<Expect> {
  return { changed: e.changed, deleted: e.deleted ?? [], opaque: e.opaque ?? [] };
}

const engines: SnapshotEngine[] = ['overlay', 'walk'];

let hasOverlay = false;
before(async () => {
  const probe = mkdtempSync(join(tmpdir(), 'kiln-snap-probe-'));
  hasOverlay = await overlayAvailable(probe);
  rmSync(probe, { recursive: true, force: true });
});

for (const engine of engines) {
  describe(`snapshot engine ${engine}`, () => {
    for (const sc of scenarios) {
      test(sc.name, async (t) => {
        if (engine === 'overlay' && !hasOverlay) return t.skip('overlayfs cannot be mounted here');
        const tmp = mkdtempSync(join(tmpdir(), 'kiln-snap-'));
        try {
          const rootfs = join(tmp, 'rootfs');
          const copy = join(tmp, 'copy');
          makeBase(rootfs);
          sh(`cp -a ${rootfs} ${copy}`);
          const exclude = [...BASE_EXCLUDE, ...(sc.exclude ?? [])];
          const snapper = createSnapshotter(engine, rootfs, join(tmp, 'scratch'));
          assert.equal(snapper.engine, engine);
          const snap = await snapper.begin({ exclude });
          if (engine === 'walk') assert.equal(snap.runRoot, rootfs);
          sh(sc.cmd(snap.runRoot));
          const seen = stateOf(snap.runRoot, exclude);
          const split = engine === 'overlay' ? sc.overlaySplitsLinks : undefined;
          const unlinked = (m: Map<string, EntryState>) => {
            if (split) for (const e of m.values()) delete e.links;
            return m;
          };
          unlinked(seen);
          if (split) seen.set(split[1], { ...seen.get(split[0])! });
          const diff = await snap.finish();

          const got = { changed: diff.changed, deleted: diff.deleted, opaque: diff.opaque };
          const alts = (engine === 'overlay' ? sc.overlay : sc.walk) ?? [sc.expect];
          assert.ok(
            alts.some((a) => {
              try {
                assert.deepEqual(got, norm(a));
                return true;
              } catch {
                return false;
              }
            }),
            `diff ${JSON.stringify(got)} is none of ${JSON.stringify(alts.map(norm))}`,
          );
          for (const p of [...diff.changed, ...diff.deleted, ...diff.opaque]) {
            assert.ok(!isExcluded(p, exclude), `excluded path ${p} in diff`);
          }

          // The rootfs is now what the step saw.
          assertSameState(unlinked(stateOf(rootfs, exclude)), seen, 'rootfs after finish');
          // The Diff, applied as a layer, turns the old tree into the new one.
          await applyDiff(copy, diff);
          const inDiff = new Set(diff.changed);
          assertSameState(unlinked(stateOf(copy, exclude)), seen, 'old tree + diff', (p) => inDiff.has(p));
          sc.check?.(rootfs);
          const leftover = execFileSync(
            'getfattr',
            ['-R', '-h', '-m', '^(trusted|user)\\.overlay\\.', rootfs],
            {
              encoding: 'utf8',
              stdio: ['ignore', 'pipe', 'ignore'],
            },
          );
          assert.equal(leftover, '', 'overlay xattrs left in the rootfs');
          assert.deepEqual(mountsUnder(tmp), [], 'no mounts left');
        } finally {
          for (const m of mountsUnder(tmp).reverse()) sh(`umount -l '${m.split(' ')[4]}'`);
          rmSync(tmp, { recursive: true, force: true });
        }
      });
    }

    test('consecutive steps: the second sees and diffs against the first', async (t) => {
      if (engine === 'overlay' && !hasOverlay) return t.skip('overlayfs cannot be mounted here');
      const tmp = mkdtempSync(join(tmpdir(), 'kiln-snap-'));
      try {
        const rootfs = join(tmp, 'rootfs');
        makeBase(rootfs);
        const snapper = createSnapshotter(engine, rootfs, join(tmp, 'scratch'));
        const s1 = await snapper.begin({ exclude: BASE_EXCLUDE });
        sh(`mkdir -p ${s1.runRoot}/app && echo one > ${s1.runRoot}/app/file`);
        assert.deepEqual((await s1.finish()).changed, ['/app', '/app/file']);
        const s2 = await snapper.begin({ exclude: BASE_EXCLUDE });
        assert.equal(readFileSync(join(s2.runRoot, 'app/file'), 'utf8'), 'one\n');
        sh(`echo two > ${s2.runRoot}/app/file`);
        const d2 = await s2.finish();
        assert.deepEqual([d2.changed, d2.deleted, d2.opaque], [['/app', '/app/file'], [], []]);
        assert.equal(readFileSync(join(rootfs, 'app/file'), 'utf8'), 'two\n');
        assert.deepEqual(mountsUnder(tmp), []);
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    });

    test('abort leaves no mounts and no scratch', async (t) => {
      if (engine === 'overlay' && !hasOverlay) return t.skip('overlayfs cannot be mounted here');
      const tmp = mkdtempSync(join(tmpdir(), 'kiln-snap-'));
      try {
        const rootfs = join(tmp, 'rootfs');
        const scratch = join(tmp, 'scratch');
        makeBase(rootfs);
        const pre = stateOf(rootfs, BASE_EXCLUDE);
        const snapper = createSnapshotter(engine, rootfs, scratch);
        const snap = await snapper.begin({ exclude: BASE_EXCLUDE });
        if (engine === 'overlay') assert.equal(mountsUnder(tmp).length, 1);
        sh(`rm -rf ${snap.runRoot}/d && echo x > ${snap.runRoot}/new && chmod 700 ${snap.runRoot}/etc`);
        await snap.abort();
        assert.deepEqual(mountsUnder(tmp), []);
        if (engine === 'overlay') {
          // The step ran in an overlay: its changes are gone with it.
          assertSameState(stateOf(rootfs, BASE_EXCLUDE), pre, 'rootfs after abort');
          assert.deepEqual(readdirSync(scratch), []);
        }
        await assert.rejects(() => snap.finish(), /already finished or aborted/);
      } finally {
        for (const m of mountsUnder(tmp).reverse()) sh(`umount -l '${m.split(' ')[4]}'`);
        rmSync(tmp, { recursive: true, force: true });
      }
    });
  });
}

test('overlayAvailable mounts and unmounts a real overlay', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'kiln-snap-probe-'));
  try {
    const before = mountsUnder(tmp);
    assert.equal(await overlayAvailable(join(tmp, 'scratch')), true);
    assert.deepEqual(mountsUnder(tmp), before);
    assert.deepEqual(readdirSync(join(tmp, 'scratch')), []);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
