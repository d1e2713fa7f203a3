/**
 * Build plans against the Dockerfile reference: ARG/ENV scoping, platform and proxy ARGs, the stage
 * graph (names, indexes, images, mounts, cycles, typos), --target pruning, where expansion applies,
 * and the rendered plan.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { planFromText, type BuildPlan, type PlanOptions } from '../../../src/plan/plan.ts';
import { renderPlan } from '../../../src/plan/render.ts';
import { BuildArgs, GlobalScope, StageScope, platformArgs } from '../../../src/plan/scope.ts';
import type { Instruction } from '../../../src/dockerfile/instructions.ts';
import { KilnError, type ErrorCategory } from '../../../src/util/errors.ts';

const FILE = 'Dockerfile';
const PLATFORMS: Pick<PlanOptions, 'targetPlatform' | 'buildPlatform'> = {
  targetPlatform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
  buildPlatform: { os: 'linux', architecture: 'amd64' },
};

function plan(src: string, buildArgs?: Record<string, string>, target?: string): BuildPlan {
  return planFromText(src, FILE, {
    ...PLATFORMS,
    ...(buildArgs ? { buildArgs } : {}),
    ...(target !== undefined ? { target } : {}),
  });
}

/** The expanded instructions of a stage (ARG lines included, as written). */
function expanded(p: BuildPlan, stage = p.stages.length - 1): Instruction[] {
  return p.stages[stage]!.instructions.map((i) => i.expanded);
}

/** Value of the last ENV/LABEL pair named `key` in the last stage. */
function pair(p: BuildPlan, key: string, stage = p.stages.length - 1): string | undefined {
  let v: string | undefined;
  for (const ins of expanded(p, stage))
    if (ins.kind === 'env' || ins.kind === 'label') for (const [k, val] of ins.pairs) if (k === key) v = val;
  return v;
}

