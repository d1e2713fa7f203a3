// Bundle entry of the action's main step (dist/action/main.js).
import { run } from './main.ts';

await run();
