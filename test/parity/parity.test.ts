/**
 * Parity with buildah (issue 5): every case under test/parity/cases is built by kiln and by buildah,
 * both images are pushed to one test registry, unpacked with skopeo + umoci and compared file by file
 * (type, mode, owner, size, content hash, link target, hardlinks, xattrs) and field by field in the
 * config. A difference fails the case unless its case.json lists it with the reason kiln is right.
 * Kiln's image is then run (chroot, as its USER) and its stdout checked.
 *
 * Needs root, buildah, skopeo, umoci and docker-registry; skipped otherwise. PARITY_CASES=a,b limits
 * the run to some cases; PARITY_KEEP=1 keeps the work dir (contexts, unpacked images) for a look.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry } from '../helpers/registry.ts';
import type { TestRegistry } from '../helpers/registry.ts';
import { pushBusyboxImage } from '../helpers/images.ts';
import { pushDebianImage } from '../helpers/debian.ts';
import {
  BUILDAH_STUBS,
  CASES_DIR,
  buildBoth,
  compareConfigs,
  compareTrees,
  grepTree,
  loadCase,
  prepareContext,
  runImage,
  unexplained,
  unpack,
  walkTree,
} from './harness.ts';
import type { CaseSpec, Env } from './harness.ts';

const tools = ['/usr/bin/buildah', '/usr/bin/skopeo', '/usr/bin/umoci', '/usr/bin/docker-registry'];
const skip =
  process.getuid?.() !== 0
    ? 'parity needs root'
    : tools.find((t) => !existsSync(t))
      ? `missing ${tools.find((t) => !existsSync(t))}`
      : false;

const only = process.env.PARITY_CASES?.split(',').filter((s) => s !== '');
const caseNames = readdirSync(CASES_DIR)
  .filter((n) => existsSync(join(CASES_DIR, n, 'case.json')))
  .filter((n) => !only || only.includes(n))
  .sort();

/** Files the test HTTP server serves for ADD <url> cases. */
export const HTTP_FILES: Record<string, string> = {
  '/hello.txt': 'hello over http\n',
  '/dir/data.json': '{"served":true}\n',
};

describe('parity with buildah', { skip, concurrency: 1 }, () => {
  let registry: TestRegistry;
  let http: Server;
  let env: Env;
  let debianAvailable = false;

  before(async () => {
    registry = await startRegistry();
    await pushBusyboxImage(registry, 'base/busybox', 'latest');
    const needDebian = await Promise.all(caseNames.map(async (n) => (await loadCase(n)).base === 'debian'));
    if (needDebian.some(Boolean)) {
      await pushDebianImage(registry, 'base/debian', 'latest');
      debianAvailable = true;
    }
    http = createServer((req, res) => {
      const body = HTTP_FILES[req.url ?? ''];
      if (body === undefined) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-length': Buffer.byteLength(body),
      });
      res.end(body);
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    const work = await mkdtemp(join(tmpdir(), 'kiln-parity-'));
    env = {
      registry: registry.host,
      httpUrl: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
      work,
      buildahRoot: join(work, 'buildah-root'),
      buildahRunRoot: join(work, 'buildah-run'),
    };
  });

  after(async () => {
    await new Promise<void>((r) => http?.close(() => r()));
    await registry?.stop();
    if (env && process.env.PARITY_KEEP) console.log(`parity work dir kept: ${env.work}`);
    else if (env) await rm(env.work, { recursive: true, force: true });
  });

  for (const name of caseNames) {
    test(name, async (t) => {
      const spec: CaseSpec = await loadCase(name);
      if (spec.base === 'debian' && !debianAvailable) {
        t.skip('test/helpers/debian.ts (pushDebianImage) is not available');
        return;
      }
      let t0 = Date.now();
      const lap = (what: string): void => {
        t.diagnostic(`${what}: ${Date.now() - t0} ms`);
        t0 = Date.now();
      };
      const ctx = await prepareContext(env, name, spec);
      lap('prepare');
      const took = await buildBoth(env, name, spec, ctx);
      lap(`build (kiln ${took.kilnMs} ms, buildah ${took.buildahMs} ms)`);
      const [k, b] = await Promise.all([unpack(env, name, 'kiln'), unpack(env, name, 'buildah')]);
      lap('unpack');
      const [kt, bt] = await Promise.all([walkTree(k.rootfs), walkTree(b.rootfs)]);
      lap('walk');

      const diffs = [...compareTrees(kt, bt), ...compareConfigs(k.config, b.config)];
      for (const d of diffs.slice(0, 40)) t.diagnostic(`difference: ${JSON.stringify(d)}`);
      if (diffs.length > 40) t.diagnostic(`... and ${diffs.length - 40} more differences`);
      const left = unexplained(diffs, spec.knownDifferences);
      assert.deepEqual(left, [], `unexplained differences between kiln and buildah in ${name}`);

      // Known buildah behaviour: RUN leaves /etc/hosts etc. stubs behind. kiln must not.
      for (const stub of BUILDAH_STUBS) {
        if (!bt.has(stub) || spec.base !== 'busybox') continue;
        assert.equal(kt.has(stub), false, `kiln image must not contain buildah's ${stub} stub`);
      }

      for (const value of Object.values(spec.secrets ?? {})) {
        assert.deepEqual(await grepTree(k.rootfs, value), [], 'secret value found in the image filesystem');
        assert.equal(k.configText.includes(value), false, 'secret value found in the image config/history');
      }

      if (spec.run) {
        const r = await runImage(k, spec.run.args);
        assert.equal(r.code, 0, `running the kiln image failed: ${r.stderr}`);
        assert.equal(r.stdout.trim(), spec.run.expectStdout.trim());
      }
      if (!process.env.PARITY_KEEP) await rm(join(env.work, name), { recursive: true, force: true });
    });
  }
});

// Cheap and always run (no root needed): the third-party corpus names where each case comes from.
describe('parity corpus sources', () => {
  const all = readdirSync(CASES_DIR).filter((n) => existsSync(join(CASES_DIR, n, 'case.json')));
  const thirdParty = all.filter((n) => Number(n.slice(0, 2)) >= 50);
  test('at least 30 third-party cases', () => assert.ok(thirdParty.length >= 30, String(thirdParty.length)));
  for (const name of thirdParty) {
    test(`${name} names its source repository, path, commit and adaptation`, async () => {
      const s = (await loadCase(name)).source;
      assert.ok(s, 'case.json has no "source"');
      assert.match(s.repository, /^[\w.-]+\/[\w.-]+$/);
      assert.ok(s.path.length > 0);
      assert.match(s.commit, /^[0-9a-f]{40}$/);
      assert.ok(s.adaptation.length > 10);
    });
  }
});
