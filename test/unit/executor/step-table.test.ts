/** The step table: one module per Dockerfile instruction, and each module's cache rules hold together. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { INSTRUCTION_NAMES } from '../../../src/dockerfile/instructions.ts';
import { STEPS } from '../../../src/executor/steps/table.ts';

test('every Dockerfile instruction has a step module, and nothing else does', () => {
  assert.deepEqual(Object.keys(STEPS).sort(), INSTRUCTION_NAMES.map((n) => n.toLowerCase()).sort());
});

test('layer-cached steps are exactly the filesystem steps, and each can say what it observes', () => {
  for (const [kind, mod] of Object.entries(STEPS)) {
    if (kind === 'from') continue; // FROM starts a stage; it is never a step inside one
    assert.equal(mod.cache === 'layer', mod.touchesFilesystem, kind);
    assert.equal(mod.cache === 'layer', mod.keyInputs !== undefined, kind);
  }
  assert.deepEqual(
    Object.entries(STEPS)
      .filter(([, m]) => m.touchesFilesystem)
      .map(([k]) => k)
      .sort(),
    ['add', 'copy', 'run', 'workdir'],
  );
});
