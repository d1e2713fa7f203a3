/**
 * Whether an image path lies at or under one of the excluded paths (mount targets, --ignore-path,
 * /proc /sys /dev): shared by both snapshot engines and by steps that know their writes.
 */
export function isExcluded(p: string, exclude: string[]): boolean {
  for (const e of exclude) {
    if (e === '/' || e === '') continue;
    if (p === e || p.startsWith(e.endsWith('/') ? e : e + '/')) return true;
  }
  return false;
}
