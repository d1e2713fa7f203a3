import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  metadataKind,
  parseApkInstalled,
  parseDpkgStatus,
  parseNpmLock,
  parseNpmPackageJson,
  parseOsRelease,
  parsePythonMetadata,
  purl,
} from '../../../src/attest/packages.ts';

const DPKG = `Package: bash
Status: install ok installed
Priority: required
Architecture: amd64
Version: 5.2.15-2+b2
Description: GNU Bourne Again SHell
 Bash is an sh-compatible command language interpreter.
 .
 More text.

Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4

Package: purged
Status: purge ok not-installed
Architecture: amd64

Package: oldconf
Status: deinstall ok config-files
Architecture: all
Version: 1.0
`;

describe('dpkg status', () => {
  test('lists what dpkg-query -W lists: all but not-installed, with versions and source', () => {
    const p = parseDpkgStatus(DPKG, '/var/lib/dpkg/status');
    assert.deepEqual(
      p.map((x) => [x.name, x.version, x.arch, x.source]),
      [
        ['bash', '5.2.15-2+b2', 'amd64', undefined],
        ['libc6', '2.36-9+deb12u4', 'amd64', 'glibc'],
        ['oldconf', '1.0', 'all', undefined],
      ],
    );
  });
  test('purl of a deb carries distro, arch and upstream', () => {
    const [, libc] = parseDpkgStatus(DPKG, '/var/lib/dpkg/status');
    assert.equal(
      purl(libc!, { id: 'debian', versionId: '12' }),
      'pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12&upstream=glibc',
    );
  });
});

test('apk installed db', () => {
  const text = `C:Q1abc=
P:musl
V:1.2.4-r2
A:x86_64
L:MIT
o:musl

C:Q1def=
P:busybox-binsh
V:1.36.1-r15
A:x86_64
L:GPL-2.0-only
o:busybox
`;
  const p = parseApkInstalled(text, '/lib/apk/db/installed');
  assert.deepEqual(
    p.map((x) => [x.name, x.version, x.license, x.source]),
    [
      ['musl', '1.2.4-r2', 'MIT', undefined],
      ['busybox-binsh', '1.36.1-r15', 'GPL-2.0-only', 'busybox'],
    ],
  );
  assert.equal(
    purl(p[1]!, { id: 'alpine', versionId: '3.19.1' }).startsWith(
      'pkg:apk/alpine/busybox-binsh@1.36.1-r15?arch=x86_64',
    ),
    true,
  );
});

describe('npm', () => {
  test('lockfile v3: packages by install path, nested and scoped, root and links left out', () => {
    const lock = JSON.stringify({
      name: 'app',
      lockfileVersion: 3,
      packages: {
        '': { name: 'app', version: '1.0.0' },
        'node_modules/left-pad': { version: '1.3.0', license: 'WTFPL' },
        'node_modules/@scope/util': { version: '2.0.1' },
        'node_modules/a/node_modules/left-pad': { version: '1.1.0' },
        'node_modules/ws-link': { resolved: 'packages/x', link: true },
      },
    });
    const p = parseNpmLock(lock, '/app/package-lock.json');
    assert.deepEqual(
      p.map((x) => `${x.name}@${x.version}`),
      ['left-pad@1.3.0', '@scope/util@2.0.1', 'left-pad@1.1.0'],
    );
    assert.equal(purl(p[1]!), 'pkg:npm/%40scope/util@2.0.1');
  });
  test('lockfile v1: nested dependencies', () => {
    const lock = JSON.stringify({
      lockfileVersion: 1,
      dependencies: {
        a: { version: '1.0.0', dependencies: { b: { version: '2.0.0' } } },
        l: { version: 'file:../l' },
      },
    });
    assert.deepEqual(
      parseNpmLock(lock, '/x/package-lock.json').map((x) => `${x.name}@${x.version}`),
      ['a@1.0.0', 'b@2.0.0'],
    );
  });
  test('package.json of an installed package; broken JSON gives nothing', () => {
    assert.equal(
      parseNpmPackageJson('{"name":"x","version":"1.2.3","license":"MIT"}', '/n')[0]!.license,
      'MIT',
    );
    assert.deepEqual(parseNpmPackageJson('{', '/n'), []);
    assert.deepEqual(parseNpmLock('not json', '/n'), []);
  });
});

test('python METADATA header', () => {
  const meta =
    'Metadata-Version: 2.1\nName: Requests_OAuth\nVersion: 2.31.0\nLicense: Apache 2.0\n\nName: not-this\n';
  const [p] = parsePythonMetadata(meta, '/usr/lib/python3/dist-packages/requests-2.31.0.dist-info/METADATA');
  assert.equal(p!.name, 'Requests_OAuth');
  assert.equal(p!.version, '2.31.0');
  assert.equal(purl(p!), 'pkg:pypi/requests-oauth@2.31.0');
});

test('os-release', () => {
  assert.deepEqual(parseOsRelease('PRETTY_NAME="Debian GNU/Linux 12"\nID=debian\nVERSION_ID="12"\n'), {
    id: 'debian',
    versionId: '12',
  });
  assert.equal(parseOsRelease('NAME=x\n'), undefined);
});

test('metadataKind picks only metadata files', () => {
  const cases: Array<[string, string | undefined]> = [
    ['/var/lib/dpkg/status', 'dpkg'],
    ['/var/lib/dpkg/status.d/base', 'dpkg'],
    ['/var/lib/dpkg/status-old', undefined],
    ['/lib/apk/db/installed', 'apk'],
    ['/app/package-lock.json', 'npm-lock'],
    ['/app/node_modules/.package-lock.json', undefined],
    ['/app/node_modules/x/package-lock.json', undefined],
    ['/app/node_modules/left-pad/package.json', 'npm-package'],
    ['/app/node_modules/@s/u/package.json', 'npm-package'],
    ['/app/node_modules/left-pad/lib/package.json', undefined],
    ['/app/package.json', undefined],
    ['/usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA', 'python'],
    ['/etc/os-release', 'os-release'],
  ];
  for (const [p, k] of cases) assert.equal(metadataKind(p), k, p);
});
