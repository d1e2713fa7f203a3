/**
 * The flag table is the one declaration of every flag: these tests hold it to what it claims (keys
 * are commander's attribute names, each `to` field really receives the flag's value, the argv writer
 * the CI adapters use round-trips through the real parser) and check that the adapters' bundles
 * stay free of commander.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { build } from 'esbuild';
import { addBuildFlags, addBuildOnlyFlags, optionOf } from '../../../src/cli/build-flags.ts';
import { BUILD_FLAGS, allFlags, type FlagSpec, type OptionPath } from '../../../src/cli/flag-table.ts';
import { flagArgv, type FlagArgs } from '../../../src/cli/argv.ts';
import { optionsFromFlags, readBuildOnlyFlags, readFlags } from '../../../src/cli/to-options.ts';
import { defaultBuildOptions, type BuildOptions } from '../../../src/options.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

function parsed(args: string[]): Command {
  const c = addBuildOnlyFlags(addBuildFlags(new Command(), {})).exitOverride();
  c.configureOutput({ writeErr: () => undefined });
  c.parse(args, { from: 'user' });
  return c;
}

function at(o: BuildOptions, path: OptionPath): unknown {
  return path.split('.').reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], o);
}

const sampleArgs = (f: FlagSpec): string[] =>
  f.type === 'bool' ? [`${f.long}=${f.sample}`] : [f.long, f.sample];

describe('flag table', () => {
  test('keys are commander attribute names; names and short forms are unique', () => {
    const longs = new Set<string>();
    const shorts = new Set<string>();
    for (const [key, f] of allFlags()) {
      assert.equal(optionOf(f).attributeName(), key, f.long);
      for (const alias of f.aliases ?? []) assert.equal(optionOf(f, alias).attributeName(), key, alias);
      assert.ok(!longs.has(f.long), `${f.long} twice`);
      longs.add(f.long);
      if (f.short) {
        assert.ok(!shorts.has(f.short), `${f.short} twice`);
        shorts.add(f.short);
      }
      assert.equal(
        f.env === null,
        f.hidden === true,
        `${f.long}: hidden flags and only they have no KILN_ name`,
      );
    }
  });

  for (const [key, f] of Object.entries(BUILD_FLAGS) as Array<[string, FlagSpec]>) {
    const lands = f.lands;
    if (!('to' in lands)) continue;
    test(`${f.long} lands in BuildOptions.${lands.to}`, () => {
      const opts = optionsFromFlags(readFlags(parsed(sampleArgs(f)).opts()), {});
      assert.notDeepEqual(at(opts, lands.to), at(defaultBuildOptions(), lands.to), `${key}: ${f.sample}`);
    });
  }

  test('every flag lands somewhere: a field, a setting, or a reason', () => {
    for (const [, f] of allFlags()) assert.ok(Object.keys(f.lands).length > 0, f.long);
  });
});

describe('argv writer (what the CI adapters use)', () => {
  test('every flag round-trips through the real parser', () => {
    const values: Record<string, unknown> = {};
    for (const [key, f] of allFlags()) {
      if ('refused' in f.lands) continue;
      values[key] =
        f.type === 'bool'
          ? f.sample === 'true'
          : f.type === 'list'
            ? [f.sample, f.sample]
            : f.type === 'int'
              ? Number(f.sample)
              : f.sample;
    }
    const argv = flagArgv(values as FlagArgs);
    const c = parsed(argv);
    const back = { ...readFlags(c.opts()), ...readBuildOnlyFlags(c.opts()) } as Record<string, unknown>;
    for (const [key, v] of Object.entries(values)) assert.deepEqual(back[key], v, key);
  });

  test('a boolean is written with its value, so that nothing after it is read as one', () => {
    assert.deepEqual(flagArgv({ noPush: true, cache: false, context: '-weird' }), [
      '--no-push=true',
      '--cache=false',
      '--context',
      '-weird',
    ]);
    assert.equal(readFlags(parsed(flagArgv({ context: '-weird' })).opts()).context, '-weird');
  });

  test('undefined values are left out; unknown keys are a bug', () => {
    assert.deepEqual(flagArgv({ target: undefined }), []);
    assert.throws(() => flagArgv({ nope: 'x' } as unknown as FlagArgs), /not in the flag table/);
  });
});

describe('CI adapter bundles', () => {
  for (const entry of [
    'src/ci/gitlab/entry.ts',
    'src/ci/github/entry-main.ts',
    'src/ci/github/entry-post.ts',
  ]) {
    test(`${entry} bundles without commander`, async () => {
      const r = await build({
        absWorkingDir: ROOT,
        entryPoints: [entry],
        bundle: true,
        platform: 'node',
        format: 'esm',
        write: false,
        metafile: true,
        logLevel: 'silent',
        outfile: 'out.js',
      });
      const inputs = Object.keys(r.metafile.inputs);
      assert.ok(
        inputs.some((i) => i.startsWith('src/cli/')),
        'the adapter uses the flag table',
      );
      assert.deepEqual(
        inputs.filter((i) => i.includes('node_modules/commander/')),
        [],
      );
    });
  }
});
