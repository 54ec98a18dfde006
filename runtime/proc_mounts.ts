/**
 * Which mounts may cover the container's /proc or lie inside it: runc's
 * checkProcMount (the CVE-2019-16884 and CVE-2019-19921 class, where a
 * mount over /proc/self/attr or /proc/sys defeats AppArmor or the masked and
 * read-only paths). Decided on the destination as the init reached it,
 * symlinks inside the root followed, so that `/foo -> /proc` leads here too.
 *
 * Pure: the init supplies the resolved path and, for a bind onto /proc
 * itself, whether the source is a procfs.
 *
 * @module
 */

/**
 * The files inside /proc a mount may cover: those lxcfs emulates, as in
 * runc's list (fips_enabled since runc#4246, 2024).
 */
export const PROC_FILES_ALLOWED: readonly string[] = [
  "/proc/cpuinfo",
  "/proc/diskstats",
  "/proc/meminfo",
  "/proc/stat",
  "/proc/swaps",
  "/proc/uptime",
  "/proc/loadavg",
  "/proc/slabinfo",
  "/proc/net/dev",
  "/proc/sys/kernel/ns_last_pid",
  "/proc/sys/crypto/fips_enabled",
];

/** A mount, as {@link procMountRefusal} needs to know it. */
export interface ProcMountCandidate {
  /** The destination as the spec gives it, for the message. */
  destination: string;
  /** Where the destination resolved inside the container's root: absolute, symlinks followed. */
  resolved: string;
  /** The mount's type (`proc`, `tmpfs`, …); ignored for a bind mount. */
  type: string;
  bind: boolean;
  /** Whether the bind source is on a procfs; asked only for a bind onto /proc itself. */
  sourceIsProcfs: () => boolean;
}

/** `path` without repeated slashes, `.` components or a trailing slash. */
function clean(path: string): string {
  return "/" + path.split("/").filter((c) => c !== "" && c !== ".").join("/");
}

/**
 * Why `m` may not be mounted where it resolved, in runc's words, or
 * undefined when it may. On /proc itself only a proc mount, or a bind of a
 * procfs, is allowed; inside /proc only {@link PROC_FILES_ALLOWED}.
 *
 * @example
 * ```ts
 * procMountRefusal({
 *   destination: "/proc/sys", resolved: "/proc/sys", type: "tmpfs", bind: false,
 *   sourceIsProcfs: () => false,
 * }); // '"/proc/sys" cannot be mounted because it is inside /proc'
 * ```
 */
export function procMountRefusal(m: ProcMountCandidate): string | undefined {
  const resolved = clean(m.resolved);
  const lexical = clean(m.destination);
  const inProc = (path: string) => path === "/proc" || path.startsWith("/proc/");
  // Where the destination itself names a place in /proc that is refused, that is reason enough;
  // else say where it led (a link from outside, or /proc/net/dev reached through /proc/net -> self/net).
  const named = inProc(lexical) && !PROC_FILES_ALLOWED.includes(lexical);
  const it = named ? "it" : `it resolves to ${JSON.stringify(resolved)} and`;
  const refused = `${JSON.stringify(m.destination)} cannot be mounted because ${it}`;
  if (resolved === "/proc") {
    if (m.bind ? m.sourceIsProcfs() : m.type === "proc") return undefined;
    return `${refused} is not of type proc`;
  }
  if (!inProc(resolved) || PROC_FILES_ALLOWED.includes(resolved)) return undefined;
  return `${refused} is inside /proc`;
}
