/**
 * The commander program. Subcommands translate argv into typed options once (through the flag table)
 * and hand over to the core; nothing in the core reads argv.
 */
import { writeFile } from 'node:fs/promises';
import { Command, CommanderError, Option } from 'commander';
import { EXIT_CODES, KilnError, isKilnError } from '../util/errors.ts';
import { VERSION } from '../version.ts';
import { addBuildFlags, addBuildOnlyFlags } from './build-flags.ts';
import {
  annotationNotes,
  cliSettings,
  compatNotes,
  optionsFromFlags,
  readBuildOnlyFlags,
  readFlags,
} from './to-options.ts';
import type { CliSettings } from './to-options.ts';
import { printPlan } from './plan-command.ts';
import { addWarmCommand } from './warm-command.ts';
import { addInspectCommand } from './inspect-command.ts';
import { buildOutput, stepProgress, transferBoard } from './progress.ts';
import { formatSummary } from './summary.ts';
import { runBuild } from '../builder.ts';
import { Logger, colorFor } from '../log/logger.ts';
import { formatProbe, probeIsolation } from '../isolation/probe.ts';
import { emulationFor, formatEmulation, PROBED_PLATFORMS } from '../isolation/emulation.ts';
import { hostPlatform, parsePlatformList } from '../image/platform.ts';
import { defaultWorkDir } from '../fs/work-dir.ts';
import type { IsolationWant } from '../isolation/probe.ts';
import { isReexecuted, reexecInUserNamespace, selfArgv } from '../isolation/userns.ts';
import { passwordFileForChild } from './credential-file.ts';

type Out = (s: string) => void;

/** The build summary is an info-level text block: not with -v error and quieter, nor in JSON logs. */
function showSummary(log: CliSettings['log']): boolean {
  return log.format !== 'json' && !['error', 'panic', 'fatal'].includes(log.level);
}

/** Exit codes set by actions that finished without an error of their own (a re-executed child's). */
const exitCodes = new WeakMap<Command, number>();
/** The logger of the command that ran, so that its error is printed in its format. */
const loggers = new WeakMap<Command, Logger>();

function loggerFor(program: Command, log: CliSettings['log'], sink?: (line: string) => void): Logger {
  const logger = new Logger({
    ...log,
    timestamps: log.timestamps,
    color: colorFor(process.stderr),
    ...(sink ? { sink } : {}),
  });
  loggers.set(program, logger);
  return logger;
}

function addBuildCommand(program: Command, out: Out): void {
  const build = addBuildOnlyFlags(
    addBuildFlags(
      program
        .command('build')
        .description('build an image from a Dockerfile (Kaniko executor flags)')
        .exitOverride(),
    ),
  );
  build.action(async (o: Record<string, unknown>) => {
    const flags = readFlags(o);
    const settings = cliSettings(flags);
    const view = buildOutput(settings);
    const logger = loggerFor(program, settings.log, (line) => view.write(`${line}\n`));
    const opts = optionsFromFlags(flags);
    for (const note of [...compatNotes(flags), ...annotationNotes(opts)]) logger.warn(note);
    if (view.note) logger.warn(view.note);
    if (settings.dryRun) {
      await printPlan(opts, out);
      return;
    }
    const euid = process.geteuid?.() ?? 0;
    if (euid !== 0 && !isReexecuted() && (opts.isolation === 'auto' || opts.isolation === 'rootless')) {
      // Like `buildah unshare`: the whole build runs as root of a user namespace.
      logger.debug(`not root (uid ${euid}): re-executing kiln in a user namespace`);
      // Without a subuid range only the user's own id is mapped; runBuild warns about it.
      // The password was taken out of process.env when read (envCredentials): hand it to the child
      // in a file of its own, never in its environment (readable in /proc/<pid>/environ).
      const password = opts.registry.credentials[0]?.password;
      const cred = password ? passwordFileForChild(password) : undefined;
      const env = cred ? { ...process.env, ...cred.env } : process.env;
      const code = await reexecInUserNamespace(selfArgv(), env, { allowSingleIdMap: true }).finally(() =>
        cred?.remove(),
      );
      exitCodes.set(program, code);
      return;
    }
    const output = logger.outputWriter('run', (c) => view.write(c));
    const transfers = transferBoard(view, logger, settings.progress.intervalMs);
    const hooks = { onOutput: (c: Buffer) => output.write(c), progress: stepProgress(logger), transfers };
    const result = await runBuild(opts, logger, hooks).finally(() => {
      output.end();
      transfers.close();
    });
    const { resultFile } = readBuildOnlyFlags(o);
    if (resultFile) await writeFile(resultFile, `${JSON.stringify(result, null, 2)}\n`);
    // The summary goes to stderr so that stdout stays the digest alone, for scripts.
    if (showSummary(settings.log)) process.stderr.write(formatSummary(result));
    out(`${result.digest}\n`);
  });
}

function addPlanCommand(program: Command, out: Out): void {
  const plan = addBuildFlags(
    program
      .command('plan')
      .description(
        'print the resolved build plan (stages, skipped stages, expanded instructions, unused build args)',
      )
      .exitOverride(),
  );
  plan.action(async (o: Record<string, unknown>) => {
    const flags = readFlags(o);
    const logger = loggerFor(program, cliSettings(flags).log);
    const opts = optionsFromFlags(flags);
    for (const note of compatNotes(flags)) logger.warn(note);
    await printPlan(opts, out);
  });
}

