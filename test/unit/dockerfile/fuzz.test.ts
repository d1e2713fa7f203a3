/**
 * Deterministic fuzzing of the Dockerfile front end: inputs generated from and mutated out of a corpus
 * of realistic Dockerfiles with a fixed-seed PRNG, each run through parseDockerfile and planFromText.
 * The only accepted failure is a KilnError carrying a position; anything else (TypeError, RangeError,
 * a hang) fails and prints the seed, the input index and the input.
 *
 * The loop runs in a child process so that a hang can be detected: the child records the index of
 * the input it is on in a small file, and the parent kills it when that index stalls. Any input can
 * be rebuilt from (SEED, index) alone.
 */
import { fork } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDockerfile } from '../../../src/dockerfile/parser.ts';
import { planFromText, type PlanOptions } from '../../../src/plan/plan.ts';
import { KilnError } from '../../../src/util/errors.ts';

const SEED = 0x6b696c6e; // "kiln"
const COUNT = 100_000;
/** An input taking longer than this is reported as a hang. */
const STALL_MS = 10_000;

const CORPUS: readonly string[] = [
  'FROM alpine:3.19\nRUN apk add --no-cache curl\nCMD ["curl", "--version"]\n',
  '# syntax=docker/dockerfile:1\nFROM golang:1.22 AS build\nWORKDIR /src\nCOPY go.mod go.sum ./\nRUN --mount=type=cache,target=/go/pkg/mod go mod download\nCOPY . .\nRUN --mount=type=cache,target=/root/.cache/go-build CGO_ENABLED=0 go build -o /out/app ./cmd/app\n\nFROM gcr.io/distroless/static\nCOPY --from=build /out/app /app\nENTRYPOINT ["/app"]\n',
  'ARG NODE_VERSION=20\nFROM node:${NODE_VERSION}-alpine AS deps\nWORKDIR /app\nCOPY package*.json ./\nRUN npm ci\nFROM deps AS build\nCOPY . .\nRUN npm run build\nFROM nginx:alpine\nCOPY --from=build /app/dist /usr/share/nginx/html\nEXPOSE 80\n',
  '# escape=`\nFROM mcr.microsoft.com/windows/servercore:ltsc2022\nSHELL ["powershell", "-Command"]\nRUN Write-Host `\n    hello\nCOPY app c:\\app\\\nWORKDIR c:\\app\n',
  'FROM ubuntu:22.04\nRUN <<EOF\nset -e\napt-get update\napt-get install -y vim\nEOF\n',
  'FROM python:3.12-slim\nRUN python3 <<-"EOF"\n\timport os\n\tprint(os.getcwd())\n\tEOF\n',
  'FROM alpine\nCOPY <<EOF /etc/app.conf\nport=${PORT:-8080}\nEOF\nCOPY <<one.txt <<two.txt /dest/\n1\none.txt\n2\ntwo.txt\n',
  'FROM busybox\nARG user\nUSER ${user:-nobody}\nARG TARGETARCH\nRUN echo $TARGETARCH\n',
  'FROM --platform=$BUILDPLATFORM golang:1.22 AS xbuild\nARG TARGETOS TARGETARCH\nRUN GOOS=$TARGETOS GOARCH=$TARGETARCH go build ./...\nFROM scratch\nCOPY --from=xbuild /go/bin/app /app\n',
  'FROM debian\nLABEL "com.example.vendor"="ACME Incorporated" version="1.0" description="multi\\\n line"\nENV MY_NAME="John Doe" MY_DOG=Rex\\ The\\ Dog\nENV LEGACY value with spaces\n',
  'FROM alpine\nHEALTHCHECK --interval=5m --timeout=3s --start-period=30s --retries=3 CMD wget -q -O- http://localhost/ || exit 1\nSTOPSIGNAL SIGTERM\nVOLUME ["/data", "/logs"]\nVOLUME /cache\n',
  'FROM alpine\nONBUILD ADD . /app/src\nONBUILD RUN /usr/local/bin/python-build --dir /app/src\nMAINTAINER someone <a@b.c>\n',
  'FROM alpine AS a\nFROM a AS b\nCOPY --from=0 /x /x\nFROM b\nCOPY --from=a /y /y\nRUN --mount=type=bind,from=b,source=/s,target=/t ls /t\n',
  'FROM alpine\nRUN --mount=type=secret,id=npmrc,target=/root/.npmrc,required=true --mount=type=ssh npm install\nRUN --network=none --security=sandbox make test\n',
  'FROM alpine\nADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/a.tar.gz /\nADD --keep-git-dir=true https://github.com/moby/buildkit.git#v0.10.1 /buildkit\n',
  'FROM alpine\nCOPY --chown=1000:1000 --chmod=0755 --link --parents --exclude=*.md --exclude=tmp/ a b /dst/\nCOPY ["my file.txt", "/dest dir/"]\n',
  'FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=${CONT_IMG_VER:-v1.0.0}\nRUN echo $CONT_IMG_VER\n',
  'ARG VERSION=latest\nFROM busybox:$VERSION\nARG VERSION\nRUN echo $VERSION > image_version\n',
  'FROM alpine\n# comment\nRUN echo a \\\n  # inner comment\n  b \\\n\n  c\n',
  'FROM alpine\nRUN ["echo", "exec form"]\nRUN [broken json\nCMD echo shell form\nENTRYPOINT ["a", 1]\n',
  'FROM alpine\nEXPOSE 80/tcp 443 8000-8010/udp\nWORKDIR /a\nWORKDIR b\nUSER app:app\n',
  'FROM alpine\nRUN --mount=type=tmpfs,target=/tmp,size=64m --mount=type=cache,id=apk,target=/var/cache/apk,sharing=locked apk add git\n',
  'FROM alpine\nENV A=1\nENV B=${A}2 C="${A:+set}" D=${UNSET:-def} E=${A#1} F=${A%1} G=${A/1/one}\nLABEL x=$B\n',
  'from alpine as Base\nrun echo lower\ncopy --from=BASE /a /b\n',
  'FROM alpine\nRUN cat <<A > /a && cat <<B > /b\nfirst\nA\nsecond\nB\n',
  'ARG BASE=alpine\nARG TAG=3.19\nFROM ${BASE}:${TAG} AS base\nFROM base AS test\nRUN make test\nFROM base AS prod\nCOPY --from=test /report /report\n',
  'FROM alpine\nSHELL ["/bin/sh", "-eu", "-c"]\nRUN echo ok\nHEALTHCHECK NONE\n',
  '\uFEFF# check=skip=JSONArgsRecommended\r\nFROM alpine\r\nRUN echo crlf \\\r\n  joined\r\n',
  'FROM alpine\nCOPY --from=nginx:latest /etc/nginx/nginx.conf /nginx.conf\nRUN --mount=from=golang:1.22,target=/go ls /go\n',
  'FROM alpine\nARG A=x B=${A}y\nENV P=/usr Q=$P/bin\nVOLUME $P\nSTOPSIGNAL ${SIG:-SIGKILL}\n',
];

