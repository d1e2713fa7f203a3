/**
 * Resolves `USER` and `--chown` specs the way Docker does: names are looked up in the stage's own
 * /etc/passwd and /etc/group (never the host's); numbers are taken as they are.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KilnError, type SourcePosition } from '../util/errors.ts';

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Supplementary groups the user belongs to in /etc/group (for RUN). */
  additionalGids: number[];
  home: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}
interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

async function readLines(path: string): Promise<string[]> {
  try {
    return (await readFile(path, 'utf8')).split('\n');
  } catch {
    return [];
  }
}

export async function readPasswd(rootfs: string): Promise<PasswdEntry[]> {
  const out: PasswdEntry[] = [];
  for (const line of await readLines(join(rootfs, 'etc/passwd'))) {
    const f = line.split(':');
    if (f.length < 7 || line.startsWith('#')) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (Number.isInteger(uid) && Number.isInteger(gid)) out.push({ name: f[0]!, uid, gid, home: f[5]! });
  }
  return out;
}

export async function readGroups(rootfs: string): Promise<GroupEntry[]> {
  const out: GroupEntry[] = [];
  for (const line of await readLines(join(rootfs, 'etc/group'))) {
    const f = line.split(':');
    if (f.length < 4 || line.startsWith('#')) continue;
    const gid = Number(f[2]);
    if (Number.isInteger(gid)) out.push({ name: f[0]!, gid, members: f[3] ? f[3].split(',') : [] });
  }
  return out;
}

const isNumeric = (s: string): boolean => /^\d+$/.test(s);
/**
 * A user or group of a file operation (COPY --chown, WORKDIR) as an id: BuildKit's llb parseUID
 * (client/llb/fileop.go) reads "root" as 0 without looking at /etc/passwd, and digits as the id.
 */
const fileOpId = (s: string): number | undefined => (s === 'root' ? 0 : isNumeric(s) ? Number(s) : undefined);

/**
 * `USER` semantics: `name`, `uid`, `name:group`, `uid:gid`. A numeric uid missing from /etc/passwd is
 * allowed (gid then defaults to 0, like runc); a name missing from it is an error.
 */
export async function resolveUser(rootfs: string, spec: string, at?: SourcePosition): Promise<ResolvedUser> {
  const [userPart = '', groupPart] = spec.split(':', 2) as [string, string | undefined];
  const users = await readPasswd(rootfs);
  const groups = await readGroups(rootfs);
  let uid: number;
  let gid: number;
  let home = '/';
  let name: string | undefined;
  if (userPart === '' || isNumeric(userPart)) {
    uid = userPart === '' ? 0 : Number(userPart);
    const entry = users.find((u) => u.uid === uid);
    gid = entry?.gid ?? 0;
    home = entry?.home ?? '/';
    name = entry?.name;
  } else {
    const entry = users.find((u) => u.name === userPart);
    if (!entry) {
      throw new KilnError(
        'run',
        'UNKNOWN_USER',
        `unable to find user ${userPart}: no matching entries in /etc/passwd`,
        {
          position: at,
          hint: `create the user first (RUN useradd ${userPart}, or append a line to /etc/passwd), or use a numeric uid`,
        },
      );
    }
    ({ uid, gid, home } = entry);
    name = entry.name;
  }
  if (groupPart !== undefined && groupPart !== '') gid = resolveGroup(groups, groupPart, at);
  const additionalGids =
    groupPart === undefined && name !== undefined
      ? groups.filter((g) => g.members.includes(name!) && g.gid !== gid).map((g) => g.gid)
      : [];
  return { uid, gid, additionalGids, home };
}

function resolveGroup(groups: GroupEntry[], spec: string, at?: SourcePosition): number {
  if (isNumeric(spec)) return Number(spec);
  const g = groups.find((x) => x.name === spec);
  if (!g) {
    throw new KilnError(
      'run',
      'UNKNOWN_GROUP',
      `unable to find group ${spec}: no matching entries in /etc/group`,
      {
        position: at,
        hint: `create the group first, or use a numeric gid`,
      },
    );
  }
  return g.gid;
}

/**
 * `--chown` semantics (COPY/ADD): `user`, `user:group`, numeric forms; a user alone also sets the
 * group to the user's primary group when named, or to the same number when numeric (Docker's rule).
 */
export async function resolveChown(
  rootfs: string,
  spec: string,
  at?: SourcePosition,
): Promise<{ uid: number; gid: number }> {
  const [userPart = '', groupPart] = spec.split(':', 2) as [string, string | undefined];
  const users = await readPasswd(rootfs);
  const groups = await readGroups(rootfs);
  let uid: number;
  let gid: number;
  const byId = fileOpId(userPart);
  if (byId !== undefined) {
    uid = byId;
    gid = uid;
  } else {
    const entry = users.find((u) => u.name === userPart);
    // BuildKit's file op falls back to 0:0 for a name it cannot find; kiln refuses, because a typo
    // in --chown would otherwise give root-owned files without a word (listed in the parity harness).
    if (!entry) {
      throw new KilnError(
        'context',
        'UNKNOWN_CHOWN_USER',
        `--chown=${spec}: no user "${userPart}" in the stage's /etc/passwd`,
        {
          position: at,
          hint: 'add the user in an earlier RUN step of this stage, or use numeric ids (--chown=1000:1000)',
        },
      );
    }
    uid = entry.uid;
    gid = entry.gid;
  }
  if (groupPart !== undefined && groupPart !== '') {
    const groupId = fileOpId(groupPart);
    if (groupId !== undefined) gid = groupId;
    else {
      const g = groups.find((x) => x.name === groupPart);
      if (!g) {
        throw new KilnError(
          'context',
          'UNKNOWN_CHOWN_GROUP',
          `--chown=${spec}: no group "${groupPart}" in the stage's /etc/group`,
          {
            position: at,
            hint: 'add the group in an earlier RUN step of this stage, or use a numeric gid',
          },
        );
      }
      gid = g.gid;
    }
  }
  return { uid, gid };
}

/**
 * The owner BuildKit's file operations give for a user spec (WORKDIR's mkdir runs as the current
 * USER): llb.WithUser splits `user[:group]`, a number is taken as uid and gid alike, a name is looked
 * up in the stage's /etc/passwd and, when it is not there (or there is no passwd file), left at 0:0
 * (solver/llbsolver/ops/user_linux.go readUser); a group name not in /etc/group keeps the gid.
 */
export async function resolveFileOwner(rootfs: string, spec: string): Promise<{ uid: number; gid: number }> {
  const [userPart = '', groupPart] = spec.split(':', 2) as [string, string | undefined];
  let uid = 0;
  let gid = 0;
  const byId = fileOpId(userPart);
  if (byId !== undefined) {
    uid = byId;
    gid = byId;
  } else {
    const entry = (await readPasswd(rootfs)).find((u) => u.name === userPart);
    if (entry) ({ uid, gid } = entry);
  }
  if (groupPart !== undefined) {
    gid = fileOpId(groupPart) ?? (await readGroups(rootfs)).find((g) => g.name === groupPart)?.gid ?? gid;
  }
  return { uid, gid };
}
