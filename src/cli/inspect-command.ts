/**
 * `kiln inspect IMAGE`: prints what is attached to an image (platform manifests, SBOM and
 * provenance attestations, cosign signatures), as text or `--format json`. Its registry and
 * logging flags are the build's own, read through the same table. Exits non-zero when a
 * signature does not verify, or when `--key` is given and nothing verifies with it.
 */
import { readFile } from 'node:fs/promises';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { Option, type Command } from 'commander';
import { Logger, colorFor } from '../log/logger.ts';
import { RegistryClient } from '../registry/client.ts';
import { CredentialStore } from '../registry/credentials.ts';
import { KilnError } from '../util/errors.ts';
import { formatInspect } from '../inspect/format.ts';
import type { InspectReport } from '../inspect/report.ts';
import { BUILD_FLAGS, type FlagSpec } from './flag-table.ts';
import { addFlags } from './build-flags.ts';
import { cliSettings, readFlags, registryOptions } from './to-options.ts';

const INSPECT_FLAGS = {
  insecurePull: BUILD_FLAGS.insecurePull,
  insecureRegistry: BUILD_FLAGS.insecureRegistry,
  skipTlsVerifyPull: BUILD_FLAGS.skipTlsVerifyPull,
  skipTlsVerifyRegistry: BUILD_FLAGS.skipTlsVerifyRegistry,
  registryCertificate: BUILD_FLAGS.registryCertificate,
  registryClientCert: BUILD_FLAGS.registryClientCert,
  verbosity: BUILD_FLAGS.verbosity,
  logFormat: BUILD_FLAGS.logFormat,
} as const satisfies Record<string, FlagSpec>;

async function publicKey(path: string): Promise<KeyObject> {
  try {
    return createPublicKey(await readFile(path, 'utf8'));
  } catch (e) {
    throw new KilnError('usage', 'SIGN_KEY_INVALID', `cannot read --key ${path}: ${(e as Error).message}`, {
      hint: 'pass the public key PEM (cosign.pub, or `openssl pkey -pubout` of the signing key)',
    });
  }
}

/** The verdict: a failing signature, or a --key nothing verifies with, is an error. */
function verdict(r: InspectReport, keyGiven: boolean): void {
  const failed = r.signatures.filter((s) => s.status === 'failed');
  if (failed.length)
    throw new KilnError(
      'registry',
      'SIGNATURE_INVALID',
      `${failed.length} signature(s) of ${r.reference} do not verify: ${failed.map((s) => `${s.subject.slice(0, 19)} (${s.reason ?? 'invalid'})`).join(', ')}`,
      {
        hint: keyGiven
          ? 'check that --key is the public half of the signing key'
          : 'the signature or payload was altered',
      },
    );
  if (keyGiven && !r.signatures.some((s) => s.status === 'key'))
    throw new KilnError(
      'registry',
      'SIGNATURE_INVALID',
      `no signature of ${r.reference} verifies with --key`,
      {
        hint: 'sign the image with kiln build --sign --cosign-key, or cosign sign --key',
      },
    );
}

export function addInspectCommand(program: Command, out: (s: string) => void, env = process.env): void {
  const cmd = addFlags(
    program
      .command('inspect')
      .argument('<image>', 'image reference (tag or digest)')
      .description('print what is attached to an image: platforms, SBOM, provenance, signatures')
      .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
      .option('--key <path>', 'verify signatures with this public key (PEM)')
      .exitOverride(),
    INSPECT_FLAGS,
  );
  cmd.action(async (image: string, o: Record<string, unknown>) => {
    const shared = readFlags(o);
    const logger = new Logger({ ...cliSettings(shared).log, color: colorFor(process.stderr) });
    const registry = registryOptions(shared, env);
    for (const c of registry.credentials) logger.addSecret(c.password);
    const key = typeof o.key === 'string' ? await publicKey(o.key) : undefined;
    const client = new RegistryClient({
      registry,
      credentials: new CredentialStore({ explicit: {} }),
      logger,
    });
    try {
      // Loaded by `kiln inspect` only: its certificate checks pull in @sigstore/core.
      const { inspectImage } = await import('../inspect/inspect-image.ts');
      const report = await inspectImage(client, image, key);
      out(o.format === 'json' ? `${JSON.stringify(report, null, 2)}\n` : formatInspect(report));
      verdict(report, key !== undefined);
    } finally {
      await client.close();
    }
  });
}
