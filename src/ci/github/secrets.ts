/**
 * build-push-action's three secret inputs as kiln `--secret` values:
 *   secrets:      `ID=value` lines; the value goes to a 0600 file (never argv, never the environment)
 *   secret-files: `ID=path` lines
 *   secret-envs:  `ID=VAR` items (commas split them, as build-push-action does)
 * Kiln's own `id=...,src=...` / `id=...,env=...` form is still accepted in `secrets` for workflows
 * written against earlier kiln releases. No error message here ever contains a value: an item is
 * named by its position and its ID only.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KilnError } from '../../util/errors.ts';

export interface SecretInputs {
  secrets: string[];
  secretFiles: string[];
  secretEnvs: string[];
}

export interface ResolvedSecrets {
  /** `--secret` values for kiln. */
  flags: string[];
  /** IDs given, for the git-context token rule (GIT_AUTH_TOKEN set by the user wins). */
  ids: string[];
  /** Values to mask in the log. */
  values: string[];
  /** ID → the 0600 file holding a `secrets` value (the git context reads GIT_AUTH_TOKEN from it). */
  files: Record<string, string>;
}

const ID_RE = /^[A-Za-z0-9_.-]+$/;

function bad(input: string, i: number, what: string, hint: string): KilnError {
  return new KilnError('usage', 'BAD_INPUT', `input ${input}: item ${i + 1} ${what}`, { hint });
}

/** kiln's earlier form: `id=x,src=...` or `id=x,env=...` (the id= key starts the item). */
function isKilnForm(item: string): boolean {
  return /^id=[^,]*,(src|source|env)=/.test(item) || /^id=[^,=]+$/.test(item);
}

function splitId(input: string, item: string, i: number, example: string): [string, string] {
  const eq = item.indexOf('=');
  if (eq <= 0) throw bad(input, i, 'has no ID= before its value', `write one ${example} per line`);
  const id = item.slice(0, eq).trim();
  if (!ID_RE.test(id))
    throw bad(input, i, 'has an ID with characters other than letters, digits, _ . -', `write ${example}`);
  return [id, item.slice(eq + 1)];
}

/**
 * Resolves the three inputs; `dir` is a private (0700) directory for the value files, removed by
 * the caller after the build.
 */
export function resolveSecrets(inputs: SecretInputs, dir: string): ResolvedSecrets {
  const out: ResolvedSecrets = { flags: [], ids: [], values: [], files: {} };
  inputs.secrets.forEach((item, i) => {
    if (isKilnForm(item)) {
      out.flags.push(item);
      out.ids.push(/^id=([^,]*)/.exec(item)![1]!);
      return;
    }
    const [id, value] = splitId('secrets', item, i, 'ID=value (e.g. GIT_AUTH_TOKEN=${{ github.token }})');
    const file = join(dir, `secret-${out.flags.length}`);
    writeFileSync(file, value, { mode: 0o600 });
    out.flags.push(`id=${id},src=${file}`);
    out.ids.push(id);
    out.files[id] = file;
    if (value !== '') out.values.push(value);
  });
  inputs.secretFiles.forEach((item, i) => {
    const [id, path] = splitId('secret-files', item, i, 'ID=path (e.g. npmrc=${{ runner.temp }}/npmrc)');
    if (path.trim() === '') throw bad('secret-files', i, `(${id}) has an empty path`, 'write ID=path');
    out.flags.push(`id=${id},src=${path.trim()}`);
    out.ids.push(id);
  });
  inputs.secretEnvs.forEach((item, i) => {
    const [id, name] = splitId('secret-envs', item, i, 'ID=VARIABLE (e.g. aws_key=AWS_ACCESS_KEY_ID)');
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name.trim()))
      throw bad('secret-envs', i, `(${id}) does not name an environment variable`, 'write ID=VARIABLE');
    out.flags.push(`id=${id},env=${name.trim()}`);
    out.ids.push(id);
  });
  return out;
}
