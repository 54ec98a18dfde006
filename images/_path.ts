/**
 * POSIX path helpers with `node:path`'s results, for the image store. They
 * are here rather than imported from `node:path` because the first `node:`
 * module a process imports sets up Deno's Node compatibility layer, which
 * costs the process about 4 MB of RSS; the pull path imports none (see the
 * README's pull figures).
 *
 * @module
 */

/** `path` with `.` and `..` components resolved and slashes collapsed, as `node:path`'s `normalize`. */
export function normalize(path: string): string {
  if (path === "") return ".";
  const absolute = path.startsWith("/");
  const trailing = path.endsWith("/");
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
  let s = out.join("/");
  if (absolute) return `/${s}${trailing && s !== "" ? "/" : ""}`;
  if (s === "") s = ".";
  return trailing ? `${s}/` : s;
}

/** The parts joined with `/` and normalized, as `node:path`'s `join`. */
export function join(...parts: string[]): string {
  const joined = parts.filter((p) => p !== "").join("/");
  return joined === "" ? "." : normalize(joined);
}

/** True for an absolute path. */
export function isAbsolute(path: string): boolean {
  return path.startsWith("/");
}

/** The absolute path the parts lead to from the working directory, as `node:path`'s `resolve`. */
export function resolve(...parts: string[]): string {
  let path = "";
  for (let i = parts.length - 1; i >= 0 && !path.startsWith("/"); i--) {
    const p = parts[i]!;
    if (p === "") continue;
    path = path === "" ? p : `${p}/${path}`;
  }
  if (!path.startsWith("/")) path = path === "" ? Deno.cwd() : `${Deno.cwd()}/${path}`;
  const s = normalize(path);
  return s.length > 1 && s.endsWith("/") ? s.slice(0, -1) : s;
}