function expectError(
  fn: () => unknown,
  code: string,
  line: number | undefined,
  msg?: string | RegExp,
  category: ErrorCategory = 'dockerfile',
): KilnError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof KilnError, `expected KilnError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.equal(caught.category, category);
  assert.ok(!caught.message.includes('\n'), `message is one line: ${JSON.stringify(caught.message)}`);
  if (line !== undefined) {
    assert.equal(caught.position?.file, FILE);
    assert.equal(caught.position?.line, line, caught.message);
  }
  if (typeof msg === 'string') assert.ok(caught.message.includes(msg), caught.message);
  else if (msg) assert.match(caught.message, msg);
  return caught;
}

describe('ARG and ENV scoping', () => {
  const cases: Array<{
    name: string;
    src: string;
    args?: Record<string, string>;
    key: string;
    want: string | undefined;
  }> = [
    {
      name: 'global ARG is invisible inside a stage',
      src: 'ARG VERSION=latest\nFROM busybox\nLABEL v=x${VERSION}x',
      key: 'v',
      want: 'xx',
    },
    {
      name: 'global ARG redeclared without value takes the global value',
      src: 'ARG VERSION=latest\nFROM busybox:$VERSION\nARG VERSION\nLABEL v=$VERSION',
      key: 'v',
      want: 'latest',
    },
    {
      name: 'global ARG redeclared with a value uses the stage default',
      src: 'ARG VERSION=latest\nFROM busybox\nARG VERSION=1.0\nLABEL v=$VERSION',
      key: 'v',
      want: '1.0',
    },
    {
      name: 'redeclared global ARG takes the --build-arg value',
      src: 'ARG VERSION=latest\nFROM busybox\nARG VERSION\nLABEL v=$VERSION',
      args: { VERSION: '2.0' },
      key: 'v',
      want: '2.0',
    },
    {
      name: '--build-arg overrides a stage default',
      src: 'FROM busybox\nARG user=someuser\nLABEL u=$user',
      args: { user: 'what_user' },
      key: 'u',
      want: 'what_user',
    },
    {
      name: '--build-arg with an empty value overrides the default',
      src: 'FROM busybox\nARG user=someuser\nLABEL u=[$user]',
      args: { user: '' },
      key: 'u',
      want: '[]',
    },
    {
      name: '--build-arg is invisible without an ARG',
      src: 'FROM busybox\nLABEL u=[$user]',
      args: { user: 'x' },
      key: 'u',
      want: '[]',
    },
    {
      name: 'ENV wins over ARG (reference example)',
      src: 'FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=v1.0.0\nLABEL v=$CONT_IMG_VER',
      args: { CONT_IMG_VER: 'v2.0.1' },
      key: 'v',
      want: 'v1.0.0',
    },
    {
      name: 'ENV wins over an ARG declared after it',
      src: 'FROM ubuntu\nENV V=env\nARG V=arg\nLABEL v=$V',
      key: 'v',
      want: 'env',
    },
    {
      name: 'ENV ${ARG:-default} takes the build arg (reference example)',
      src: 'FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=${CONT_IMG_VER:-v1.0.0}\nLABEL v=$CONT_IMG_VER',
      args: { CONT_IMG_VER: 'v2.0.1' },
      key: 'v',
      want: 'v2.0.1',
    },
    {
      name: 'ENV ${ARG:-default} without build arg takes the default',
      src: 'FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=${CONT_IMG_VER:-v1.0.0}\nLABEL v=$CONT_IMG_VER',
      key: 'v',
      want: 'v1.0.0',
    },
    {
      name: 'ARG default referencing an earlier ARG',
      src: 'FROM a\nARG NAME=app\nARG DIR=/opt/${NAME}\nLABEL d=$DIR',
      key: 'd',
      want: '/opt/app',
    },
    {
      name: 'ARG default referencing an ENV',
      src: 'FROM a\nENV PREFIX=/usr\nARG BIN=$PREFIX/bin\nLABEL b=$BIN',
      key: 'b',
      want: '/usr/bin',
    },
    {
      name: 'a variable used before its ARG is empty (reference example)',
      src: 'FROM busybox\nLABEL before=${username:-some_user}\nARG username\nLABEL after=$username',
      args: { username: 'what_user' },
      key: 'before',
      want: 'some_user',
    },
    {
      name: 'ARG goes out of scope at the end of its stage',
      src: 'FROM a\nARG X=1\nFROM b\nLABEL x=[$X]',
      key: 'x',
      want: '[]',
    },
    {
      name: 'ENV of one stage does not leak into an unrelated stage',
      src: 'FROM a\nENV X=1\nFROM b\nLABEL x=[$X]',
      key: 'x',
      want: '[]',
    },
    {
      name: 'a stage built FROM another stage inherits its ENV',
      src: 'FROM alpine AS base\nENV APP=/srv\nFROM base\nLABEL app=$APP',
      key: 'app',
      want: '/srv',
    },
    {
      name: 'a stage built FROM another stage does not inherit its ARGs',
      src: 'FROM alpine AS base\nARG X=1\nFROM base\nLABEL x=[$X]',
      key: 'x',
      want: '[]',
    },
    {
      name: 'ENV pairs on one line see the values from before the line (reference example)',
      src: 'FROM a\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc',
      key: 'def',
      want: 'hello',
    },
    {
      name: 'ENV on a later line sees the new value (reference example)',
      src: 'FROM a\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc',
      key: 'ghi',
      want: 'bye',
    },
    {
      name: 'ARG default quotes are removed',
      src: 'FROM a\nARG MSG="hello world"\nLABEL m=$MSG',
      key: 'm',
      want: 'hello world',
    },
    {
      name: 'TARGETARCH is invisible in a stage without ARG',
      src: 'FROM a\nLABEL arch=[$TARGETARCH]',
      key: 'arch',
      want: '[]',
    },
    {
      name: 'ARG TARGETARCH exposes the target architecture',
      src: 'FROM a\nARG TARGETARCH\nLABEL arch=$TARGETARCH',
      key: 'arch',
      want: 'arm64',
    },
    {
      name: 'ARG TARGETPLATFORM includes the variant',
      src: 'FROM a\nARG TARGETPLATFORM\nLABEL p=$TARGETPLATFORM',
      key: 'p',
      want: 'linux/arm64/v8',
    },
    {
      name: 'ARG TARGETVARIANT / TARGETOS',
      src: 'FROM a\nARG TARGETOS TARGETVARIANT\nLABEL p=$TARGETOS-$TARGETVARIANT',
      key: 'p',
      want: 'linux-v8',
    },
    {
      name: 'ARG BUILDPLATFORM / BUILDARCH / BUILDOS',
      src: 'FROM a\nARG BUILDPLATFORM BUILDARCH BUILDOS\nLABEL p=$BUILDPLATFORM,$BUILDARCH,$BUILDOS',
      key: 'p',
      want: 'linux/amd64,amd64,linux',
    },
    {
      name: 'BUILDVARIANT is empty when the build platform has none',
      src: 'FROM a\nARG BUILDVARIANT\nLABEL p=[$BUILDVARIANT]',
      key: 'p',
      want: '[]',
    },
    {
      name: 'single quotes stop expansion',
      src: "FROM a\nARG X=1\nLABEL x='$X'",
      key: 'x',
      want: '$X',
    },
    {
      name: 'escaped dollar is literal',
      src: 'FROM a\nARG X=1\nLABEL x=\\$X',
      key: 'x',
      want: '$X',
    },
    {
      name: 'backtick escape token escapes the dollar',
      src: '# escape=`\nFROM a\nARG X=1\nLABEL x=`$X-$X',
      key: 'x',
      want: '$X-1',
    },
  ];
  for (const c of cases) test(c.name, () => assert.equal(pair(plan(c.src, c.args), c.key), c.want));
});

describe('FROM expansion and platform', () => {
  const cases: Array<{
    name: string;
    src: string;
    args?: Record<string, string>;
    image: string;
    platform?: string;
  }> = [
    { name: 'global ARG in FROM', src: 'ARG VER=3.19\nFROM alpine:${VER}', image: 'alpine:3.19' },
    {
      name: '--build-arg overrides a global default in FROM',
      src: 'ARG VER=3.19\nFROM alpine:$VER',
      args: { VER: '3.20' },
      image: 'alpine:3.20',
    },
    {
      name: 'global ARG default referencing an earlier global ARG',
      src: 'ARG REG=registry.example.com\nARG IMG=${REG}/team/app\nFROM $IMG',
      image: 'registry.example.com/team/app',
    },
    { name: 'TARGETARCH in FROM without ARG', src: 'FROM alpine-${TARGETARCH}', image: 'alpine-arm64' },
    {
      name: 'FROM --platform=$BUILDPLATFORM',
      src: 'FROM --platform=$BUILDPLATFORM golang:1.22 AS build',
      image: 'golang:1.22',
      platform: 'linux/amd64',
    },
    {
      name: 'FROM --platform=$TARGETPLATFORM',
      src: 'FROM --platform=${TARGETPLATFORM} alpine',
      image: 'alpine',
      platform: 'linux/arm64/v8',
    },
    {
      name: 'FROM ${IMG:-default} with unset global',
      src: 'ARG IMG\nFROM ${IMG:-debian:12}',
      image: 'debian:12',
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const p = plan(c.src, c.args);
      const s = p.stages[0]!;
      assert.equal(s.from.image, c.image);
      assert.deepEqual(s.base, { kind: 'image', ref: c.image });
      assert.equal(s.platform, c.platform);
    });
  }

  test('global ARGs are listed with their values', () => {
    const p = plan('ARG A=1\nARG B\nFROM x', { B: '2' });
    assert.deepEqual(p.globalArgs, [
      { name: 'A', value: '1' },
      { name: 'B', value: '2' },
    ]);
  });
});

describe('build args warnings and predefined args', () => {
  test('unused build arg is reported', () => {
    assert.deepEqual(plan('FROM a\nRUN true', { FOO: '1', BAR: '2' }).unusedBuildArgs, ['BAR', 'FOO']);
  });
  test('proxy build args are never reported as unused', () => {
    const args = { HTTP_PROXY: 'http://p', https_proxy: 'http://p', NO_PROXY: 'x', ALL_PROXY: 'y' };
    assert.deepEqual(plan('FROM a', args).unusedBuildArgs, []);
  });
  test('a build arg declared by a global ARG is consumed', () => {
    assert.deepEqual(plan('ARG V\nFROM a:$V', { V: '1' }).unusedBuildArgs, []);
  });
  test('a build arg declared inside a stage is consumed', () => {
    assert.deepEqual(plan('FROM a\nARG V\nRUN echo $V', { V: '1' }).unusedBuildArgs, []);
  });
  test('proxy args reach RUN without an ARG, ENV of the same name wins', () => {
    const g = new GlobalScope(
      new BuildArgs(
        new Map([
          ['HTTP_PROXY', 'http://p'],
          ['NO_PROXY', 'n'],
        ]),
        new Map(),
      ),
    );
    const s = new StageScope(g);
    s.declareArg('X', 'x');
    s.setEnv('NO_PROXY', 'env');
    assert.deepEqual(s.runArgs(), [
      ['X', 'x'],
      ['HTTP_PROXY', 'http://p'],
    ]);
  });
  test('platformArgs gives the platform args, OS versions and TARGETSTAGE', () => {
    const m = platformArgs(PLATFORMS.targetPlatform, PLATFORMS.buildPlatform, 'final');
    assert.deepEqual(Object.fromEntries(m), {
      TARGETOSVERSION: '',
      BUILDOSVERSION: '',
      TARGETSTAGE: 'final',
      TARGETPLATFORM: 'linux/arm64/v8',
      TARGETOS: 'linux',
      TARGETARCH: 'arm64',
      TARGETVARIANT: 'v8',
      BUILDPLATFORM: 'linux/amd64',
      BUILDOS: 'linux',
      BUILDARCH: 'amd64',
      BUILDVARIANT: '',
    });
  });
});

describe('stage graph', () => {
  const cases: Array<{
    name: string;
    src: string;
    target?: string;
    args?: Record<string, string>;
    check: (p: BuildPlan) => void;
  }> = [
    {
      name: 'stage names are case-insensitive in COPY --from',
      src: 'FROM golang AS Builder\nRUN make\nFROM alpine\nCOPY --from=BUILDER /out /out',
      check: (p) => {
        assert.equal(p.stages[0]!.name, 'builder');
        assert.deepEqual(p.stages[1]!.deps, [0]);
        assert.deepEqual(p.order, [0, 1]);
      },
    },
    {
      name: 'numeric --from refers to a stage index',
      src: 'FROM golang\nRUN make\nFROM alpine\nCOPY --from=0 /out /out',
      check: (p) => {
        assert.deepEqual(p.stages[1]!.deps, [0]);
        assert.deepEqual(p.stages[1]!.imageDeps, []);
      },
    },
    {
      name: 'FROM <stage> makes the stage the base',
      src: 'FROM alpine AS base\nRUN apk add curl\nFROM base AS final\nRUN curl --version',
      check: (p) => {
        assert.deepEqual(p.stages[1]!.base, { kind: 'stage', index: 0 });
        assert.deepEqual(p.stages[1]!.deps, [0]);
      },
    },
    {
      name: 'FROM <Stage> is case-insensitive',
      src: 'FROM alpine AS base\nFROM BASE',
      check: (p) => assert.deepEqual(p.stages[1]!.base, { kind: 'stage', index: 0 }),
    },
    {
      name: 'FROM <name> AS <same name> is the image, not the stage itself',
      src: 'FROM alpine AS alpine\nRUN true',
      check: (p) => assert.deepEqual(p.stages[0]!.base, { kind: 'image', ref: 'alpine' }),
    },
    {
      name: 'FROM sees only earlier stages: a later stage name is an image',
      src: 'FROM node AS build\nFROM build AS node\nFROM node',
      check: (p) => {
        assert.deepEqual(
          p.stages.map((s) => s.base),
          [
            { kind: 'image', ref: 'node' },
            { kind: 'stage', index: 0 },
            { kind: 'stage', index: 1 },
          ],
        );
        assert.deepEqual(p.order, [0, 1, 2]);
      },
    },
    {
      name: 'FROM scratch',
      src: 'FROM scratch\nCOPY a /a',
      check: (p) => {
        assert.deepEqual(p.stages[0]!.base, { kind: 'scratch' });
        assert.deepEqual(p.stages[0]!.deps, []);
      },
    },
    {
      name: 'COPY --from=<image> is an image dependency',
      src: 'FROM alpine\nCOPY --from=nginx:latest /etc/nginx/nginx.conf /nginx.conf',
      check: (p) => {
        assert.deepEqual(p.stages[0]!.imageDeps, ['nginx:latest']);
        assert.deepEqual(p.stages[0]!.deps, []);
      },
    },
    {
      name: 'COPY --from=<image> without tag that is no typo of a stage',
      src: 'FROM golang AS build\nFROM alpine\nCOPY --from=busybox /bin/busybox /bin/',
      check: (p) => assert.deepEqual(p.stages[1]!.imageDeps, ['busybox']),
    },
    {
      name: 'COPY --from with a build arg resolves to the stage',
      src: 'ARG SRC=build\nFROM golang AS build\nFROM alpine\nARG SRC\nCOPY --from=$SRC /out /out',
      check: (p) => assert.deepEqual(p.stages[1]!.deps, [0]),
    },
    {
      name: 'RUN --mount from=<stage> is a dependency',
      src: 'FROM alpine AS deps\nFROM alpine\nRUN --mount=type=bind,from=deps,source=/d,target=/d ls /d',
      check: (p) => assert.deepEqual(p.stages[1]!.deps, [0]),
    },
    {
      name: 'RUN --mount=type=cache,from=<stage> is a dependency',
      src: 'FROM alpine AS seed\nFROM alpine\nRUN --mount=type=cache,from=seed,target=/c ls',
      check: (p) => assert.deepEqual(p.stages[1]!.deps, [0]),
    },
    {
      name: 'RUN --mount from=<image> is an image dependency',
      src: 'FROM alpine\nRUN --mount=type=bind,from=golang:1.22,target=/go ls',
      check: (p) => assert.deepEqual(p.stages[0]!.imageDeps, ['golang:1.22']),
    },
    {
      name: 'forward reference with COPY --from',
      src: 'FROM alpine AS first\nCOPY --from=second /x /x\nFROM alpine AS second\nRUN touch /x',
      target: 'first',
      check: (p) => {
        assert.deepEqual(p.stages[0]!.deps, [1]);
        assert.deepEqual(p.order, [1, 0]);
        assert.equal(p.target, 0);
      },
    },
    {
      name: 'default target is the last stage; unused stages are skipped',
      src: 'FROM a AS one\nFROM b AS two\nFROM c AS three',
      check: (p) => {
        assert.equal(p.target, 2);
        assert.deepEqual(
          p.stages.map((s) => s.needed),
          [false, false, true],
        );
        assert.deepEqual(p.order, [2]);
      },
    },
    {
      name: '--target prunes stages it does not need',
      src: 'FROM alpine AS base\nFROM base AS test\nRUN make test\nFROM base AS prod\nRUN make',
      target: 'prod',
      check: (p) => {
        assert.equal(p.target, 2);
        assert.deepEqual(
          p.stages.map((s) => s.needed),
          [true, false, true],
        );
        assert.deepEqual(p.order, [0, 2]);
      },
    },
    {
      name: '--target is case-insensitive',
      src: 'FROM alpine AS base\nFROM base AS test\nFROM base AS prod',
      target: 'TEST',
      check: (p) => {
        assert.equal(p.target, 1);
        assert.deepEqual(p.order, [0, 1]);
      },
    },
    {
      name: 'diamond: every dependency comes first, each once',
      src: 'FROM a AS base\nFROM base AS left\nFROM base AS right\nFROM scratch\nCOPY --from=left / /l\nCOPY --from=right / /r',
      check: (p) => {
        assert.deepEqual(p.stages[3]!.deps, [1, 2]);
        assert.deepEqual(p.order, [0, 1, 2, 3]);
      },
    },
    {
      name: 'target picks a middle stage',
      src: 'FROM a AS x\nFROM b AS y\nCOPY --from=x / /\nFROM c AS z\nCOPY --from=y / /',
      target: 'y',
      check: (p) => {
        assert.deepEqual(p.order, [0, 1]);
        assert.equal(p.stages[2]!.needed, false);
      },
    },
  ];
  for (const c of cases) test(c.name, () => c.check(plan(c.src, c.args, c.target)));
});

describe('plan errors', () => {
  const cases: Array<{
    name: string;
    src: string;
    args?: Record<string, string>;
    target?: string;
    code: string;
    line?: number;
    msg?: string | RegExp;
    category?: ErrorCategory;
  }> = [
    {
      name: 'cycle between two stages',
      src: 'FROM a AS x\nCOPY --from=y / /\nFROM b AS y\nCOPY --from=x / /',
      code: 'STAGE_CYCLE',
      msg: /circular/,
    },
    {
      name: 'stage copying from itself',
      src: 'FROM a AS self\nCOPY --from=self /a /b',
      code: 'STAGE_CYCLE',
      line: 1,
    },
    {
      name: 'stage copying from itself by index',
      src: 'FROM a\nFROM b\nCOPY --from=1 /a /b',
      code: 'STAGE_CYCLE',
      line: 2,
    },
    {
      name: 'cycle among stages the target does not need',
      src: 'FROM a AS x\nCOPY --from=y / /\nFROM b AS y\nCOPY --from=x / /\nFROM c AS final',
      code: 'STAGE_CYCLE',
    },
    {
      name: 'typo of a stage name in COPY --from',
      src: 'FROM golang AS builder\nFROM alpine\n\nCOPY --from=buidler /a /b',
      code: 'UNKNOWN_STAGE',
      line: 4,
      msg: 'did you mean builder',
    },
    {
      name: 'typo of a stage name in RUN --mount from=',
      src: 'FROM golang AS builder\nFROM alpine\nRUN --mount=from=bulder,target=/b ls',
      code: 'UNKNOWN_STAGE',
      line: 3,
      msg: 'did you mean builder',
    },
    {
      name: 'stage index out of range',
      src: 'FROM a\nFROM b\nCOPY --from=5 /a /b',
      code: 'UNKNOWN_STAGE',
      line: 3,
    },
    {
      name: 'unknown --target',
      src: 'FROM a AS build\nFROM b AS prod',
      target: 'prd',
      code: 'UNKNOWN_TARGET',
      msg: 'did you mean prod',
      category: 'usage',
    },
    {
      name: 'duplicate stage names',
      src: 'FROM a AS build\nFROM b AS build',
      code: 'DUPLICATE_STAGE',
      line: 2,
    },
    {
      name: 'duplicate stage names differing in case',
      src: 'FROM a AS Build\nRUN x\nFROM b AS BUILD',
      code: 'DUPLICATE_STAGE',
      line: 3,
    },
    { name: 'instruction before FROM', src: 'ARG X\nRUN echo hi\nFROM a', code: 'NO_STAGE', line: 2 },
    { name: 'ENV before FROM', src: 'ENV X=1\nFROM a', code: 'NO_STAGE', line: 1 },
    { name: 'no FROM at all', src: 'ARG X=1\n', code: 'NO_STAGE' },
    { name: 'empty FROM after expansion', src: 'ARG IMG\n\nFROM $IMG', code: 'EMPTY_BASE', line: 3 },
    {
      name: '${v:?msg} in COPY carries the Dockerfile position',
      src: 'FROM a\nARG SRC\n\nCOPY ${SRC:?SRC_must_be_set} /x',
      code: 'REQUIRED_VAR',
      line: 4,
      msg: 'SRC_must_be_set',
    },
    {
      name: '${v:?msg} in FROM carries the FROM position',
      src: 'ARG IMG\n# c\nFROM ${IMG:?pass_--build-arg_IMG}',
      code: 'REQUIRED_VAR',
      line: 3,
    },
    {
      name: '${v:?} in an ARG default',
      src: 'FROM a\nARG A=${B:?need_B}',
      code: 'REQUIRED_VAR',
      line: 2,
    },
    {
      name: 'bad substitution in a COPY heredoc body: one-line message, COPY position',
      src: 'FROM a\nCOPY <<EOF /f\nport=${PORT\n:-8080}\nEOF',
      code: 'BAD_SUBSTITUTION',
      line: 2,
    },
    {
      name: 'bad --mount after expansion carries the RUN position',
      src: 'FROM a\nARG T=cache\nRUN --mount=type=$T ls',
      code: 'BAD_MOUNT',
      line: 3,
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      expectError(() => plan(c.src, c.args, c.target), c.code, c.line, c.msg, c.category ?? 'dockerfile');
    });
  }
});

describe('where expansion applies', () => {
  const ARGS = 'FROM alpine\nARG X=val\nARG P=8080\nARG D=/data\n';
  const cases: Array<{ name: string; line: string; want: Record<string, unknown> }> = [
    {
      name: 'RUN shell text is not expanded',
      line: 'RUN echo $X',
      want: { command: { form: 'shell', script: 'echo $X' } },
    },
    {
      name: 'RUN exec argv is not expanded',
      line: 'RUN ["echo", "$X"]',
      want: { command: { form: 'exec', argv: ['echo', '$X'] } },
    },
    {
      name: 'CMD is not expanded',
      line: 'CMD echo ${X}',
      want: { command: { form: 'shell', script: 'echo ${X}' } },
    },
    {
      name: 'ENTRYPOINT is not expanded',
      line: 'ENTRYPOINT ["/bin/$X"]',
      want: { command: { form: 'exec', argv: ['/bin/$X'] } },
    },
    {
      name: 'HEALTHCHECK is not expanded',
      line: 'HEALTHCHECK CMD check $X',
      want: { test: { form: 'shell', script: 'check $X' } },
    },
    { name: 'SHELL is not expanded', line: 'SHELL ["/bin/$X", "-c"]', want: { argv: ['/bin/$X', '-c'] } },
    {
      name: 'ONBUILD trigger is not expanded',
      line: 'ONBUILD RUN echo $X',
      want: { trigger: 'RUN echo $X' },
    },
    {
      name: 'RUN --mount values are expanded',
      line: 'RUN --mount=type=cache,target=$D make',
      want: { mounts: ['type=cache,target=/data'], command: { form: 'shell', script: 'make' } },
    },
    {
      name: 'COPY sources, destination and flags are expanded',
      line: 'COPY --chown=${X}:${X} --chmod=$P --exclude=$X.md $X ${X}2 $D/',
      want: {
        chown: 'val:val',
        chmod: '8080',
        exclude: ['val.md'],
        sources: ['val', 'val2'],
        dest: '/data/',
      },
    },
    {
      name: 'ADD sources and --checksum are expanded',
      line: 'ADD --checksum=sha256:$X https://example.com/$X.tgz $D',
      want: { checksum: 'sha256:val', sources: ['https://example.com/val.tgz'], dest: '/data' },
    },
    {
      name: 'COPY JSON form is expanded',
      line: 'COPY ["$X", "$D/"]',
      want: { sources: ['val'], dest: '/data/' },
    },
    {
      name: 'ENV is expanded',
      line: 'ENV A=$X B="${X} x"',
      want: {
        pairs: [
          ['A', 'val'],
          ['B', 'val x'],
        ],
      },
    },
    {
      name: 'ENV legacy form is expanded with quotes removed',
      line: 'ENV A "quoted $X"',
      want: { pairs: [['A', 'quoted val']] },
    },
    {
      name: 'LABEL keys and values are expanded, quotes removed',
      line: 'LABEL "com.example.$X"="ACME Inc" v=$P',
      want: {
        pairs: [
          ['com.example.val', 'ACME Inc'],
          ['v', '8080'],
        ],
      },
    },
    { name: 'WORKDIR is expanded', line: 'WORKDIR $D/${X}', want: { value: '/data/val' } },
    { name: 'USER is expanded', line: 'USER ${X}:$X', want: { value: 'val:val' } },
    { name: 'EXPOSE is expanded', line: 'EXPOSE $P/tcp ${P}', want: { values: ['8080/tcp', '8080'] } },
    { name: 'VOLUME is expanded', line: 'VOLUME $D ${D}2', want: { values: ['/data', '/data2'] } },
    { name: 'STOPSIGNAL is expanded', line: 'STOPSIGNAL ${SIG:-SIGTERM}', want: { value: 'SIGTERM' } },
    {
      name: 'COPY heredoc body is expanded when the delimiter is unquoted',
      line: 'COPY <<EOF /f\nx=$X "q" \\n\nEOF',
      want: {
        heredocs: [
          // BuildKit's lexer (escape \\, quotes kept): the backslash escapes the next character.
          { name: 'EOF', content: 'x=val "q" n\n', expand: true, chomp: false, fileDescriptor: 0 },
        ],
      },
    },
    {
      name: 'COPY heredoc body is literal when the delimiter is quoted',
      line: 'COPY <<"EOF" /f\nx=$X\nEOF',
      want: {
        heredocs: [{ name: 'EOF', content: 'x=$X\n', expand: false, chomp: false, fileDescriptor: 0 }],
      },
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const p = plan(ARGS + c.line);
      const last = p.stages[0]!.instructions.at(-1)!;
      const got = last.expanded as unknown as Record<string, unknown>;
      for (const [k, v] of Object.entries(c.want)) assert.deepEqual(got[k], v, k);
      // The unexpanded instruction is kept for the executor.
      assert.equal(last.instruction.original, c.line.split('\n')[0]);
    });
  }
});

describe('renderPlan', () => {
  const SRC = [
    'ARG BASE=alpine:3.19',
    'ARG UNSET',
    'FROM $BASE AS deps',
    'RUN apk add curl',
    'FROM deps AS test',
    'RUN make test',
    'FROM deps AS prod',
    'MAINTAINER me',
    'COPY --from=deps /a /b',
    'COPY --from=nginx:1 /etc/nginx /etc/nginx',
    'RUN echo a \\',
    '',
    '  b',
  ].join('\n');
  const out = renderPlan(plan(SRC, { UNUSED: '1', HTTP_PROXY: 'x' }, 'prod'));
  const rows: Array<[string, string | RegExp]> = [
    ['marks skipped stages', /\[skipped: not needed by the target\] stage 1 "test"/],
    ['shows the build order', 'build order: deps -> prod'],
    ['shows the target', 'target: stage 2 "prod"'],
    ['shows expanded FROM', 'stage 0 "deps" from alpine:3.19'],
    ['shows global args, unset ones too', /BASE="alpine:3\.19"\n {2}UNSET=<unset>/],
    ['shows stage deps', 'uses stages: deps'],
    ['shows image deps', 'uses images: nginx:1'],
    ['warns about unused build args but not proxies', /warning: build arg\(s\) UNUSED were passed/],
    [
      'warns about MAINTAINER with position',
      /warning: Dockerfile:8: MAINTAINER is deprecated.*\[MaintainerDeprecated\]/,
    ],
    ['warns about empty continuation lines', /warning: Dockerfile:11: .*\[NoEmptyContinuation\]/],
    ['shows instruction line numbers', /\n {5}9 {2}COPY --from=deps \/a \/b\n/],
  ];
  for (const [name, want] of rows) {
    test(name, () => {
      if (typeof want === 'string') assert.ok(out.includes(want), out);
      else assert.match(out, want);
    });
  }
  test('does not mention HTTP_PROXY as unused', () => assert.ok(!out.includes('HTTP_PROXY'), out));
});
