/**
 * The commander program. Subcommands translate argv into typed options once and hand over to the
 * core; nothing in the core reads argv.
 */
import { Command, CommanderError } from 'commander';
import { EXIT_CODES, isKilnError } from '../util/errors.ts';
import { VERSION } from '../version.ts';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('kiln')
    .description('Daemonless, rootless OCI image builder (Kaniko-compatible flags)')
    .version(VERSION, '--version', 'print the kiln version')
    .showSuggestionAfterError(true)
    .exitOverride();
  return program;
}

export async function runCli(argv: string[]): Promise<number> {
  const program = buildProgram();
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
