/**
 * The commander program. Subcommands translate argv into typed options once and hand over to the
 * core; nothing in the core reads argv.
 */
import { Command, CommanderError } from 'commander';
import { EXIT_CODES, isKilnError } from '../util/errors.ts';
import { VERSION } from '../version.ts';
import { addBuildFlags, toBuildOptions } from './build-flags.ts';
import { printPlan } from './plan-command.ts';
import { runBuild } from '../build/run.ts';
import { Logger } from '../log/logger.ts';

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
  build.action(async (o: Record<string, unknown>) => {
    const opts = toBuildOptions(o);
    if (opts.dryRun) {
      await printPlan(opts, out);
      return;
    }
    const logger = new Logger({ level: opts.logLevel, timestamps: opts.logTimestamp });
    const result = await runBuild(opts, logger);
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
  return program;
}

export async function runCli(argv: string[], out?: (s: string) => void): Promise<number> {
  const program = buildProgram(out);
  try {
    await program.parseAsync(argv);
    return 0;
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
