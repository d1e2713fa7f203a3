/**
 * Build failures of the parity corpus kind: kiln (the CLI, as a child process) must fail, and its
 * error must name the Dockerfile line and say what is wrong.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry } from '../helpers/registry.ts';
import type { TestRegistry } from '../helpers/registry.ts';
import { pushBusyboxImage } from '../helpers/images.ts';
import { REPO_ROOT, run } from './harness.ts';

const skip =
  process.getuid?.() !== 0
    ? 'RUN steps need root here'
    : existsSync('/usr/bin/docker-registry')
      ? false
      : 'missing /usr/bin/docker-registry';

interface ErrorCase {
  name: string;
  /** `@REGISTRY@` and `@HTTP@` are filled in. */
  dockerfile: string;
  /** 1-based line the error must name. */
  line: number;
  stderr: RegExp[];
  /** Expected kiln exit code, when it is defined by the case. */
  exitCode?: number;
}

const CASES: ErrorCase[] = [
  {
    name: 'failing RUN: exit code, command and line',
    dockerfile: 'FROM @REGISTRY@/base/busybox:latest\nCOPY a.txt /a\nRUN echo before-fail && exit 7\n',
    line: 3,
    stderr: [/exit code 7/, /echo before-fail && exit 7/, /before-fail/],
    exitCode: 7,
  },
  {
    name: 'failing RUN in exec form',
    dockerfile: 'FROM @REGISTRY@/base/busybox:latest\nRUN ["/bin/sh", "-c", "exit 3"]\n',
    line: 2,
    stderr: [/exit code 3/, /exit 3/],
  },
  {
    name: 'missing COPY source',
    dockerfile: 'FROM @REGISTRY@/base/busybox:latest\n\nCOPY a.txt missing.txt /dst/\n',
    line: 3,
    stderr: [/missing\.txt/],
  },
  // A wildcard that matches nothing is no error in BuildKit (AllowEmptyWildcard): see
  // semantics.test.ts and test/unit/context/copy-rules.test.ts.
  {
    name: 'unknown --from stage (typo)',
    dockerfile:
      'FROM @REGISTRY@/base/busybox:latest AS builder\nRUN echo x > /x\nFROM @REGISTRY@/base/busybox:latest\nCOPY --from=buidler /x /x\n',
    line: 4,
    stderr: [/buidler/, /builder/],
  },
  {
    name: 'bad --chown user',
    dockerfile: 'FROM @REGISTRY@/base/busybox:latest\nCOPY --chown=nosuchuser a.txt /a\n',
    line: 2,
    stderr: [/nosuchuser/],
  },
  {
    name: 'bad --chown group',
    dockerfile: 'FROM @REGISTRY@/base/busybox:latest\nCOPY --chown=root:nosuchgroup a.txt /a\n',
    line: 2,
    stderr: [/nosuchgroup/],
  },
  {
    name: 'bad --chmod (octal out of range)',
    dockerfile: 'FROM @REGISTRY@/base/busybox:latest\nCOPY --chmod=999 a.txt /a\n',
    line: 2,
    stderr: [/999/],
  },
  {
    name: 'bad --chmod (symbolic)',
    dockerfile: 'FROM @REGISTRY@/base/busybox:latest\nCOPY --chmod=u+q a.txt /a\n',
    line: 2,
    stderr: [/u\+q/],
  },
  {
    name: 'ADD --checksum mismatch',
    dockerfile:
      'FROM @REGISTRY@/base/busybox:latest\nADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 @HTTP@/hello.txt /h\n',
    line: 2,
    stderr: [/checksum/i],
  },
  {
    name: 'RUN --network=none has no network',
    dockerfile:
      'FROM @REGISTRY@/base/busybox:latest\nRUN --network=none wget -q -T 3 -O /dev/null http://@REGISTRY@/v2/\n',
    line: 2,
    stderr: [/exit code/],
  },
  {
    name: 'required secret not given',
    dockerfile:
      'FROM @REGISTRY@/base/busybox:latest\nRUN --mount=type=secret,id=nope,required=true cat /run/secrets/nope\n',
    line: 2,
    stderr: [/nope/],
  },
];

describe('kiln build errors name the Dockerfile line', { skip, concurrency: 1 }, () => {
  let registry: TestRegistry;
  let http: Server;
  let work: string;

  before(async () => {
    registry = await startRegistry();
    await pushBusyboxImage(registry, 'base/busybox', 'latest');
    http = createServer((req, res) => {
      if (req.url === '/hello.txt') res.writeHead(200).end('hello over http\n');
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    work = await mkdtemp(join(tmpdir(), 'kiln-parity-errors-'));
  });

  after(async () => {
    await new Promise<void>((r) => http?.close(() => r()));
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  CASES.forEach((c, i) => {
    test(c.name, async () => {
      const ctx = join(work, String(i));
      await mkdir(ctx, { recursive: true });
      await writeFile(join(ctx, 'a.txt'), 'a\n');
      const dockerfile = join(ctx, 'Dockerfile');
      const httpUrl = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
      await writeFile(
        dockerfile,
        c.dockerfile.replaceAll('@REGISTRY@', registry.host).replaceAll('@HTTP@', httpUrl),
      );
      const r = await run(
        process.execPath,
        [
          '--import',
          'tsx',
          join(REPO_ROOT, 'src/cli/main.ts'),
          'build',
          '-c',
          ctx,
          '-f',
          dockerfile,
          '--no-push',
          '--insecure-registry',
          registry.host,
        ],
        { cwd: REPO_ROOT },
      );
      assert.notEqual(r.code, 0, `the build must fail; stderr:\n${r.stderr}`);
      if (c.exitCode !== undefined) assert.equal(r.code, c.exitCode, r.stderr);
      assert.ok(
        r.stderr.includes(`${dockerfile}:${c.line}`),
        `stderr must name ${dockerfile}:${c.line}:\n${r.stderr}`,
      );
      for (const re of c.stderr) assert.match(r.stderr, re);
    });
  });
});
