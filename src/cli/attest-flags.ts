/**
 * The supply-chain flags (flag-table.ts, group "Supply chain:") → AttestationOptions and
 * SignOptions. `--attestation min|max` attaches an SBOM and provenance mode=min|max; each
 * `--attest type=…` adds or refines one, as BuildKit's does; `--sbom-output` / `--provenance-output`
 * alone generate the document for the file without attaching it. Keyless signing takes the CI's
 * OIDC token from the environment (GitHub ACTIONS_ID_TOKEN_REQUEST_URL/TOKEN, GitLab
 * SIGSTORE_ID_TOKEN); whether signing can work is checked when the build starts.
 */
import type { AttestationOptions, SignOptions } from '../options.ts';
import { buildEnvironment } from '../attest/ci-env.ts';
import { KilnError } from '../util/errors.ts';
import type { FlagValues } from './flag-table.ts';

function bad(message: string, hint: string): KilnError {
  return new KilnError('usage', 'BAD_ATTEST', message, { hint });
}

function keyValuesOf(text: string): Map<string, string> {
  const kv = new Map<string, string>();
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    kv.set(eq < 0 ? part.trim() : part.slice(0, eq).trim(), eq < 0 ? 'true' : part.slice(eq + 1).trim());
  }
  return kv;
}

function onlyKeys(kv: Map<string, string>, what: string, allowed: string[]): void {
  for (const k of kv.keys())
    if (!allowed.includes(k))
      throw bad(`--attest ${what}: unknown key "${k}"`, `keys: ${allowed.join(', ')}`);
}

function applySbom(kv: Map<string, string>, out: AttestationOptions): void {
  onlyKeys(kv, 'type=sbom', ['type', 'disabled', 'format', 'generator']);
  const format = kv.get('format') ?? 'spdx';
  const generator = kv.get('generator');
  // BuildKit runs a scanner image here; kiln scans the layers itself and runs no image.
  if (generator !== undefined && generator !== 'kiln')
    throw bad(
      `--attest type=sbom,generator=${generator}: kiln has its own SBOM generator and runs no scanner images`,
      'drop generator=, or write generator=kiln',
    );
  if (format !== 'spdx' && format !== 'cyclonedx')
    throw bad(
      `--attest type=sbom,format=${format}: unknown SBOM format`,
      'write format=spdx or format=cyclonedx',
    );
  if (kv.get('disabled') === 'true') delete out.sbom;
  else out.sbom = { format, attach: true };
}

function applyProvenance(kv: Map<string, string>, out: AttestationOptions): void {
  onlyKeys(kv, 'type=provenance', ['type', 'disabled', 'mode', 'version']);
  const mode = kv.get('mode') ?? 'min';
  if (mode !== 'min' && mode !== 'max')
    throw bad(`--attest type=provenance,mode=${mode}: unknown mode`, 'write mode=min or mode=max');
  const version = kv.get('version');
  if (version !== undefined && version !== 'v1')
    throw bad(
      `--attest type=provenance,version=${version}: kiln writes SLSA provenance v1 only`,
      'drop version= or write version=v1',
    );
  if (kv.get('disabled') === 'true') delete out.provenance;
  else out.provenance = { mode, attach: true };
}

export function attestOptions(v: FlagValues, env: NodeJS.ProcessEnv): AttestationOptions {
  const out: AttestationOptions = { environment: buildEnvironment(env) };
  if (v.attestation !== 'off') {
    out.sbom = { format: 'spdx', attach: true };
    out.provenance = { mode: v.attestation, attach: true };
  }
  for (const a of v.attest) {
    const kv = keyValuesOf(a);
    const type = kv.get('type');
    if (type === 'sbom') applySbom(kv, out);
    else if (type === 'provenance') applyProvenance(kv, out);
    else
      throw bad(
        `--attest "${a}": type must be sbom or provenance`,
        'write --attest type=sbom or --attest type=provenance,mode=max',
      );
  }
  if (v.sbomOutput) {
    out.sbomOutput = v.sbomOutput;
    out.sbom ??= { format: 'spdx', attach: false };
  }
  if (v.provenanceOutput) {
    out.provenanceOutput = v.provenanceOutput;
    out.provenance ??= { mode: 'min', attach: false };
  }
  return out;
}

export function signOptions(v: FlagValues, env: NodeJS.ProcessEnv): SignOptions {
  const out: SignOptions = { enabled: v.sign === true };
  if (v.cosignKey) out.key = v.cosignKey;
  if (v.cosignPasswordEnv) {
    out.passwordEnv = v.cosignPasswordEnv;
    const pw = env[v.cosignPasswordEnv];
    if (pw !== undefined) out.password = pw;
  } else if (env.COSIGN_PASSWORD !== undefined) out.password = env.COSIGN_PASSWORD; // cosign's own variable
  if (out.enabled && !out.key) {
    if (env.SIGSTORE_ID_TOKEN) out.idToken = env.SIGSTORE_ID_TOKEN;
    else if (env.ACTIONS_ID_TOKEN_REQUEST_URL && env.ACTIONS_ID_TOKEN_REQUEST_TOKEN)
      out.tokenRequest = { url: env.ACTIONS_ID_TOKEN_REQUEST_URL, token: env.ACTIONS_ID_TOKEN_REQUEST_TOKEN };
  }
  if (v.fulcioUrl) out.fulcioUrl = v.fulcioUrl;
  if (v.rekorUrl) out.rekorUrl = v.rekorUrl;
  return out;
}
