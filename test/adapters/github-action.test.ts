/**
 * The GitHub Action run for real by @github/local-action (its @actions/core and @actions/cache stubs)
 * against a loopback registry with Basic auth: the action spawns the freshly bundled kiln CLI, pushes,
 * and its outputs are checked against `skopeo inspect`. Plus the input parser, table-driven, and
 * action.yml validated with @action-validator/cli.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { pushBusyboxImage } from '../helpers/images.ts';
import { ensureQemuBinfmt } from '../helpers/binfmt.ts';
import { pushMultiPlatformBusybox } from '../helpers/foreign-images.ts';
import { cacheKeys, listingHash } from '../../src/ci/github/cache-dir.ts';
import { runLocalAction, type ActionRun } from './fixtures/local-action.ts';

const execFileP = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const PASSWORD = 'kiln-secret';

test('cache keys and listing hash', async () => {
  const k = cacheKeys('', 'linux-x64', 'abc', '42', '1');
  assert.equal(k.primary, 'kiln-linux-x64-abc-42-1');
  assert.deepEqual(k.restore, ['kiln-linux-x64-abc-', 'kiln-linux-x64-']);
  const d = mkdtempSync(join(tmpdir(), 'kiln-lh-'));
  try {
    assert.equal(await listingHash(join(d, 'missing')), '');
    writeFileSync(join(d, 'a'), 'x');
    const h1 = await listingHash(d);
    assert.equal(await listingHash(d), h1);
    writeFileSync(join(d, 'b'), 'y');
    assert.notEqual(await listingHash(d), h1);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('action.yml passes @action-validator/cli', async () => {
  const text = readFileSync(join(ROOT, 'action.yml'), 'utf8');
  // The validator's schema (0.6.0, the newest) predates node24; validate the rest with node20.
  assert.match(text, /^ {2}using: node24$/m);
  const dir = mkdtempSync(join(tmpdir(), 'kiln-av-'));
  try {
    writeFileSync(join(dir, 'action.yml'), text.replace('using: node24', 'using: node20'));
    const { stdout } = await execFileP(join(ROOT, 'node_modules/.bin/action-validator'), [
      join(dir, 'action.yml'),
    ]);
    assert.equal(stdout.trim(), '');
    // Validation does catch errors: an unknown key fails.
    writeFileSync(join(dir, 'action.yml'), text.replace('using: node24', 'using: node20\n  mian: x.js'));
    await assert.rejects(
      execFileP(join(ROOT, 'node_modules/.bin/action-validator'), [join(dir, 'action.yml')]),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('GitHub Action via @github/local-action', { timeout: 600_000 }, () => {
  let reg: TestRegistry;
  let work: string;
  let dist: string;
  let cacheStore: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'kiln-action-test-'));
    dist = join(work, 'dist');
    cacheStore = join(work, 'gh-cache');
    mkdirSync(cacheStore);
    await execFileP(process.execPath, [join(ROOT, 'scripts/bundle.mjs'), dist], { cwd: ROOT });
    reg = await startRegistry({ auth: 'htpasswd', users: { kiln: PASSWORD } });
    await pushBusyboxImage(reg, 'base/busybox', 'latest');
  });
  after(async () => {
    await reg?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  function appDir(name: string, dockerfile: string | null): string {
    const dir = join(work, name);
    mkdirSync(dir, { recursive: true });
    if (dockerfile !== null) writeFileSync(join(dir, 'Dockerfile'), dockerfile);
    writeFileSync(join(dir, 'hello.txt'), 'hello from the action\n');
    return dir;
  }

  const runAction = (name: string, inputs: Record<string, string>): Promise<ActionRun> =>
    runLocalAction({ work, dist, cacheStore, name, inputs });

  const dockerfile = (host: string): string =>
    [
      `FROM ${host}/base/busybox:latest`,
      'ARG GREETING=none',
      'RUN echo "$GREETING" > /greeting',
      'COPY hello.txt /hello.txt',
      '',
    ].join('\n');

  test('builds, pushes, sets outputs that match skopeo inspect, writes the summary, hides the password', async () => {
    const dir = appDir('ok', dockerfile(reg.host));
    const ref = `${reg.host}/app/action`;
    const r = await runAction('ok', {
      context: dir,
      'cache-dir': join(work, 'kiln-cache'),
      push: 'true',
      tags: `${ref}:1, ${ref}:latest`,
      'build-args': 'GREETING=hi there',
      labels: 'org.opencontainers.image.title=kiln-action-test',
      username: 'kiln',
      password: PASSWORD,
      'insecure-registries': reg.host,
      isolation: 'auto',
    });
    assert.deepEqual(r.errors, [], r.out);
    assert.match(r.outputs.digest ?? '', /^sha256:[a-f0-9]{64}$/, r.out);
    assert.equal(r.outputs.image, `${ref}@${r.outputs.digest}`);
    assert.match(r.outputs.isolation ?? '', /^(rootless|chroot|plain)$/);

    const inspect = async (args: string[]): Promise<Record<string, unknown>> => {
      const { stdout } = await execFileP('skopeo', [
        'inspect',
        '--tls-verify=false',
        '--creds',
        `kiln:${PASSWORD}`,
        ...args,
      ]);
      return JSON.parse(stdout) as Record<string, unknown>;
    };
    for (const tag of ['1', 'latest']) {
      const info = await inspect([`docker://${ref}:${tag}`]);
      assert.equal(info.Digest, r.outputs.digest, `tag ${tag}`);
      assert.deepEqual(
        (info.Labels as Record<string, string>)['org.opencontainers.image.title'],
        'kiln-action-test',
      );
    }
    const config = await inspect(['--config', `docker://${ref}:1`]);
    const { stdout: rawConfig } = await execFileP('skopeo', [
      'inspect', '--tls-verify=false', '--creds', `kiln:${PASSWORD}`, '--raw', '--config', `docker://${ref}:1`,
    ]); // prettier-ignore
    const { createHash } = await import('node:crypto');
    assert.equal(r.outputs.imageid, `sha256:${createHash('sha256').update(rawConfig).digest('hex')}`);
    assert.ok(config.rootfs);

    const meta = JSON.parse(r.outputs.metadata ?? '{}') as Record<string, unknown>;
    assert.equal(meta['containerimage.digest'], r.outputs.digest);
    const result = meta['kiln.result'] as { layers: number; steps: { instruction: string }[] };
    assert.ok(result.layers >= 2);
    assert.ok(result.steps.some((s) => s.instruction.startsWith('RUN')));

    assert.match(r.summary, /<table>/);
    // The summary lists the two tags, each once, and not repo@digest.
    assert.ok(
      r.summary.includes(`<code>${ref}:1</code>`) && r.summary.includes(`<code>${ref}:latest</code>`),
      r.summary,
    );
    assert.ok(!r.summary.includes(`${ref}@sha256`), r.summary);
    const desc = meta['containerimage.descriptor'] as { digest: string; mediaType: string };
    assert.equal(desc.digest, r.outputs.digest);
    assert.match(desc.mediaType, /^application\/vnd\.oci\.image\.(index|manifest)\.v1\+json$/);
    assert.match(String(meta['buildx.build.ref']), /^kiln\//);
    assert.equal(meta['image.name'], `${ref}:1,${ref}:latest`);
    assert.ok(r.summary.includes(r.outputs.digest!), 'summary names the digest');
    assert.match(r.summary, /Isolation/);
    assert.match(r.summary, /COPY hello.txt \/hello.txt/);
    assert.match(r.summary, /<td>(hit|miss|none)/);

    assert.ok(!r.out.includes(PASSWORD), 'the password never appears in the output');
    // The post step saw a successful build and a changed cache dir: it saved an entry.
    assert.match(r.out, /kiln post: cache saved as kiln-/);
  });

  test("the registry password is in no environment a RUN or the host can read: not kiln's, not the RUN's", async () => {
    // The RUN dumps every environment it can see (its own, pid 1's, every /proc/<pid>/environ) into
    // the image; meanwhile the test reads /proc/<pid>/environ of every kiln process on the host.
    const dir = appDir(
      'no-leak',
      [
        `FROM ${reg.host}/base/busybox:latest`,
        'RUN sleep 3; (env; cat /proc/1/environ; for f in /proc/[0-9]*/environ; do cat "$f"; echo; done) 2>/dev/null | tr "\\0" "\\n" > /envs.txt; wc -l /envs.txt',
        '',
      ].join('\n'),
    );
    const layout = join(work, 'no-leak-layout');
    const seen: string[] = [];
    let polling = true;
    const poll = (async () => {
      const { readdirSync } = await import('node:fs');
      while (polling) {
        for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
          try {
            const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
            if (!cmd.includes(join(dist, 'cli.js')) || !cmd.includes('build')) continue;
            seen.push(`${pid}\0${readFileSync(`/proc/${pid}/environ`, 'utf8')}`);
          } catch {
            // gone already
          }
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    const r = await runAction('no-leak', {
      context: dir,
      push: 'true',
      tags: `${reg.host}/app/noleak:1`,
      outputs: `type=oci,dest=${layout},tar=false`,
      username: 'kiln',
      password: PASSWORD,
      'insecure-registries': reg.host,
      cache: 'false',
    });
    polling = false;
    await poll;
    assert.deepEqual(r.errors, [], r.out);
    assert.ok(seen.length > 0, 'the test saw the kiln process');
    for (const env of seen) {
      assert.ok(!env.includes(PASSWORD), 'the password is not in a kiln process environment');
      assert.doesNotMatch(env, /(^|\0)(KILN_REGISTRY_PASSWORD|INPUT_PASSWORD|INPUT_SECRETS)=/);
      assert.match(
        env,
        /(^|\0)KILN_REGISTRY_USERNAME=kiln(\0|$)/,
        'this is the build that got the credentials',
      );
    }
    // What the RUN saw: /envs.txt from the image's layer blobs in the OCI layout the build wrote.
    const { stdout: envs } = await execFileP('sh', [
      '-c',
      'for b in "$1"/blobs/sha256/*; do tar -xzOf "$b" envs.txt 2>/dev/null; done; true',
      'sh',
      layout,
    ]);
    assert.match(envs, /PATH=/, 'the RUN did read environments');
    assert.ok(!envs.includes(PASSWORD), 'the RUN saw no password');
    assert.doesNotMatch(envs, /KILN_REGISTRY|INPUT_/);
    // And the push worked with those credentials.
    assert.match(r.outputs.digest ?? '', /^sha256:/);
  });

  test('a second run restores the cache from the first and hits it', async () => {
    const dir = appDir('ok', dockerfile(reg.host));
    // Like a fresh runner: the directory is gone and only the GitHub cache entry has it.
    rmSync(join(work, 'kiln-cache'), { recursive: true, force: true });
    const r = await runAction('again', {
      context: dir,
      'cache-dir': join(work, 'kiln-cache'),
      push: 'true',
      tags: `${reg.host}/app/action:2`,
      'build-args': 'GREETING=hi there',
      labels: 'org.opencontainers.image.title=kiln-action-test',
      username: 'kiln',
      password: PASSWORD,
      'insecure-registries': reg.host,
    });
    assert.deepEqual(r.errors, [], r.out);
    assert.match(r.out, /kiln cache restored from kiln-/);
    const meta = JSON.parse(r.outputs.metadata ?? '{}') as Record<string, unknown>;
    const steps = (meta['kiln.result'] as { steps: { instruction: string; cache: string }[] }).steps;
    assert.ok(
      steps.some((s) => s.instruction.startsWith('RUN') && s.cache === 'hit'),
      JSON.stringify(steps),
    );
  });

  const failures: [string, () => Record<string, string>, RegExp][] = [
    [
      'malformed build-arg line',
      () => ({
        context: appDir('bad-arg', dockerfile(reg.host)),
        tags: `${reg.host}/a:1`,
        'build-args': 'A=1\nBROKEN',
      }),
      /input build-args: item 2 "BROKEN" is not KEY=VALUE/,
    ],
    [
      'missing Dockerfile',
      () => ({
        context: appDir('no-dockerfile', null),
        tags: `${reg.host}/a:1`,
        password: PASSWORD,
        username: 'kiln',
      }),
      /Dockerfile not found: .*no-dockerfile\/Dockerfile/,
    ],
  ];
  test('a failed RUN: one annotation on the Dockerfile line with the last output lines, secrets masked', async () => {
    const dir = appDir(
      'run-fails',
      `FROM ${reg.host}/base/busybox:latest\nRUN --mount=type=secret,id=tok echo "first-marker"; cat /run/secrets/tok; echo; echo "last-marker"; exit 3\n`,
    );
    const r = await runAction('run-fails', {
      context: dir,
      tags: `${reg.host}/a:1`,
      secrets: 'tok=run-secret-value',
      username: 'kiln',
      password: PASSWORD,
      'insecure-registries': reg.host,
      cache: 'false',
    });
    assert.equal(r.errors.length, 1, r.out);
    assert.match(r.errors[0]!, /kiln build failed \(exit \d+\): .*:2: .*RUN/);
    assert.equal(r.errorParams.length, 1, r.out);
    assert.match(r.errorParams[0]!, /(^|,)file=[^,]*run-fails\/Dockerfile(,|$)/);
    assert.match(r.errorParams[0]!, /(^|,)line=2(,|$)/);
    const block = r.out.slice(r.out.indexOf('::error'));
    assert.match(block, /hint: last output:\n.*first-marker[\s\S]*last-marker/, block);
    assert.ok(!r.out.includes('run-secret-value'), 'the secret never appears');
    assert.ok(!r.out.includes(PASSWORD));
  });

  for (const [name, inputs, re] of failures) {
    test(`fails with one clear error annotation: ${name}`, async () => {
      const r = await runAction(name.replace(/\W+/g, '-'), inputs());
      assert.equal(r.errors.length, 1, r.out);
      assert.match(r.errors[0]!, re);
      assert.ok(!r.out.includes(PASSWORD), 'the password never appears in the output');
      assert.equal(r.outputs.digest, undefined);
      assert.match(r.out, /kiln post: (cache off|the build did not succeed)/);
    });
  }
  test('platforms: one run pushes an index; digest names it, metadata and the summary list each platform', async (t) => {
    const why = ensureQemuBinfmt(['arm64']);
    if (why) return t.skip(why);
    await pushMultiPlatformBusybox(reg, 'base/busybox', 'multi', [
      { architecture: 'amd64' },
      { architecture: 'arm64' },
    ]);
    const dir = appDir('multi', `FROM ${reg.host}/base/busybox:multi\nRUN uname -m > /arch\n`);
    const ref = `${reg.host}/app/action-multi`;
    const r = await runAction('multi', {
      context: dir,
      push: 'true',
      tags: `${ref}:1`,
      platforms: 'linux/amd64,linux/arm64',
      username: 'kiln',
      password: PASSWORD,
      'insecure-registries': reg.host,
      isolation: 'auto',
    });
    assert.deepEqual(r.errors, [], r.out);
    const { stdout } = await execFileP('skopeo', [
      'inspect',
      '--raw',
      '--tls-verify=false',
      '--creds',
      `kiln:${PASSWORD}`,
      `docker://${ref}:1`,
    ]);
    const index = JSON.parse(stdout) as {
      mediaType: string;
      manifests: Array<{
        digest: string;
        platform: { architecture: string };
        annotations?: Record<string, string>;
      }>;
    };
    assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.equal(r.outputs.digest, `sha256:${createHash('sha256').update(stdout).digest('hex')}`);
    // buildx's default provenance (mode=min: no event payload says the repository is public) for
    // each platform: one attestation manifest per image after the images.
    const images = index.manifests.filter((m) => !m.annotations?.['vnd.docker.reference.type']);
    const attestationOf = (digest: string): string | undefined =>
      index.manifests.find((m) => m.annotations?.['vnd.docker.reference.digest'] === digest)?.digest;
    assert.equal(images.length, 2);
    assert.equal(index.manifests.length, 4);
    const meta = JSON.parse(r.outputs.metadata ?? '{}') as Record<string, unknown>;
    assert.deepEqual(
      (meta['kiln.platforms'] as Array<Record<string, unknown>>).map((p) => ({
        ...p,
        attestations: { manifest: (p.attestations as { manifest?: string } | undefined)?.manifest },
      })),
      images.map((m) => ({
        platform: `linux/${m.platform.architecture}`,
        digest: m.digest,
        attestations: { manifest: attestationOf(m.digest) },
      })),
    );
    assert.ok(images.every((m) => attestationOf(m.digest)));
    assert.ok(!r.warnings.some((w) => /provenance/.test(w)), r.warnings.join('\n'));
    assert.equal((meta['containerimage.descriptor'] as { mediaType: string }).mediaType, index.mediaType);
    for (const m of images) assert.ok(r.summary.includes(`<code>${m.digest}</code>`), r.summary);
  });
});
