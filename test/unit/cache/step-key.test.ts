/**
 * Cache keys of every instruction kind, through the real step modules and key functions: for each
 * field of each typed instruction (every flag), two values give two different keys. The sample
 * table is typed so that a field added to an instruction type without a sample here does not
 * compile. Position and display text are not part of a key.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Instruction } from '../../../src/dockerfile/instructions.ts';
import type { Heredoc } from '../../../src/dockerfile/ast.ts';
import { hashParts } from '../../../src/cache/key.ts';
import { StatIndex } from '../../../src/cache/sources-digest.ts';
import { ContextSource } from '../../../src/context/sources.ts';
import { IgnoreMatcher, parseDockerignore } from '../../../src/context/dockerignore.ts';
import { BuildArgs, GlobalScope, StageScope } from '../../../src/plan/scope.ts';
import { StageBuilder } from '../../../src/executor/stage-builder.ts';
import {
  chainMetadata,
  startChain,
  stepKeyParts,
  type KeyHelpers,
} from '../../../src/executor/step-cache.ts';
import type { StepContext } from '../../../src/executor/steps/context.ts';
import type { InstructionKind, InstructionOf } from '../../../src/executor/steps/module.ts';
import { STEPS, stepFor } from '../../../src/executor/steps/table.ts';
import { memoryLogger } from '../../../src/log/logger.ts';
import { defaultBuildOptions } from '../../../src/options.ts';
import { fakeDeps, tempDir } from '../executor/fakes.ts';

/** The fields that say what an instruction does (all but kind, position and display text). */
type Fields<I> = Exclude<keyof I, 'kind' | 'at' | 'original'>;
/** For every field, two values; `-?` makes each one required, optional fields included. */
type FieldSamples<I> = { [F in Fields<I>]-?: readonly [I[F], I[F]] };
interface Sample<I> {
  base: Omit<I, 'at' | 'original'>;
  fields: FieldSamples<I>;
}
type Table = { [K in InstructionKind]: Sample<InstructionOf<K>> };

const doc = (content: string): Heredoc => ({
  name: 'EOF',
  content,
  expand: true,
  chomp: false,
  fileDescriptor: 0,
});
const shell = (script: string) => ({ form: 'shell', script }) as const;

const copyBase = {
  sources: ['a.txt'],
  dest: '/d/',
  link: false,
  parents: false,
  exclude: [],
  keepGitDir: false,
  heredocs: [],
  json: false,
};
const copyFields: FieldSamples<InstructionOf<'copy'>> = {
  sources: [['a.txt'], ['b.txt']],
  dest: ['/d/', '/e/'],
  from: [undefined, 'other'],
  chown: [undefined, '1:1'],
  chmod: [undefined, '600'],
  link: [false, true],
  parents: [false, true],
  exclude: [[], ['*.log']],
  checksum: [undefined, 'sha256:' + '0'.repeat(64)],
  keepGitDir: [false, true],
  unpack: [undefined, false],
  heredocs: [[], [doc('x\n')]],
  json: [false, true],
};
const command: FieldSamples<InstructionOf<'cmd'>> = {
  command: [shell('true'), { form: 'exec', argv: ['true'] }],
};
const health: FieldSamples<InstructionOf<'healthcheck'>> = {
  none: [false, true],
  test: [shell('true'), shell('false')],
  interval: [undefined, '5s'],
  timeout: [undefined, '5s'],
  startPeriod: [undefined, '5s'],
  startInterval: [undefined, '5s'],
  retries: [undefined, 3],
};