const KEYWORDS = [
  'FROM',
  'RUN',
  'CMD',
  'LABEL',
  'MAINTAINER',
  'EXPOSE',
  'ENV',
  'ADD',
  'COPY',
  'ENTRYPOINT',
  'VOLUME',
  'USER',
  'WORKDIR',
  'ARG',
  'ONBUILD',
  'STOPSIGNAL',
  'HEALTHCHECK',
  'SHELL',
  'from',
  'Run',
  'RUNN',
  'COPPY',
  'onbuild onbuild',
  'ONBUILD FROM',
];

const TOKENS = [
  '\\',
  '\\\n',
  '`',
  '`\n',
  '<<EOF',
  '<<-EOF',
  '<<"EOF"',
  "<<'X'",
  '3<<EOF',
  'EOF',
  '\tEOF',
  '${',
  '}',
  '$',
  '${X:?}',
  '${X:?boom}',
  '${X:-',
  '${X/',
  '${#X}',
  '${X:-${Y:-${Z}}}',
  '"',
  "'",
  '[',
  ']',
  '["a",',
  '[]',
  '--mount=',
  '--mount=type=cache,target=',
  '--mount=type=secret',
  '--mount=from=',
  '--mount=type=ssh,id=',
  '--mount="type=bind,target=/a,b"',
  '--from=',
  '--from=0',
  '--from=9',
  '--platform=',
  '--network=',
  '--link=',
  '--retries=',
  '--interval=1',
  '--',
  '-',
  '#',
  '# escape=`',
  '# escape=x',
  '# syntax=x',
  '\n',
  '\r\n',
  '\r',
  '\t',
  ' ',
  '=',
  ',',
  ' AS ',
  ' as x',
  'scratch',
  'NONE',
  'CMD',
  'type=tmpfs,size=',
  'mode=0999',
  '\u00e9',
  '\uFEFF',
  '\u0000',
  '\uD800',
  '\u2028',
  '😀',
];

