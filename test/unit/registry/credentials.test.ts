import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CredentialStore, normalizeRegistryKey, type Credential } from '../../../src/registry/credentials.ts';
import { KilnError } from '../../../src/util/errors.ts';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

let root: string;
let binDir: string;
let n = 0;

/**
 * A real credential helper: a shell script answering from a table of host -> JSON, logging each
 * requested server URL to $HELPER_LOG, and exiting 1 with Docker's "credentials not found" text otherwise.
 */
function writeHelper(name: string, answers: Record<string, string>, extra = ''): void {
  const cases = Object.entries(answers)
    .map(([host, json]) => `  '${host}') printf '%s\\n' '${json}' ;;`)
    .join('\n');
  const script = `#!/bin/sh
[ "$1" = get ] || { echo "unsupported action $1" >&2; exit 2; }
read -r host
[ -n "$HELPER_LOG" ] && printf '%s %s\\n' '${name}' "$host" >> "$HELPER_LOG"
${extra}
case "$host" in
${cases}
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
`;
  const p = join(binDir, `docker-credential-${name}`);
  writeFileSync(p, script);
  chmodSync(p, 0o755);
}

function configDir(config: unknown): string {
  const dir = join(root, `cfg-${++n}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'config.json'), typeof config === 'string' ? config : JSON.stringify(config));
  return dir;
}

function store(config: unknown, envExtra: NodeJS.ProcessEnv = {}, explicit?: Record<string, Credential>) {
  const log = join(root, `log-${++n}`);
  const env: NodeJS.ProcessEnv = {
    PATH: `${binDir}:/usr/bin:/bin`,
    HOME: root,
    HELPER_LOG: log,
    ...envExtra,
  };
  const s = new CredentialStore({
    dockerConfigDir: config === undefined ? join(root, 'none') : configDir(config),
    env,
    explicit,
  });
  const calls = (): string[] => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []);
  return { s, calls };
}

before(() => {
  root = mkdtempSync(join(tmpdir(), 'kiln-creds-'));
  binDir = join(root, 'bin');
  mkdirSync(binDir);
  writeHelper('good', {
    'ghcr.io': '{"ServerURL":"ghcr.io","Username":"octo","Secret":"helper-pass"}',
    'https://index.docker.io/v1/':
      '{"ServerURL":"https://index.docker.io/v1/","Username":"hubuser","Secret":"hubpass"}',
    'tok.example.com': '{"ServerURL":"tok.example.com","Username":"<token>","Secret":"refresh-123"}',
  });
  writeHelper('store', {
    'quay.io': '{"ServerURL":"quay.io","Username":"q","Secret":"store-pass"}',
    'ghcr.io': '{"ServerURL":"ghcr.io","Username":"from-store","Secret":"x"}',
  });
  writeHelper('broken', {}, 'echo "keychain locked" >&2; exit 3');
  writeHelper('garbage', { 'g.io': 'not json' });
});

after(() => rmSync(root, { recursive: true, force: true }));

describe('normalizeRegistryKey', () => {
  const rows: [string, string][] = [
    ['ghcr.io', 'ghcr.io'],
    ['https://ghcr.io', 'ghcr.io'],
    ['http://ghcr.io/v1/', 'ghcr.io'],
    ['https://localhost:5000/v2/', 'localhost:5000'],
    ['https://index.docker.io/v1/', 'docker.io'],
    ['index.docker.io', 'docker.io'],
    ['registry-1.docker.io', 'docker.io'],
    ['docker.io', 'docker.io'],
  ];
  for (const [key, host] of rows)
    test(`${key} -> ${host}`, () => assert.equal(normalizeRegistryKey(key), host));
});

describe('auths entries', () => {
  const rows: [name: string, auths: Record<string, unknown>, registry: string, want: Credential | null][] = [
    [
      'auth base64',
      { 'r.io': { auth: b64('alice:s3cret') } },
      'r.io',
      { username: 'alice', password: 's3cret' },
    ],
    [
      'auth with colon in password',
      { 'r.io': { auth: b64('a:b:c') } },
      'r.io',
      { username: 'a', password: 'b:c' },
    ],
    [
      'username/password',
      { 'r.io': { username: 'bob', password: 'pw' } },
      'r.io',
      { username: 'bob', password: 'pw' },
    ],
    ['identitytoken', { 'r.io': { identitytoken: 'idt' } }, 'r.io', { identityToken: 'idt' }],
    [
      'auth + identitytoken',
      { 'r.io': { auth: b64('u:p'), identitytoken: 'idt' } },
      'r.io',
      { username: 'u', password: 'p', identityToken: 'idt' },
    ],
    ['registrytoken', { 'r.io': { registrytoken: 'rt' } }, 'r.io', { registryToken: 'rt' }],
    ['key https://host', { 'https://r.io': { auth: b64('x:y') } }, 'r.io', { username: 'x', password: 'y' }],
    [
      'key http://host/v1/',
      { 'http://r.io/v1/': { auth: b64('x:y') } },
      'r.io',
      { username: 'x', password: 'y' },
    ],
    [
      'key with port',
      { 'localhost:5000': { auth: b64('l:p') } },
      'localhost:5000',
      { username: 'l', password: 'p' },
    ],
    [
      'hub legacy key',
      { 'https://index.docker.io/v1/': { auth: b64('hub:pw') } },
      'docker.io',
      { username: 'hub', password: 'pw' },
    ],
    [
      'hub asked as index.docker.io',
      { 'docker.io': { auth: b64('h:p') } },
      'index.docker.io',
      { username: 'h', password: 'p' },
    ],
    [
      'exact key wins over normalised',
      { 'https://r.io/v1/': { auth: b64('old:1') }, 'r.io': { auth: b64('new:2') } },
      'r.io',
      { username: 'new', password: '2' },
    ],
    ['other host only', { 'other.io': { auth: b64('a:b') } }, 'r.io', null],
    ['empty entry', { 'r.io': {} }, 'r.io', null],
    ['no auths', {}, 'r.io', null],
  ];
  for (const [name, auths, registry, want] of rows) {
    test(name, async () => {
      const { s } = store({ auths });
      assert.deepEqual(await s.get(registry), want);
    });
  }
});

describe('lookup order and helpers', () => {
  test('no config file -> null', async () => {
    assert.equal(await store(undefined).s.get('ghcr.io'), null);
  });

  test('explicit credentials win over config', async () => {
    const { s, calls } = store(
      { auths: { 'ghcr.io': { auth: b64('file:pw') } }, credHelpers: { 'ghcr.io': 'good' } },
      {},
      { 'ghcr.io': { username: 'cli', password: 'flag' } },
    );
    assert.deepEqual(await s.get('ghcr.io'), { username: 'cli', password: 'flag' });
    assert.deepEqual(calls(), []);
  });

  test('credHelpers takes precedence over auths and credsStore', async () => {
    const { s, calls } = store({
      auths: { 'ghcr.io': { auth: b64('file:pw') } },
      credHelpers: { 'ghcr.io': 'good' },
      credsStore: 'store',
    });
    assert.deepEqual(await s.get('ghcr.io'), { username: 'octo', password: 'helper-pass' });
    assert.deepEqual(calls(), ['good ghcr.io']);
  });

  test('credHelpers for docker.io gets the legacy server URL on stdin', async () => {
    const { s, calls } = store({ credHelpers: { 'https://index.docker.io/v1/': 'good' } });
    assert.deepEqual(await s.get('docker.io'), { username: 'hubuser', password: 'hubpass' });
    assert.deepEqual(calls(), ['good https://index.docker.io/v1/']);
  });

  test('helper <token> username means identity token', async () => {
    const { s } = store({ credHelpers: { 'tok.example.com': 'good' } });
    assert.deepEqual(await s.get('tok.example.com'), { identityToken: 'refresh-123' });
  });

  test('helper "credentials not found" -> null', async () => {
    const { s, calls } = store({ credHelpers: { 'nothing.io': 'good' } });
    assert.equal(await s.get('nothing.io'), null);
    assert.deepEqual(calls(), ['good nothing.io']);
  });

  test('auths used before credsStore', async () => {
    const { s, calls } = store({ auths: { 'quay.io': { auth: b64('a:b') } }, credsStore: 'store' });
    assert.deepEqual(await s.get('quay.io'), { username: 'a', password: 'b' });
    assert.deepEqual(calls(), []);
  });

  test('credsStore when auths entry is empty (docker login with a store)', async () => {
    const { s, calls } = store({ auths: { 'quay.io': {} }, credsStore: 'store' });
    assert.deepEqual(await s.get('quay.io'), { username: 'q', password: 'store-pass' });
    assert.deepEqual(calls(), ['store quay.io']);
  });

  test('credsStore not found -> null', async () => {
    const { s } = store({ credsStore: 'store' });
    assert.equal(await s.get('unknown.io'), null);
  });

  test('helper found via opts.env.PATH, not process.env.PATH', async () => {
    assert.ok(!(process.env.PATH ?? '').includes(binDir));
    const { s } = store({ credHelpers: { 'ghcr.io': 'good' } }, { PATH: '/nonexistent' });
    await assert.rejects(s.get('ghcr.io'), (e: unknown) => {
      assert.ok(e instanceof KilnError);
      assert.equal(e.code, 'CREDENTIAL_HELPER_MISSING');
      assert.match(e.message, /docker-credential-good/);
      return true;
    });
  });

  test('failing helper -> registry error with its stderr', async () => {
    const { s } = store({ credHelpers: { 'ghcr.io': 'broken' } });
    await assert.rejects(s.get('ghcr.io'), (e: unknown) => {
      assert.ok(e instanceof KilnError);
      assert.equal(e.category, 'registry');
      assert.equal(e.code, 'CREDENTIAL_HELPER_FAILED');
      assert.match(e.message, /keychain locked/);
      assert.match(e.message, /exit 3/);
      return true;
    });
  });

  test('helper printing non-JSON -> error', async () => {
    const { s } = store({ credHelpers: { 'g.io': 'garbage' } });
    await assert.rejects(s.get('g.io'), { code: 'CREDENTIAL_HELPER_FAILED' });
  });

  test('helper timeout is enforced', async () => {
    writeHelper('slow', {}, 'sleep 5');
    const dir = configDir({ credHelpers: { 's.io': 'slow' } });
    const s = new CredentialStore({
      dockerConfigDir: dir,
      env: { PATH: `${binDir}:/usr/bin:/bin` },
      helperTimeoutMs: 300,
    });
    const t0 = Date.now();
    await assert.rejects(s.get('s.io'), /did not answer/);
    assert.ok(Date.now() - t0 < 3000);
  });
});

describe('DOCKER_AUTH_CONFIG', () => {
  test('used when there is no config file', async () => {
    const { s } = store(undefined, {
      DOCKER_AUTH_CONFIG: JSON.stringify({
        auths: { 'registry.gitlab.com': { auth: b64('gitlab-ci-token:jt') } },
      }),
    });
    assert.deepEqual(await s.get('registry.gitlab.com'), { username: 'gitlab-ci-token', password: 'jt' });
  });

  test('checked before the file', async () => {
    const { s } = store(
      { auths: { 'r.io': { auth: b64('file:1') } } },
      { DOCKER_AUTH_CONFIG: JSON.stringify({ auths: { 'https://r.io': { auth: b64('env:2') } } }) },
    );
    assert.deepEqual(await s.get('r.io'), { username: 'env', password: '2' });
  });

  test('file still consulted for hosts DOCKER_AUTH_CONFIG lacks', async () => {
    const { s } = store(
      { auths: { 'other.io': { auth: b64('file:1') } } },
      { DOCKER_AUTH_CONFIG: JSON.stringify({ auths: { 'r.io': { auth: b64('env:2') } } }) },
    );
    assert.deepEqual(await s.get('other.io'), { username: 'file', password: '1' });
  });

  test('invalid JSON -> BAD_DOCKER_CONFIG without content', async () => {
    const { s } = store(undefined, { DOCKER_AUTH_CONFIG: '{"auths": {"r.io": {"auth": "topsecret"' });
    await assert.rejects(s.get('r.io'), (e: unknown) => {
      assert.ok(e instanceof KilnError);
      assert.equal(e.code, 'BAD_DOCKER_CONFIG');
      assert.match(e.message, /DOCKER_AUTH_CONFIG/);
      assert.ok(!e.message.includes('topsecret'));
      return true;
    });
  });
});

describe('DOCKER_CONFIG location', () => {
  test('env DOCKER_CONFIG used when dockerConfigDir not given', async () => {
    const dir = configDir({ auths: { 'r.io': { auth: b64('dc:1') } } });
    const s = new CredentialStore({ env: { DOCKER_CONFIG: dir, HOME: '/nonexistent' } });
    assert.deepEqual(await s.get('r.io'), { username: 'dc', password: '1' });
  });

  test('defaults to $HOME/.docker', async () => {
    const home = join(root, 'home');
    mkdirSync(join(home, '.docker'), { recursive: true });
    writeFileSync(
      join(home, '.docker', 'config.json'),
      JSON.stringify({ auths: { 'r.io': { auth: b64('h:2') } } }),
    );
    const s = new CredentialStore({ env: { HOME: home } });
    assert.deepEqual(await s.get('r.io'), { username: 'h', password: '2' });
  });
});

describe('malformed config', () => {
  const secret = 'Sup3rS3cretPassw0rd';
  const rows: [name: string, auth: string][] = [
    ['not base64', `!!${secret}!!`],
    ['base64 without colon', b64(secret)],
    ['empty username', b64(`:${secret}`)],
  ];
  for (const [name, auth] of rows) {
    test(`auth ${name} -> BAD_DOCKER_CONFIG naming file and host, not the value`, async () => {
      const dir = configDir({ auths: { 'r.io': { auth } } });
      const s = new CredentialStore({ dockerConfigDir: dir, env: { PATH: '/usr/bin:/bin' } });
      await assert.rejects(s.get('r.io'), (e: unknown) => {
        assert.ok(e instanceof KilnError);
        assert.equal(e.category, 'registry');
        assert.equal(e.code, 'BAD_DOCKER_CONFIG');
        assert.ok(e.message.includes(join(dir, 'config.json')), e.message);
        assert.ok(e.message.includes('r.io'), e.message);
        for (const text of [e.message, e.hint ?? '', e.format()]) {
          assert.ok(!text.includes(secret), 'no password in the error');
          assert.ok(!text.includes(auth), 'no raw auth value in the error');
        }
        return true;
      });
    });
  }

  test('config.json that is not JSON -> BAD_DOCKER_CONFIG without content', async () => {
    const dir = configDir(`{"auths": {"r.io": {"auth": "${secret}"}`);
    const s = new CredentialStore({ dockerConfigDir: dir, env: {} });
    await assert.rejects(s.get('r.io'), (e: unknown) => {
      assert.ok(e instanceof KilnError);
      assert.equal(e.code, 'BAD_DOCKER_CONFIG');
      assert.ok(!e.message.includes(secret));
      return true;
    });
  });
});
