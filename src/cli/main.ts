#!/usr/bin/env node
import { runCli } from './program.ts';
import { keepYoungGenerationSmall } from '../util/young-generation.ts';

keepYoungGenerationSmall();
process.exitCode = await runCli(process.argv);
