/**
 * The set-up most CLI build tests share: a test registry with the busybox base pushed as
 * `base/busybox:latest` and a scratch directory, started before the file's tests and removed after.
 */
import { after, before } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry, type TestRegistry } from './registry.ts';
import { pushBusyboxImage } from './images.ts';

export interface BusyboxRegistry {
  reg: TestRegistry;
  dir: string;
  /** `<host>/base/busybox:latest` */
  base: string;
}

/** Registers before/after hooks; the returned object is filled in once `before` has run. */
export function useBusyboxRegistry(prefix: string): BusyboxRegistry {
  const fx = {} as BusyboxRegistry;
  before(async () => {
    fx.reg = await startRegistry({ auth: 'none' });
    await pushBusyboxImage(fx.reg, 'base/busybox', 'latest');
    fx.base = `${fx.reg.host}/base/busybox:latest`;
    fx.dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  });
  after(async () => {
    await fx.reg?.stop();
    if (fx.dir) rmSync(fx.dir, { recursive: true, force: true });
  });
  return fx;
}