const CHARS = ' \t\n\r\\`$"\'{}[]()<>=,:;#-_./*?!@%&|~^+0123456789abcxyzABCXYZ\u00e9\u0000\uFFFF';

function mulberry32(a: number): () => number {
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rnd = () => number;
const int = (rnd: Rnd, n: number): number => Math.floor(rnd() * n);
const pick = <T>(rnd: Rnd, a: readonly T[]): T => a[int(rnd, a.length)]!;

function randomLine(rnd: Rnd): string {
  const parts = [pick(rnd, KEYWORDS)];
  const n = int(rnd, 5);
  for (let k = 0; k < n; k++) {
    const r = rnd();
    parts.push(
      r < 0.5 ? pick(rnd, TOKENS) : r < 0.8 ? pick(rnd, ['a', '/b', 'x=1', '$X', 'alpine', '80']) : '',
    );
  }
  return parts.join(rnd() < 0.8 ? ' ' : '');
}

/** A Dockerfile made up from scratch: random instruction lines, usually after a FROM. */
function generate(rnd: Rnd): string {
  const lines: string[] = [];
  if (rnd() < 0.3) lines.push(pick(rnd, ['# syntax=docker/dockerfile:1', '# escape=`', 'ARG X=1']));
  if (rnd() < 0.8) lines.push(pick(rnd, ['FROM alpine', 'FROM scratch AS s', 'FROM $X', 'FROM a AS b']));
  const n = 1 + int(rnd, 8);
  for (let k = 0; k < n; k++) lines.push(randomLine(rnd));
  return lines.join('\n') + (rnd() < 0.7 ? '\n' : '');
}

function mutate(text: string, rnd: Rnd): string {
  const pos = int(rnd, text.length + 1);
  const lines = text.split('\n');
  const li = int(rnd, lines.length);
  switch (int(rnd, 10)) {
    case 0: {
      // Flip a character: to one from a hostile set or to any UTF-16 code unit.
      const ch = rnd() < 0.8 ? pick(rnd, [...CHARS]) : String.fromCharCode(int(rnd, 0x10000));
      return text.slice(0, pos) + ch + text.slice(pos + 1);
    }
    case 1:
    case 2:
      return text.slice(0, pos) + pick(rnd, TOKENS) + text.slice(pos);
    case 3:
      lines.splice(li, 1);
      return lines.join('\n');
    case 4:
      lines.splice(li, 0, lines[li] ?? '');
      return lines.join('\n');
    case 5:
      lines.splice(li, 0, randomLine(rnd));
      return lines.join('\n');
    case 6: {
      const lj = int(rnd, lines.length);
      [lines[li], lines[lj]] = [lines[lj]!, lines[li]!];
      return lines.join('\n');
    }
    case 7:
      return rnd() < 0.5 ? text.slice(0, pos) : text.slice(0, pos) + pick(rnd, CORPUS).slice(pos);
    case 8:
      return text.slice(0, pos) + text.slice(pos + 1 + int(rnd, 20));
    default: {
      // Replace the keyword of a line.
      lines[li] = (lines[li] ?? '').replace(/^\s*\S*/, pick(rnd, KEYWORDS));
      return lines.join('\n');
    }
  }
}

/** Input number `i` of the run seeded with `seed`; independent of every other input. */
export function fuzzInput(seed: number, i: number): string {
  const rnd = mulberry32((seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0);
  let text = i % 5 === 0 ? generate(rnd) : pick(rnd, CORPUS);
  const n = 1 + int(rnd, 4);
  for (let k = 0; k < n; k++) text = mutate(text, rnd);
  return text;
}

const PLAN_OPTS: PlanOptions = {
  buildArgs: { VERSION: '1.0', HTTP_PROXY: 'http://proxy:3128', EMPTY: '', X: 'x' },
  targetPlatform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
  buildPlatform: { os: 'linux', architecture: 'amd64' },
};

const KNOWN_BUGS: ReadonlyArray<{ id: string; match: (bad: string) => boolean }> = [];

type Outcome = 'ok' | 'kiln' | { known: string } | { bad: string };

/** Runs one input; a KilnError must carry a position with a line inside the file. */
function runOne(text: string): Outcome {
  try {
    parseDockerfile(text, 'Dockerfile');
    planFromText(text, 'Dockerfile', PLAN_OPTS);
    return 'ok';
  } catch (e) {
    if (!(e instanceof KilnError)) {
      const bad =
        e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ''}` : `non-Error: ${String(e)}`;
      const known = KNOWN_BUGS.find((k) => k.match(bad));
      return known ? { known: known.id } : { bad };
    }
    const p = e.position;
    if (!p) return { bad: `KilnError ${e.code} without a position: ${e.message}` };
    if (p.file !== 'Dockerfile' || !Number.isInteger(p.line) || p.line < 1)
      return { bad: `KilnError ${e.code} with a bad position ${JSON.stringify(p)}: ${e.message}` };
    if (e.message.includes('\n')) return { bad: `KilnError ${e.code} message has a newline: ${e.message}` };
    return 'kiln';
  }
}

interface RunResult {
  count: number;
  parsed: number;
  kilnErrors: number;
  known: Record<string, number>;
  failure?: { index: number; input: string; error: string };
  ms: number;
}

/** Child side: runs the inputs, writing the current index to `progressFile` before each one. */
function runChild(): void {
  const seed = Number(process.env.KILN_FUZZ_SEED);
  const count = Number(process.env.KILN_FUZZ_COUNT);
  const fd = openSync(process.env.KILN_FUZZ_PROGRESS!, 'r+');
  const buf = Buffer.alloc(4);
  const t0 = performance.now();
  let parsed = 0;
  let kilnErrors = 0;
  const known: Record<string, number> = {};
  let failure: RunResult['failure'];
  let done = 0;
  for (let i = 0; i < count; i++) {
    buf.writeInt32LE(i, 0);
    writeSync(fd, buf, 0, 4, 0);
    const input = fuzzInput(seed, i);
    const out = runOne(input);
    done = i + 1;
    if (out === 'ok') parsed++;
    else if (out === 'kiln') kilnErrors++;
    else if ('known' in out) known[out.known] = (known[out.known] ?? 0) + 1;
    else {
      failure = { index: i, input, error: out.bad };
      break;
    }
  }
  closeSync(fd);
  const result: RunResult = {
    count: done,
    parsed,
    kilnErrors,
    known,
    ms: 0,
    ...(failure ? { failure } : {}),
  };
  result.ms = performance.now() - t0;
  process.send!(result, () => process.exit(0));
}

/** Loader flags (tsx) the child needs to import TypeScript; test-runner flags are left out. */
function childExecArgv(): string[] {
  const out: string[] = [];
  const argv = process.execArgv;
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k]!;
    if (/^--(import|require|loader|experimental-loader)=/.test(a)) out.push(a);
    else if (/^--(import|require|loader|experimental-loader|r)$/.test(a) && k + 1 < argv.length)
      out.push(a, argv[++k]!);
  }
  if (!out.some((a) => a.includes('tsx'))) out.push('--import', 'tsx');
  return out;
}

/**
 * Runs the fuzz loop in a child process so a hang can be caught: the child records the index it is
 * on, and when that index stops moving for STALL_MS the child is killed and the input reported.
 */
function runInChild(seed: number, count: number): Promise<RunResult> {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-fuzz-'));
  const progressFile = join(dir, 'progress');
  writeFileSync(progressFile, Buffer.from([0xff, 0xff, 0xff, 0xff]));
  const readIndex = (): number => readFileSync(progressFile).readInt32LE(0);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    KILN_FUZZ_CHILD: '1',
    KILN_FUZZ_SEED: String(seed),
    KILN_FUZZ_COUNT: String(count),
    KILN_FUZZ_PROGRESS: progressFile,
  };
  delete env.NODE_TEST_CONTEXT;
  const child = fork(fileURLToPath(import.meta.url), [], {
    execArgv: childExecArgv(),
    env,
    stdio: 'inherit',
  });
  return new Promise<RunResult>((resolve, reject) => {
    let settled = false;
    const finish = (r: RunResult | Error): void => {
      if (settled) return;
      settled = true;
      clearInterval(timer);
      if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      if (r instanceof Error) reject(r);
      else resolve(r);
    };
    const stalled = (index: number, why: string): RunResult => ({
      count: index + 1,
      parsed: 0,
      kilnErrors: 0,
      known: {},
      ms: 0,
      failure: { index, input: fuzzInput(seed, index), error: why },
    });
    let last = -2;
    let since = Date.now();
    const timer = setInterval(() => {
      const now = readIndex();
      if (now !== last) {
        last = now;
        since = Date.now();
      } else if (now >= 0 && Date.now() - since > STALL_MS) {
        finish(stalled(now, `no result after ${STALL_MS} ms (infinite loop?)`));
      }
    }, 250);
    child.on('message', (r: RunResult) => finish(r));
    child.on('error', (e) => finish(e));
    child.on('exit', (code, signal) => {
      if (settled) return;
      const i = readIndex();
      if (i < 0) finish(new Error(`fuzz child exited (${code ?? signal}) before the first input`));
      // A crash the try/catch could not see (a fatal stack overflow, say).
      else finish(stalled(i, `child process died (${code ?? signal})`));
    });
  });
}

if (process.env.KILN_FUZZ_CHILD === '1') {
  runChild();
} else {
  const { test } = await import('node:test');
  const assert: typeof import('node:assert/strict') = (await import('node:assert/strict')).default;

  test('the corpus itself plans or fails with positioned KilnErrors', () => {
    for (const text of CORPUS) assert.notEqual(typeof runOne(text), 'object', text);
  });

  test('${v%-*} (a "-" in a trim pattern) expands', () => {
    const p = planFromText('FROM alpine\nARG V=1.2-alpine\nENV X=${V%-*}\n', 'Dockerfile', PLAN_OPTS);
    const env = p.stages[0]!.instructions[1]!.expanded;
    assert.deepEqual(env.kind === 'env' ? env.pairs : null, [['X', '1.2']]);
  });

  test('inputs are deterministic', () => {
    assert.equal(fuzzInput(SEED, 12345), fuzzInput(SEED, 12345));
    assert.notEqual(fuzzInput(SEED, 1), fuzzInput(SEED, 2));
  });

  test(`fuzz: ${COUNT} generated and mutated Dockerfiles`, { timeout: 240_000 }, async () => {
    const r = await runInChild(SEED, COUNT);
    console.log(
      `fuzz: ${r.count} inputs, ${r.parsed} parsed, ${r.kilnErrors} KilnErrors (seed 0x${SEED.toString(16)}, ${Math.round(r.ms)} ms)`,
    );
    for (const [id, n] of Object.entries(r.known)) console.log(`fuzz: known bug hit ${n} time(s): ${id}`);
    if (r.failure) {
      assert.fail(
        `seed 0x${SEED.toString(16)} input #${r.failure.index} (rebuild with fuzzInput(${SEED}, ${r.failure.index})):\n` +
          `${JSON.stringify(r.failure.input)}\n${r.failure.error}`,
      );
    }
    assert.equal(r.count, COUNT);
    // The mix must exercise both paths, or the mutations are too weak or too strong.
    assert.ok(r.parsed > COUNT / 20, `only ${r.parsed} inputs parsed`);
    assert.ok(r.kilnErrors > COUNT / 20, `only ${r.kilnErrors} inputs failed`);
  });
}
