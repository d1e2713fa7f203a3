// Bundle entry of the GitLab component's job script (dist/gitlab.js).
import { main } from './main.ts';

process.exitCode = await main();
