/**
 * The build entry point every adapter calls. Filled in by the executor work: frontend → plan →
 * execute → assemble → publish.
 */
import type { BuildOptions } from './options.ts';
import type { BuildResult } from './result.ts';
import type { Logger } from '../log/logger.ts';
import { KilnError } from '../util/errors.ts';

export async function runBuild(_opts: BuildOptions, _logger: Logger): Promise<BuildResult> {
  throw new KilnError('internal', 'NOT_IMPLEMENTED', 'kiln build is not implemented yet');
}
