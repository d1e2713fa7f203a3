/**
 * Fake executor dependencies for unit tests that need no root (in the spirit of Kaniko's
 * pkg/executor/build_test.go): a sandbox that interprets a tiny command language instead of running
 * a process, a snapshotter that compares two scans of the tree, a layer writer that stores a diff as
 * a JSON blob, the matching extractor, base images made of such blobs, and an in-memory layer cache.
 * Everything else (plan, scopes, step modules, copy rules, cache keys) is the real code.
 */
import { createHash } from 'node:crypto';
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  readlink,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import type { ExecutorDeps } from '../../../src/executor/deps.ts';
import { lateDeps, type BoundIsolation } from '../../../src/late-isolation.ts';
import type { TreeStore } from '../../../src/cache/tree-store.ts';
import type { BaseImageSource, ResolvedBase } from '../../../src/executor/base.ts';
import { executePlan, type ExecutedImage } from '../../../src/executor/executor.ts';
import type { Diff, Snapshotter, StepSnapshot, WrittenLayer } from '../../../src/fs/types.ts';
import type { RunSpec, Sandbox } from '../../../src/isolation/types.ts';
import type { CacheEntry, CacheHit, KeyParts, LayerCache } from '../../../src/cache/types.ts';
import { StatIndex } from '../../../src/cache/sources-digest.ts';
import type { ContainerConfig, LayerBlob } from '../../../src/image/types.ts';
import { planFromText } from '../../../src/plan/plan.ts';
import { ContextSource } from '../../../src/context/sources.ts';
import { IgnoreMatcher, parseDockerignore } from '../../../src/context/dockerignore.ts';
import { memoryLogger } from '../../../src/log/logger.ts';
import { defaultBuildOptions, type BuildOptions } from '../../../src/options.ts';
import { isExcluded } from '../../../src/fs/exclude.ts';

const PLATFORM = { os: 'linux', architecture: 'amd64' };

/** `COPY --chown=<this>`: the test's own ids, so no step needs root to set owners. */
export const OWN = `${process.getuid?.() ?? 0}:${process.getgid?.() ?? 0}`;

interface LayerEntry {
  path: string;
  type: 'dir' | 'file' | 'symlink';
  mode: number;
  content?: string;
  target?: string;
}
interface FakeLayer {
  entries: LayerEntry[];
  deleted: string[];
}

/** Image path → file content (or `null` for a directory) of a JSON layer blob. */
export async function layerFiles(blob: string): Promise<Record<string, string | null>> {
  const l = JSON.parse(await readFile(blob, 'utf8')) as FakeLayer;
  const out: Record<string, string | null> = {};
  for (const e of l.entries)
    out[e.path] = e.type === 'file' ? Buffer.from(e.content ?? '', 'base64').toString() : null;
  for (const d of l.deleted) out[d] = 'WHITEOUT';
  return out;
}

async function writeBlob(outDir: string, layer: FakeLayer): Promise<WrittenLayer> {
  const text = JSON.stringify(layer);
  const sha = createHash('sha256').update(text).digest('hex');
  await mkdir(outDir, { recursive: true });
  const path = join(outDir, `${sha}.json`);
  await writeFile(path, text);
  return {
    path,
    digest: `sha256:${sha}`,
    diffId: `sha256:${sha}`,
    size: text.length,
    mediaType: 'application/vnd.oci.image.layer.v1.tar',
    entries: layer.entries.length + layer.deleted.length,
  };
}

async function entryOf(root: string, path: string): Promise<LayerEntry> {
  const host = join(root, path);
  const st = await lstat(host);
  const mode = st.mode & 0o7777;
  if (st.isDirectory()) return { path, type: 'dir', mode };
  if (st.isSymbolicLink()) return { path, type: 'symlink', mode, target: await readlink(host) };
  return { path, type: 'file', mode, content: (await readFile(host)).toString('base64') };
}

