/**
 * The commander program. Subcommands translate argv into typed options once and hand over to the
 * core; nothing in the core reads argv.
 */
import { writeFile } from 'node:fs/promises';
import { Command, CommanderError, Option } from 'commander';
import { EXIT_CODES, KilnError, isKilnError } from '../util/errors.ts';
import { VERSION } from '../version.ts';
import { addBuildFlags, toBuildOptions } from './build-flags.ts';
import { printPlan } from './plan-command.ts';
import { formatSummary } from './summary.ts';
import { runBuild } from '../builder.ts';
import { Logger } from '../log/logger.ts';
import { formatProbe, probeIsolation } from '../isolation/probe.ts';
import { defaultWorkDir } from '../fs/work-dir.ts';
import type { IsolationWant } from '../isolation/probe.ts';
import { isReexecuted, reexecInUserNamespace, selfArgv } from '../isolation/userns.ts';
import { warmImages } from '../cache/base-cache.ts';
import { RegistryClient } from '../registry/client.ts';
import { CredentialStore } from '../registry/credentials.ts';
import { defaultRegistryOptions } from '../registry/options.ts';
import { hostPlatform, parsePlatform } from '../image/platform.ts';

/** The build summary is an info-level text block: not with -v error and quieter, nor in JSON logs. */
function showSummary(level: string, format: string): boolean {
  return format !== 'json' && !['error', 'panic', 'fatal'].includes(level);
}

/** Exit codes set by actions that finished without an error of their own (a re-executed child's). */
const exitCodes = new WeakMap<Command, number>();

export function buildProgram(out: (s: string) => void = (s) => process.stdout.write(s)): Command {
  const program = new Command();
  program
    .name('kiln')
    .description('Daemonless, rootless OCI image builder (Kaniko-compatible flags)')
    .version(VERSION, '--version', 'print the kiln version')
    .showSuggestionAfterError(true)
    .exitOverride();

  const build = addBuildFlags(
    program
      .command('build')
      .description('build an image from a Dockerfile (Kaniko executor flags)')
      .exitOverride(),
  );
  build.option('--result-file <file>', 'write the build result (digest, size, layers, steps) as JSON');
  build.action(async (o: Record<string, unknown>) => {
    const opts = toBuildOptions(o);
    if (opts.dryRun) {
      await printPlan(opts, out);
      return;
    }
    const logger = new Logger({ level: opts.logLevel, timestamps: opts.logTimestamp });
    const euid = process.geteuid?.() ?? 0;
    if (euid !== 0 && !isReexecuted() && (opts.isolation === 'auto' || opts.isolation === 'rootless')) {
      // Like `buildah unshare`: the whole build runs as root of a user namespace.
      logger.debug(`not root (uid ${euid}): re-executing kiln in a user namespace`);
      // Without a subuid range only the user's own id is mapped; runBuild warns about it.
      const code = await reexecInUserNamespace(selfArgv(), process.env, { allowSingleIdMap: true });
      exitCodes.set(program, code);
      return;
    }
    const result = await runBuild(opts, logger);
    if (typeof o.resultFile === 'string')
      await writeFile(o.resultFile, `${JSON.stringify(result, null, 2)}\n`);
    // The summary goes to stderr so that stdout stays the digest alone, for scripts.
    if (showSummary(opts.logLevel, opts.logFormat)) process.stderr.write(formatSummary(result));
    out(`${result.digest}\n`);
  });

  const plan = addBuildFlags(
    program
      .command('plan')
      .description(
        'print the resolved build plan (stages, skipped stages, expanded instructions, unused build args)',
      )
      .exitOverride(),
  );
  plan.action(async (o: Record<string, unknown>) => {
    await printPlan(toBuildOptions(o), out);
  });

  program
    .command('probe')
    .description('try each isolation rung and show which works, which one auto takes and the snapshot engine')
    .addOption(
      new Option('--isolation <mode>', 'the rung you want (exit 6 when it is unavailable)')
        .choices(['auto', 'rootless', 'chroot', 'plain'])
        .default('auto'),
    )
    .option('--work-dir <dir>', 'scratch directory', defaultWorkDir())
    .exitOverride()
    .action(async (o: { isolation: IsolationWant; workDir: string }) => {
      const probe = await probeIsolation({ want: o.isolation, workDir: o.workDir });
      out(`${formatProbe(probe)}\n`);
      const auto = probe.reports.find((r) => r.ok)?.rung;
      out(`auto: ${auto ?? 'none'}\n`);
      if (!probe.chosen) {
        throw new KilnError('isolation', 'NO_ISOLATION', 'no isolation rung works here', {
          hint: 'run kiln as root, or allow user namespaces',
        });
      }
      out(`isolation: ${probe.chosen}\n`);
      out(`snapshots: ${probe.overlay ? 'overlay' : 'walk'}\n`);
    });
  const collect = (v: string, prev: string[] = []): string[] => [...prev, v];
  program
    .command('warm')
    .description("pull base images into <cache-dir>/base for later builds (Kaniko's warmer)")
    .requiredOption('--image <ref>', 'image to pull (repeatable)', collect, [])
    .requiredOption('--cache-dir <dir>', 'the layer cache directory builds use with --cache-dir')
    .option('--platform <os/arch[/variant]>', 'platform to pull (default: this host)')
    .option('--insecure-registry <host>', 'registry reached over plain HTTP (repeatable)', collect, [])
    .option('--insecure-pull', 'pull over plain HTTP')
    .option('--skip-tls-verify-pull', 'do not verify TLS when pulling')
    .option('--force', 'download again even when cached')
    .exitOverride()
    .action(
      async (o: {
        image: string[];
        cacheDir: string;
        platform?: string;
        insecureRegistry: string[];
        insecurePull?: boolean;
        skipTlsVerifyPull?: boolean;
        force?: boolean;
      }) => {
        const logger = new Logger({});
        const client = new RegistryClient({
          registry: {
            ...defaultRegistryOptions(),
            insecureRegistries: o.insecureRegistry,
            insecurePull: o.insecurePull === true,
            skipTlsVerifyPull: o.skipTlsVerifyPull === true,
          },
          credentials: new CredentialStore({ explicit: {} }),
          logger,
        });
        try {
          const platform = o.platform ? parsePlatform(o.platform) : hostPlatform();
          const digests = await warmImages(client, o.image, o.cacheDir, platform, {
            force: o.force === true,
            logger,
          });
          o.image.forEach((img, i) => out(`${img} ${digests[i]}\n`));
        } finally {
          await client.close();
        }
      },
    );
  return program;
}

export async function runCli(argv: string[], out?: (s: string) => void): Promise<number> {
  const program = buildProgram(out);
  try {
    await program.parseAsync(argv);
    return exitCodes.get(program) ?? 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander has already printed help, version or the usage error.
      return e.exitCode === 0 ? 0 : EXIT_CODES.usage;
    }
    if (isKilnError(e)) {
      process.stderr.write(`error: ${e.format()}\n`);
      return EXIT_CODES[e.category];
    }
    process.stderr.write(`internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return EXIT_CODES.internal;
  }
}