const SAMPLES = {
  from: {
    base: { kind: 'from', image: 'busybox' },
    fields: {
      image: ['busybox', 'alpine'],
      stageName: [undefined, 'b'],
      platform: [undefined, 'linux/arm64'],
    },
  },
  run: {
    base: { kind: 'run', command: shell('true'), mounts: [], heredocs: [] },
    fields: {
      command: [shell('true'), shell('false')],
      mounts: [[], ['type=bind,source=a.txt,target=/x']],
      network: [undefined, 'none'],
      security: [undefined, 'sandbox'],
      heredocs: [[], [doc('a\n')]],
    },
  },
  cmd: { base: { kind: 'cmd', command: shell('true') }, fields: command },
  entrypoint: { base: { kind: 'entrypoint', command: shell('true') }, fields: command },
  shell: {
    base: { kind: 'shell', argv: ['/bin/sh', '-c'] },
    fields: {
      argv: [
        ['/bin/sh', '-c'],
        ['/bin/bash', '-c'],
      ],
    },
  },
  env: { base: { kind: 'env', pairs: [['A', '1']] }, fields: { pairs: [[['A', '1']], [['A', '2']]] } },
  label: { base: { kind: 'label', pairs: [['A', '1']] }, fields: { pairs: [[['A', '1']], [['B', '1']]] } },
  arg: {
    base: { kind: 'arg', args: [{ name: 'A' }] },
    fields: { args: [[{ name: 'A', default: '1' }], [{ name: 'A', default: '2' }]] },
  },
  copy: { base: { kind: 'copy', ...copyBase }, fields: copyFields },
  add: { base: { kind: 'add', ...copyBase }, fields: copyFields },
  expose: { base: { kind: 'expose', values: ['80'] }, fields: { values: [['80'], ['81']] } },
  volume: { base: { kind: 'volume', values: ['/v'] }, fields: { values: [['/v'], ['/w']] } },
  user: { base: { kind: 'user', value: 'a' }, fields: { value: ['a', 'b'] } },
  workdir: { base: { kind: 'workdir', value: '/w' }, fields: { value: ['/w', '/x'] } },
  stopsignal: { base: { kind: 'stopsignal', value: 'SIGTERM' }, fields: { value: ['SIGTERM', 'SIGKILL'] } },
  maintainer: { base: { kind: 'maintainer', value: 'a' }, fields: { value: ['a', 'b'] } },
  healthcheck: { base: { kind: 'healthcheck', none: false, test: shell('true') }, fields: health },
  onbuild: {
    base: {
      kind: 'onbuild',
      trigger: 'RUN a',
      inner: {
        kind: 'run',
        command: shell('a'),
        mounts: [],
        heredocs: [],
        at: { file: 'D', line: 1 },
        original: 'RUN a',
      },
    },
    fields: {
      trigger: ['RUN a', 'RUN b'],
      inner: [
        {
          kind: 'run',
          command: shell('a'),
          mounts: [],
          heredocs: [],
          at: { file: 'D', line: 1 },
          original: 'RUN a',
        },
        {
          kind: 'run',
          command: shell('b'),
          mounts: [],
          heredocs: [],
          at: { file: 'D', line: 1 },
          original: 'RUN a',
        },
      ],
    },
  },
} satisfies Table;

const CHAIN = 'parent-chain';

async function stepContext(dir: string): Promise<StepContext> {
  const { logger } = memoryLogger('warn');
  const builder = new StageBuilder(
    fakeDeps().deps,
    {
      name: 't',
      rootfs: join(dir, 'rootfs'),
      scratchDir: join(dir, 'scratch'),
      config: { architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] } },
      history: [],
      layerOptions: { compression: 'gzip', compressionLevel: 1, outDir: join(dir, 'blobs') },
      ignorePaths: [],
      createdAt: () => undefined,
      hostname: 'kiln',
    },
    logger,
  );
  const global = new GlobalScope(new BuildArgs(new Map(), new Map()));
  return {
    builder,
    scope: new StageScope(global),
    escape: '\\',
    context: new ContextSource(join(dir, 'ctx'), new IgnoreMatcher(parseDockerignore('', 'x'))),
    sourceTree: async () => ({ root: join(dir, 'ctx'), preserveOwnership: false }),
    opts: defaultBuildOptions(),
    tmpDir: join(dir, 'tmp'),
    cacheDir: join(dir, 'cache'),
    logger,
  };
}

const helpers: KeyHelpers = {
  index: new StatIndex(),
  platform: 'linux/amd64',
  stageKey: (from) => (from === 'other' ? 'stage-key-of-other' : undefined),
  imageDigest: async (ref) => `sha256:digest-of-${ref}`,
};

/**
 * The key a step contributes, by how its module caches: a `layer` step's own key, a `config` step's
 * chain after it (FROM: the stage's first chain key), an ARG's effect on the RUN after it.
 */
