// Bundle entry of the action's post step (dist/action/post.js).
import { run } from './post.ts';

await run();