async function applyLayer(blob: string, rootfs: string): Promise<void> {
  const l = JSON.parse(await readFile(blob, 'utf8')) as FakeLayer;
  for (const d of l.deleted) await rm(join(rootfs, d), { recursive: true, force: true });
  for (const e of l.entries) {
    const host = join(rootfs, e.path);
    await mkdir(dirname(host), { recursive: true });
    if (e.type === 'dir') await mkdir(host, { recursive: true });
    else {
      await rm(host, { recursive: true, force: true });
      if (e.type === 'symlink') await symlink(e.target!, host);
      else await writeFile(host, Buffer.from(e.content ?? '', 'base64'));
    }
    if (e.type !== 'symlink') await chmod(host, e.mode);
  }
}

type Index = Map<string, string>;

async function scan(root: string, exclude: string[], dir = '/', into: Index = new Map()): Promise<Index> {
  for (const name of await readdir(join(root, dir)).catch(() => [] as string[])) {
    const p = posix.join(dir, name);
    if (isExcluded(p, exclude)) continue;
    const e = await entryOf(root, p);
    into.set(p, JSON.stringify(e));
    if (e.type === 'dir') await scan(root, exclude, p, into);
  }
  return into;
}

/** Diff of two scans: changed entries (parents included) and top-most deletions. */
function diffOf(root: string, before: Index, after: Index): Diff {
  const changed = new Set<string>();
  for (const [p, sig] of after) {
    if (before.get(p) === sig) continue;
    for (let q = p; q !== '/'; q = posix.dirname(q)) changed.add(q);
  }
  const deleted = [...before.keys()].filter((p) => !after.has(p));
  const top = deleted.filter((p) => !deleted.includes(posix.dirname(p)));
  return { root, changed: [...changed].sort(), deleted: top.sort(), opaque: [] };
}

class ScanSnapshot implements StepSnapshot {
  constructor(
    readonly runRoot: string,
    private readonly before: Index,
    private readonly exclude: string[],
    private readonly events?: string[],
  ) {}
  async finish(): Promise<Diff> {
    this.events?.push('snapshot finish');
    return diffOf(this.runRoot, this.before, await scan(this.runRoot, this.exclude));
  }
  async abort(): Promise<void> {}
}

export interface Calls {
  runs: RunSpec[];
  layersWritten: Diff[];
  extracted: string[];
  snapshots: number;
  treeSnapshots: number;
}

/**
 * The sandbox's language, one command per `;`: `write PATH TEXT`, `rm PATH`, `fail`, and for
 * ordering tests `signal NAME` / `await NAME` (waits until another RUN signalled NAME).
 */
function fakeSandbox(
  calls: Calls,
  signals: Map<string, () => void>,
  waits: Map<string, Promise<void>>,
  onRun?: (script: string) => void,
): Sandbox {
  const gate = (name: string): Promise<void> => {
    if (!waits.has(name)) waits.set(name, new Promise<void>((r) => signals.set(name, r)));
    return waits.get(name)!;
  };
  return {
    rung: 'plain',
    async run(spec) {
      calls.runs.push(spec);
      const script = spec.argv[spec.argv.length - 1] ?? '';
      onRun?.(script);
      for (const cmd of script.split(';').map((c) => c.trim())) {
        const [op, path = '', ...rest] = cmd.split(' ');
        const host = join(spec.root, posix.resolve(spec.cwd, path));
        if (op === 'write') {
          await mkdir(dirname(host), { recursive: true });
          await writeFile(host, rest.join(' '));
        } else if (op === 'rm') await rm(host, { recursive: true, force: true });
        else if (op === 'fail') return { exitCode: 3, tail: ['failing as asked'] };
        else if (op === 'signal') {
          void gate(path);
          signals.get(path)!();
        } else if (op === 'await') await gate(path);
        else if (op === 'env') {
          await mkdir(dirname(host), { recursive: true });
          await writeFile(host, spec.env.join('\n'));
        }
      }
      return { exitCode: 0, tail: [] };
    },
  };
}