async function keyOf(ins: Instruction, dir: string): Promise<string> {
  const ctx = await stepContext(dir);
  const mod = stepFor(ins);
  if (ins.kind === 'from') return startChain(CHAIN, ins);
  if (mod.cache === 'layer') {
    const parts = await stepKeyParts(mod, ins, ctx, CHAIN, helpers);
    assert.ok(parts, `${ins.kind} can be keyed`);
    return hashParts(parts);
  }
  if (mod.cache === 'config') return chainMetadata(CHAIN, ins);
  assert.equal(mod.expand(ins, ctx), null, 'a scope step is done by expansion');
  const run = { ...SAMPLES.run.base, at: { file: 'D', line: 2 }, original: 'RUN true' };
  return hashParts((await stepKeyParts(STEPS.run, run, ctx, CHAIN, helpers))!);
}

const at = { file: 'Dockerfile', line: 1 };
const make = (base: object, extra: object): Instruction =>
  ({ ...base, ...extra, at, original: 'shown text' }) as Instruction;

async function contextDir(): Promise<string> {
  const dir = await tempDir();
  await mkdir(join(dir, 'ctx'), { recursive: true });
  await writeFile(join(dir, 'ctx', 'a.txt'), 'a');
  await writeFile(join(dir, 'ctx', 'b.txt'), 'b');
  return dir;
}

test('every field of every instruction kind changes its cache key', async () => {
  const dir = await contextDir();
  let checked = 0;
  for (const [kind, sample] of Object.entries(SAMPLES) as Array<[InstructionKind, Sample<Instruction>]>) {
    const fields = Object.entries(sample.fields) as Array<[string, readonly [unknown, unknown]]>;
    assert.ok(fields.length > 0, kind);
    for (const [field, [a, b]] of fields) {
      const ka = await keyOf(make(sample.base, { [field]: a }), dir);
      const kb = await keyOf(make(sample.base, { [field]: b }), dir);
      assert.notEqual(ka, kb, `${kind} ${field}: ${JSON.stringify(a)} and ${JSON.stringify(b)} share a key`);
      checked++;
    }
  }
  // 18 kinds; COPY and ADD have 13 fields each, RUN 5, HEALTHCHECK 7, FROM 3, ONBUILD 2, the other 12 kinds 1.
  assert.equal(checked, 13 * 2 + 5 + 7 + 3 + 2 + 1 * 12);
});

test('the key ignores where an instruction is and how it was spelled', async () => {
  const dir = await contextDir();
  for (const sample of Object.values(SAMPLES) as Sample<Instruction>[]) {
    const one = {
      ...sample.base,
      at: { file: 'Dockerfile', line: 1 },
      original: 'ADD  t.tar /d/',
    } as Instruction;
    const two = {
      ...sample.base,
      at: { file: 'other/Dockerfile', line: 40 },
      original: 'add t.tar /d/',
    } as Instruction;
    assert.equal(await keyOf(one, dir), await keyOf(two, dir), sample.base.kind);
  }
});

test('ADD --unpack=false and ADD of the same archive have different keys (the display-text bug)', async () => {
  const dir = await contextDir();
  const plain = make(SAMPLES.add.base, {});
  const noUnpack = make(SAMPLES.add.base, { unpack: false });
  assert.notEqual(await keyOf(plain, dir), await keyOf(noUnpack, dir));
});

test('a changed context file changes the key of the COPY that reads it, and only the sources part', async () => {
  const dir = await contextDir();
  const ctx = await stepContext(dir);
  const ins = make(SAMPLES.copy.base, {}) as InstructionOf<'copy'>;
  const before = (await stepKeyParts(STEPS.copy, ins, ctx, CHAIN, helpers))!;
  await writeFile(join(dir, 'ctx', 'a.txt'), 'changed');
  const after = (await stepKeyParts(STEPS.copy, ins, ctx, CHAIN, helpers))!;
  assert.notEqual(before.sources, after.sources);
  assert.deepEqual({ ...before, sources: '' }, { ...after, sources: '' });
});

test('an ADD of a URL without --checksum cannot be keyed (it always runs)', async () => {
  const dir = await contextDir();
  const ins = make(SAMPLES.add.base, { sources: ['https://example.invalid/x.tar'] }) as InstructionOf<'add'>;
  assert.equal(await stepKeyParts(STEPS.add, ins, await stepContext(dir), CHAIN, helpers), null);
  const pinned = make(SAMPLES.add.base, {
    sources: ['https://example.invalid/x.tar'],
    checksum: 'sha256:' + '1'.repeat(64),
  }) as InstructionOf<'add'>;
  assert.ok(await stepKeyParts(STEPS.add, pinned, await stepContext(dir), CHAIN, helpers));
});
