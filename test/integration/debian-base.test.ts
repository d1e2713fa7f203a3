import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promisify } from 'node:util';
import { DEBIAN_ROOTFS_TARBALL, debianMirror, pushDebianImage } from '../helpers/debian.ts';
import { ociArch } from '../helpers/images.ts';
import { startRegistry } from '../helpers/registry.ts';
import type { TestRegistry } from '../helpers/registry.ts';

const execFileP = promisify(execFile);

describe('debian bookworm base image helper', { timeout: 20 * 60_000 }, () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startRegistry();
  });
  after(async () => {
    await reg?.stop();
  });

  test('pushes a one-layer image that skopeo inspect reads, with the host arch and bash', async () => {
    const digest = await pushDebianImage(reg, 'base/debian', 'bookworm');
    assert.match(digest, /^sha256:[a-f0-9]{64}$/);
    assert.ok(existsSync(DEBIAN_ROOTFS_TARBALL), 'rootfs tarball cached');

    const { stdout } = await execFileP('skopeo', [
      'inspect',
      '--tls-verify=false',
      `docker://${reg.host}/base/debian:bookworm`,
    ]);
    const info = JSON.parse(stdout) as { Digest: string; Architecture: string; Os: string; Layers: string[] };
    assert.equal(info.Digest, digest);
    assert.equal(info.Architecture, ociArch());
    assert.equal(info.Os, 'linux');
    assert.equal(info.Layers.length, 1);

    const cfg = await execFileP('skopeo', [
      'inspect',
      '--config',
      '--tls-verify=false',
      `docker://${reg.host}/base/debian:bookworm`,
    ]);
    const config = JSON.parse(cfg.stdout) as { config: { Cmd: string[]; Env: string[] } };
    assert.deepEqual(config.config.Cmd, ['bash']);
    assert.ok(config.config.Env.some((e) => e.startsWith('PATH=')));
  });

  test('a second push reuses the cache and yields the same digest', async () => {
    const a = await pushDebianImage(reg, 'base/debian', 'again');
    const b = await pushDebianImage(reg, 'other/debian', 'bookworm');
    assert.equal(a, b);
  });

  test('the rootfs has bash, apt and sources.list pointing at the machine mirror', async () => {
    const { stdout } = await execFileP('tar', ['-tzf', DEBIAN_ROOTFS_TARBALL], { maxBuffer: 256 << 20 });
    const names = new Set(stdout.split('\n').map((n) => n.replace(/^\.\//, '')));
    for (const must of ['usr/bin/bash', 'usr/bin/apt-get', 'etc/apt/sources.list', 'etc/os-release']) {
      assert.ok(names.has(must), `${must} in rootfs`);
    }
    const sources = await execFileP('tar', ['-xzOf', DEBIAN_ROOTFS_TARBALL, './etc/apt/sources.list']);
    assert.match(
      sources.stdout,
      new RegExp(`^deb ${debianMirror().replace(/[.]/g, '\\.')} bookworm main$`, 'm'),
    );
  });
});