/** How fakeDeps' parts behave beyond the defaults, for ordering tests. */
export interface FakeDepsOptions {
  onRun?: (script: string) => void;
  /** The engine the snapshotter names (the fake always scans in place). */
  engine?: 'walk' | 'overlay';
  /** Told of each layer write before it starts; the write waits for what it returns. */
  beforeLayer?: (diff: Diff) => Promise<void>;
  /** 'snapshot finish', `layer <first changed path>` and `layer done <…>` as they happen. */
  events?: string[];
  /**
   * The isolation probe: the parts that depend on it wait until it resolves (through lateDeps, as
   * the builder's do); resolved at once by default.
   */
  probe?: Promise<void>;
  /** A tree store: stage bases are then hard-link clones (linkBaseTrees), kept and restored by it. */
  trees?: TreeStore;
  /** Told of each layer extracted into a tree (bases and cached layers). */
  onExtract?: (blob: string) => void;
}

export function fakeDeps(o: FakeDepsOptions = {}): { deps: ExecutorDeps; calls: Calls } {
  const { onRun, events } = o;
  const calls: Calls = { runs: [], layersWritten: [], extracted: [], snapshots: 0, treeSnapshots: 0 };
  const signals = new Map<string, () => void>();
  const waits = new Map<string, Promise<void>>();
  const snapshotter = (rootfs: string): Snapshotter => ({
    engine: o.engine ?? 'walk',
    async begin({ exclude }) {
      calls.snapshots++;
      return new ScanSnapshot(rootfs, await scan(rootfs, exclude), exclude, events);
    },
  });
  const bound: BoundIsolation = {
    createSnapshotter: (rootfs) => snapshotter(rootfs),
    beginTreeSnapshot: async (rootfs, exclude) => {
      calls.treeSnapshots++;
      return new ScanSnapshot(rootfs, await scan(rootfs, exclude), exclude);
    },
    sandbox: fakeSandbox(calls, signals, waits, onRun),
    async extractLayer(blob, rootfs) {
      calls.extracted.push(blob);
      o.onExtract?.(blob);
      await applyLayer(blob, rootfs);
    },
    sharing: o.trees ? { linkBaseTrees: true, trees: o.trees } : { linkBaseTrees: false },
  };
  const writeLayer: ExecutorDeps['writeLayer'] = async (diff, opts) => {
    calls.layersWritten.push(diff);
    const name = diff.changed.at(-1) ?? diff.deleted[0] ?? '';
    events?.push(`layer ${name}`);
    await o.beforeLayer?.(diff);
    const entries = await Promise.all(diff.changed.map((p) => entryOf(diff.root, p)));
    const w = await writeBlob(opts.outDir, { entries, deleted: diff.deleted });
    events?.push(`layer done ${name}`);
    return w;
  };
  const probe = o.probe ?? Promise.resolve();
  // Fake layers are JSON, never gzip: nothing to inflate ahead.
  const inflateLayer = async (): Promise<boolean> => false;
  return {
    deps: lateDeps(
      probe.then(() => bound),
      { writeLayer, inflateLayer },
    ),
    calls,
  };
}

export interface FakeImage {
  files: Record<string, string>;
  config?: ContainerConfig;
}

/** Base images of one JSON layer each, resolved by reference. */
export async function fakeImages(dir: string, images: Record<string, FakeImage>): Promise<BaseImageSource> {
  const resolved = new Map<string, ResolvedBase>();
  for (const [ref, img] of Object.entries(images)) {
    const entries: LayerEntry[] = Object.entries(img.files).map(([path, content]) => ({
      path,
      type: 'file',
      mode: 0o644,
      content: Buffer.from(content).toString('base64'),
    }));
    const w = await writeBlob(join(dir, 'images'), { entries, deleted: [] });
    const layer: LayerBlob = {
      descriptor: { mediaType: w.mediaType, digest: w.digest, size: w.size },
      diffId: w.diffId,
      path: w.path,
    };
    const digest = `sha256:${createHash('sha256')
      .update(ref + w.digest)
      .digest('hex')}` as const;
    resolved.set(ref, {
      pinned: `${ref}@${digest}`,
      digest,
      config: {
        ...PLATFORM,
        config: img.config ?? {},
        rootfs: { type: 'layers', diff_ids: [w.diffId] },
        history: [{ created_by: `base ${ref}` }],
      },
      layers: [layer],
    });
  }
  return {
    async resolve(ref) {
      const r = resolved.get(ref);
      if (!r) throw new Error(`no fake image ${ref}`);
      return structuredClone(r);
    },
    async fetchLayer(l) {
      return l.path!;
    },
  };
}

