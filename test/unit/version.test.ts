import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { VERSION } from '../../src/version.ts';

test('VERSION matches package.json and the bundled CLI prints it', () => {
  const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
  assert.equal(VERSION, pkg.version);
  assert.equal(
    execFileSync(process.execPath, ['dist/cli.js', '--version'], { encoding: 'utf8' }).trim(),
    VERSION,
  );
});

test('kiln --help lists the program name', () => {
  const help = execFileSync(process.execPath, ['dist/cli.js', '--help'], { encoding: 'utf8' });
  assert.match(help, /Usage: kiln/);
});