function addProbeCommand(program: Command, out: Out): void {
  program
    .command('probe')
    // Kimia's name for the same check.
    .alias('check-environment')
    .description('try each isolation rung and show which works, which one auto takes and the snapshot engine')
    .addOption(
      new Option('--isolation <mode>', 'the rung you want (exit 6 when it is unavailable)')
        .choices(['auto', 'rootless', 'chroot', 'plain'])
        .default('auto'),
    )
    .option('--work-dir <dir>', 'scratch directory', defaultWorkDir())
    .option(
      '--platform <list>',
      'platforms whose RUN steps must execute here, a,b or repeated (exit 6 when one cannot)',
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .exitOverride()
    .action(async (o: { isolation: IsolationWant; workDir: string; platform?: string[] }) => {
      const euid = process.geteuid?.() ?? 0;
      if (euid !== 0 && !isReexecuted() && (o.isolation === 'auto' || o.isolation === 'rootless')) {
        // As `kiln build` does: the rootless rung's trial RUN happens inside the user namespace.
        const outer = await probeIsolation({ want: 'auto', workDir: o.workDir });
        if (outer.chosen === 'rootless') {
          exitCodes.set(
            program,
            await reexecInUserNamespace(selfArgv(), process.env, { allowSingleIdMap: true }),
          );
          return;
        }
      }
      const probe = await probeIsolation({ want: o.isolation, workDir: o.workDir, tryAll: true });
      out(`${formatProbe(probe)}\n`);
      const auto = probe.reports.find((r) => r.ok)?.rung;
      out(`auto: ${auto ?? 'none'}\n`);
      if (!probe.chosen) {
        throw new KilnError('isolation', 'NO_ISOLATION', 'no isolation rung works here', {
          hint: 'run kiln as root, or allow user namespaces',
        });
      }
      out(`isolation: ${probe.chosen}\n`);
      out(`snapshots: ${probe.snapshot}\n`);
      if (probe.snapshotNote) out(`snapshots note: ${probe.snapshotNote}\n`);
      probePlatforms(o.platform, out);
    });
}

/**
 * Which platforms' RUN steps execute here (natively or through binfmt_misc), as the build checks
 * them before it starts; the platforms named with --platform must all be able to.
 */
function probePlatforms(asked: string[] | undefined, out: Out): void {
  const host = hostPlatform();
  const wanted = asked?.length ? parsePlatformList(asked) : PROBED_PLATFORMS;
  const reports = wanted.map((p) => emulationFor(p, host));
  out(`platforms (RUN steps; COPY-only stages need none):\n${formatEmulation(reports)}\n`);
  const bad = asked?.length ? reports.filter((r) => !r.ok) : [];
  if (bad.length)
    throw new KilnError(
      'isolation',
      'PLATFORM_CANNOT_RUN',
      `RUN steps for ${bad.map((r) => r.platform).join(', ')} cannot execute here`,
      {
        hint: 'register QEMU with the F flag (docker/setup-qemu-action, tonistiigi/binfmt, or Debian qemu-user-static)',
      },
    );
}

export function buildProgram(out: Out = (s) => process.stdout.write(s)): Command {
  const program = new Command();
  program
    .name('kiln')
    .description(
      "Daemonless, rootless OCI image builder (Kaniko-compatible flags). Flags without a command mean build, as with Kaniko's executor and Kimia.",
    )
    .version(VERSION, '--version', 'print the kiln version')
    .showSuggestionAfterError(true)
    .exitOverride();
  addBuildCommand(program, out);
  addPlanCommand(program, out);
  addProbeCommand(program, out);
  addWarmCommand(program, out);
  addInspectCommand(program, out);
  return program;
}

function reportError(e: unknown, logger: Logger | undefined): number {
  if (isKilnError(e)) {
    if (logger?.format === 'json')
      logger.log('error', e.message, { code: e.code, ...(e.hint ? { hint: e.hint } : {}) });
    else process.stderr.write(`error: ${logger ? logger.redact(e.format()) : e.format()}\n`);
    return EXIT_CODES[e.category];
  }
  const text = e instanceof Error ? (e.stack ?? e.message) : String(e);
  if (logger?.format === 'json') logger.log('error', `internal error: ${text}`);
  else process.stderr.write(`internal error: ${logger ? logger.redact(text) : text}\n`);
  return EXIT_CODES.internal;
}

const PROGRAM_FLAGS = new Set(['-h', '--help', '--version']);

/**
 * `kiln --context=. -d r/x` is `kiln build --context=. -d r/x`: Kaniko's executor and Kimia take
 * their flags without a command. Program-level flags (help, version) stay the program's.
 */
export function withDefaultCommand(argv: string[]): string[] {
  const first = argv[2];
  if (first === undefined || !first.startsWith('-') || PROGRAM_FLAGS.has(first)) return argv;
  return [...argv.slice(0, 2), 'build', ...argv.slice(2)];
}

export async function runCli(argv: string[], out?: Out): Promise<number> {
  const program = buildProgram(out);
  try {
    await program.parseAsync(withDefaultCommand(argv));
    return exitCodes.get(program) ?? 0;
  } catch (e) {
    // commander has already printed help, version or the usage error.
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : EXIT_CODES.usage;
    return reportError(e, loggers.get(program));
  }
}
