/**
 * Time-sliced turns of the event loop: a walk yields only once its slice has passed, and then lets
 * what is due (an I/O callback, a setImmediate) run before it goes on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nextTurn, TimeSlicer } from '../../../src/util/event-loop.ts';

test('nextTurn lets a pending setImmediate run first', async () => {
  let ran = false;
  setImmediate(() => (ran = true));
  await nextTurn();
  assert.equal(ran, true);
});

test('a slicer yields once its slice has passed, not before', async () => {
  const long = new TimeSlicer(60_000);
  let ran = false;
  setImmediate(() => (ran = true));
  await long.maybeYield();
  assert.equal(ran, false, 'within the slice: no turn');
  await nextTurn();

  const short = new TimeSlicer(5);
  const start = Date.now();
  while (Date.now() - start < 10) {
    // busy: the slice passes
  }
  let later = false;
  setImmediate(() => (later = true));
  await short.maybeYield();
  assert.equal(later, true, 'past the slice: a turn');
  // The clock starts again after a turn.
  let again = false;
  setImmediate(() => (again = true));
  await short.maybeYield();
  assert.equal(again, false);
  await nextTurn();
});
