/**
 * POSIX path helpers for code on the container-start path. `node:path` would
 * do, but the first `node:` import initialises Deno's Node compatibility layer,
 * which costs about 14 ms: as much as Deno's own start-up.
 *
 * @module
 */

/** True for a path that starts at the root. */
export function isAbsolute(path: string): boolean {
  return path.startsWith("/");
}

/** Resolves `.` and `..` and collapses slashes; keeps a leading `/`. */
export function normalize(path: string): string {
  const absolute = path.startsWith("/");
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!absolute) out.push("..");
    } else {
      out.push(part);
    }
  }
  const joined = out.join("/");
  return absolute ? `/${joined}` : joined || ".";
}

/** Joins segments and normalizes the result. */
export function join(...parts: string[]): string {
  return normalize(parts.filter((p) => p !== "").join("/"));
}

/** An absolute path: `parts` applied right to left from the current directory. */
export function resolve(...parts: string[]): string {
  let path = "";
  for (let i = parts.length - 1; i >= 0 && !path.startsWith("/"); i--) {
    const part = parts[i]!;
    if (part !== "") path = path ? `${part}/${path}` : part;
  }
  if (!path.startsWith("/")) path = `${Deno.cwd()}/${path}`;
  return normalize(path);
}

/** The last segment of a path. */
export function basename(path: string): string {
  const trimmed = path.replace(/(.)\/+$/, "$1");
  if (trimmed === "/") return "";
  return trimmed.slice(trimmed.lastIndexOf("/") + 1);
}

/** Everything before the last segment. */
export function dirname(path: string): string {
  const trimmed = path.replace(/(.)\/+$/, "$1");
  if (trimmed === "/") return "/";
  const i = trimmed.lastIndexOf("/");
  if (i < 0) return ".";
  const dir = trimmed.slice(0, i).replace(/(.)\/+$/, "$1");
  return dir === "" ? "/" : dir;
}