/** An in-memory LayerCache (blobs stay where the build wrote them). */
export class MemoryCache implements LayerCache {
  readonly entries = new Map<string, { entry: CacheEntry; blobPath?: string }>();
  private readonly parts = new Map<string, KeyParts>();
  gets = 0;
  async get(key: string): Promise<CacheHit | null> {
    this.gets++;
    const e = this.entries.get(key);
    return e ? { ...e, from: 'dir' } : null;
  }
  async put(entry: CacheEntry, blobPath?: string): Promise<void> {
    this.entries.set(entry.key, { entry, ...(blobPath ? { blobPath } : {}) });
  }
  async previousParts(slot: string): Promise<KeyParts | null> {
    return this.parts.get(slot) ?? null;
  }
  async rememberParts(slot: string, parts: KeyParts): Promise<void> {
    this.parts.set(slot, parts);
  }
}

export interface FakeBuild {
  dockerfile: string;
  /** Context files, relative path → content. */
  files?: Record<string, string>;
  images?: Record<string, FakeImage>;
  cache?: MemoryCache;
  target?: string;
  opts?: Partial<BuildOptions>;
  /** Reuse a directory (and its context) across builds. */
  dir?: string;
  /** Sees each RUN script as it starts (for builds that fail). */
  onRun?: (script: string) => void;
  /** The snapshot engine's name, layer-write hooks and the event log (fakeDeps). */
  deps?: Omit<FakeDepsOptions, 'onRun'>;
}

export interface FakeResult {
  image: ExecutedImage;
  calls: Calls;
  log: string[];
  dir: string;
}

export async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'kiln-exec-unit-'));
}

let n = 0;
export async function fakeBuild(b: FakeBuild): Promise<FakeResult> {
  const dir = b.dir ?? (await tempDir());
  const ctxDir = join(dir, 'ctx');
  await mkdir(ctxDir, { recursive: true });
  for (const [p, c] of Object.entries(b.files ?? {})) {
    await mkdir(dirname(join(ctxDir, p)), { recursive: true });
    await writeFile(join(ctxDir, p), c);
  }
  const { deps, calls } = fakeDeps({ ...b.deps, ...(b.onRun ? { onRun: b.onRun } : {}) });
  const { logger, lines } = memoryLogger('debug');
  const plan = planFromText(b.dockerfile, 'Dockerfile', {
    targetPlatform: PLATFORM,
    buildPlatform: PLATFORM,
    ...(b.target ? { target: b.target } : {}),
  });
  const image = await executePlan({
    plan,
    opts: defaultBuildOptions({
      ...(b.cache ? { cache: { ...defaultBuildOptions().cache, enabled: true } } : {}),
      ...b.opts,
    }),
    deps,
    images: await fakeImages(dir, b.images ?? {}),
    context: new ContextSource(ctxDir, new IgnoreMatcher(parseDockerignore('', '.dockerignore'))),
    logger,
    workDir: join(dir, `work-${++n}`),
    targetPlatform: PLATFORM,
    buildPlatform: PLATFORM,
    ...(b.cache ? { cache: { store: b.cache, index: new StatIndex() } } : {}),
  });
  return { image, calls, log: lines, dir };
}

/** Every file of the image's layers applied in order (the image's filesystem), from JSON blobs. */
export async function imageFiles(image: ExecutedImage): Promise<Record<string, string | null>> {
  const out: Record<string, string | null> = {};
  for (const l of image.layers) {
    const files = await layerFiles(l.path!);
    for (const [p, c] of Object.entries(files)) {
      if (c !== 'WHITEOUT') out[p] = c;
      else for (const k of Object.keys(out)) if (k === p || k.startsWith(p + '/')) delete out[k];
    }
  }
  return out;
}
