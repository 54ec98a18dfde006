/**
 * Small file-system questions shared across tug.
 *
 * @module
 */

/** True when `path` exists (symlinks followed); false for any error. */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
