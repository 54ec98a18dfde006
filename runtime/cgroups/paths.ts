/**
 * Where a container's cgroup lives: which hierarchies the host mounts
 * ({@link detectCgroups}) and which directory in each one a `cgroupsPath`
 * names ({@link resolveCgroupPaths}), following runc's cgroupfs driver.
 *
 * @module
 */

import { exists } from "../../util/fs.ts";
import { InvalidArgument } from "../../errors.ts";
import type { CgroupLayout, CgroupMount } from "./types.ts";

/** Where cgroup hierarchies are mounted on a normal host. */
export const DEFAULT_CGROUP_ROOT = "/sys/fs/cgroup";

/** The v1 controllers tug joins, in the order it creates and applies them. */
export const V1_CONTROLLERS: readonly string[] = [
  "cpuset",
  "devices",
  "memory",
  "cpu",
  "cpuacct",
  "pids",
  "blkio",
  "hugetlb",
  "net_cls",
  "net_prio",
  "perf_event",
  "freezer",
  "rdma",
  "misc",
  "name=systemd",
];

/** Options for {@link detectCgroups}. */
export interface DetectOptions {
  /** The directory the hierarchies are mounted under (default `/sys/fs/cgroup`). */
  root?: string;
  /** Contents of /proc/self/mountinfo (default: read it). */
  mountinfo?: string;
}

/**
 * Finds the cgroup hierarchies mounted directly under `root`. Mounts listed
 * in mountinfo win; when none is (a cgroupfs laid out in a plain directory,
 * as tests do), the layout is read from the directory itself:
 * `root/cgroup.controllers` means v2, a `unified` directory holding
 * cgroup.controllers means hybrid, other directories name v1 controllers
 * (`cpu,cpuacct`, `systemd` for name=systemd).
 */
export function detectCgroups(options: DetectOptions = {}): CgroupLayout {
  // The host's layout, asked for several times per container by a shim, is read again at most
  // once a second: hierarchies are mounted at boot, and reading mountinfo costs ~0.4 ms each time.
  if (options.root === undefined && options.mountinfo === undefined) {
    const now = performance.now();
    if (hostLayout && now - hostLayout.at < HOST_LAYOUT_TTL_MS) return hostLayout.layout;
    const layout = detect({});
    hostLayout = { layout, at: now };
    return layout;
  }
  return detect(options);
}

/** The last layout of the host's cgroups {@link detectCgroups} read; treat as read-only. */
let hostLayout: { layout: CgroupLayout; at: number } | undefined;
const HOST_LAYOUT_TTL_MS = 1000;

function detect(options: DetectOptions): CgroupLayout {
  const root = trimSlash(options.root ?? DEFAULT_CGROUP_ROOT);
  let mountinfo = options.mountinfo;
  if (mountinfo === undefined) {
    try {
      mountinfo = Deno.readTextFileSync("/proc/self/mountinfo");
    } catch {
      mountinfo = "";
    }
  }
  const fromMounts = layoutFromMountinfo(root, mountinfo);
  const layout = fromMounts ?? layoutFromDirectory(root);
  if (!layout.unified && Object.keys(layout.v1).length === 0) {
    throw new InvalidArgument(`Find cgroup hierarchies: nothing is mounted under ${root}`);
  }
  return layout;
}

function trimSlash(path: string): string {
  return path.length > 1 ? path.replace(/\/+$/, "") : path;
}

/** Undoes mountinfo's octal escapes (`\040` for a space). */
function unescapeMountinfo(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

function readControllers(dir: string): string[] {
  try {
    return Deno.readTextFileSync(`${dir}/cgroup.controllers`).trim().split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}

function layoutFromMountinfo(root: string, mountinfo: string): CgroupLayout | undefined {
  const v1: Record<string, CgroupMount> = {};
  let unified: CgroupMount | undefined;
  let rootIsUnified = false;
  for (const line of mountinfo.split("\n")) {
    const fields = line.split(" ");
    const dash = fields.indexOf("-");
    if (dash < 0 || fields.length < dash + 4) continue;
    const fstype = fields[dash + 1];
    if (fstype !== "cgroup" && fstype !== "cgroup2") continue;
    const mountpoint = unescapeMountinfo(fields[4]!);
    const parent = mountpoint.slice(0, mountpoint.lastIndexOf("/")) || "/";
    if (mountpoint !== root && parent !== root) continue;
    const mountRoot = unescapeMountinfo(fields[3]!);
    if (fstype === "cgroup2") {
      // A cgroup2 mount at the root itself (pure v2) wins over one beside v1 hierarchies.
      if (mountpoint === root || !unified) {
        unified = { mountpoint, root: mountRoot, controllers: readControllers(mountpoint) };
        rootIsUnified ||= mountpoint === root;
      }
      continue;
    }
    const mount: CgroupMount = { mountpoint, root: mountRoot, controllers: [] };
    for (const option of fields[dash + 3]!.split(",")) {
      if ((V1_CONTROLLERS.includes(option) || option.startsWith("name=")) && !v1[option]) {
        v1[option] = mount;
      }
    }
  }
  const mounts = new Set(Object.values(v1));
  for (const mount of mounts) {
    mount.controllers = Object.keys(v1).filter((c) => v1[c] === mount);
  }
  if (!unified && mounts.size === 0) return undefined;
  const mode = rootIsUnified ? "v2" : unified ? "hybrid" : "v1";
  const layout: CgroupLayout = { mode, root, v1: mode === "v2" ? {} : v1 };
  if (unified) layout.unified = unified;
  return layout;
}

function isDirectory(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

function layoutFromDirectory(root: string): CgroupLayout {
  if (exists(`${root}/cgroup.controllers`)) {
    return {
      mode: "v2",
      root,
      v1: {},
      unified: { mountpoint: root, root: "/", controllers: readControllers(root) },
    };
  }
  const v1: Record<string, CgroupMount> = {};
  let unified: CgroupMount | undefined;
  let entries: Deno.DirEntry[] = [];
  try {
    entries = [...Deno.readDirSync(root)];
  } catch {
    // no such directory: nothing mounted
  }
  // Real directories first, so a symlink such as cpu -> cpu,cpuacct adds nothing new.
  entries.sort((a, b) => Number(a.isSymlink) - Number(b.isSymlink) || a.name.localeCompare(b.name));
  for (const entry of entries) {
    const dir = `${root}/${entry.name}`;
    if (!isDirectory(dir) || !exists(`${dir}/cgroup.procs`)) continue;
    if (exists(`${dir}/cgroup.controllers`)) {
      unified ??= { mountpoint: dir, root: "/", controllers: readControllers(dir) };
      continue;
    }
    const names = entry.name === "systemd" ? ["name=systemd"] : entry.name.split(",");
    const mount: CgroupMount = { mountpoint: dir, root: "/", controllers: names };
    for (const name of names) v1[name] ??= mount;
  }
  const layout: CgroupLayout = { mode: unified ? "hybrid" : "v1", root, v1 };
  if (unified) layout.unified = unified;
  return layout;
}

/** The cgroups a process belongs to, parsed from /proc/<pid>/cgroup. */
export interface ProcessCgroups {
  /** v1 controller (and "name=…" hierarchy) → cgroup path. */
  v1: Record<string, string>;
  /** The unified hierarchy's cgroup path (the `0::` line). */
  unified?: string;
}

/** Parses the contents of /proc/<pid>/cgroup. */
export function parseProcCgroup(text: string): ProcessCgroups {
  const result: ProcessCgroups = { v1: {} };
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const first = line.indexOf(":");
    const second = line.indexOf(":", first + 1);
    if (first < 0 || second < 0) continue;
    const controllers = line.slice(first + 1, second);
    const path = line.slice(second + 1);
    if (controllers === "") {
      result.unified = path;
    } else {
      for (const c of controllers.split(",")) result.v1[c] = path;
    }
  }
  return result;
}

/**
 * Checks a cgroupsPath (or, when it is empty, the container id that names
 * the default `tug/<id>`) and returns it without `.` components or repeated
 * slashes, keeping a leading `/` for absolute paths.
 */
export function cleanCgroupsPath(cgroupsPath: string | undefined, id: string): string {
  if (!cgroupsPath) {
    if (!id || id === "." || id === ".." || id.includes("/") || id.includes("\0")) {
      throw new InvalidArgument(
        `Choose a cgroup for container ${JSON.stringify(id)}: the id cannot name a directory`,
      );
    }
    return `tug/${id}`;
  }
  const quoted = JSON.stringify(cgroupsPath);
  if (cgroupsPath.includes("\0")) {
    throw new InvalidArgument(`Invalid cgroupsPath ${quoted}: contains a NUL byte`);
  }
  if (/^[^/:]*:[^/:]*:[^/:]+$/.test(cgroupsPath)) {
    throw new InvalidArgument(
      `Invalid cgroupsPath ${quoted}: the "slice:prefix:name" form needs the systemd cgroup driver, which tug does not have; give a path`,
    );
  }
  const parts = cgroupsPath.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) {
    throw new InvalidArgument(`Invalid cgroupsPath ${quoted}: ".." is not allowed`);
  }
  if (parts.length === 0) {
    throw new InvalidArgument(`Invalid cgroupsPath ${quoted}: it names the root cgroup`);
  }
  return (cgroupsPath.startsWith("/") ? "/" : "") + parts.join("/");
}

/** Joins path pieces with single slashes. */
export function joinPath(...pieces: string[]): string {
  const joined = pieces.filter((p) => p !== "").join("/").replace(/\/{2,}/g, "/");
  return joined.length > 1 ? joined.replace(/\/$/, "") : joined;
}

/** The directory of `cgroup` (a path inside the hierarchy) under `mount`. */
function dirOf(mount: CgroupMount, cgroup: string): string {
  let inner = cgroup;
  if (mount.root !== "/" && (inner === mount.root || inner.startsWith(mount.root + "/"))) {
    inner = inner.slice(mount.root.length);
  }
  return joinPath(mount.mountpoint, inner);
}

/**
 * The directory of the cgroup a process is in (`self`, from /proc/<pid>/cgroup):
 * in the v1 `pids` hierarchy when there is one, else in the unified one;
 * undefined when neither is mounted.
 */
export function ownCgroupDir(layout: CgroupLayout, self: ProcessCgroups): string | undefined {
  const pids = layout.v1.pids;
  if (pids) return dirOf(pids, self.v1.pids ?? "/");
  if (layout.unified) return dirOf(layout.unified, self.unified ?? "/");
  return undefined;
}

/** The directories a container's cgroup occupies. */
export interface ResolvedPaths {
  /**
   * The cleaned cgroups path the directories end with (`tug/<id>`,
   * `/default/web`). destroy() removes the parents it names once they are
   * empty; without it only the directories themselves are removed.
   */
  inner?: string;
  /** v1 controller → directory (only controllers the host mounts and tug joins). */
  v1: Record<string, string>;
  /** The directory in the unified hierarchy, when there is one. */
  unified?: string;
}

/** Where {@link resolveCgroupPaths} resolves a path. */
export interface ResolveOptions {
  /** The host's hierarchies. */
  layout: CgroupLayout;
  /** The runtime's own cgroups (from /proc/self/cgroup). */
  self: ProcessCgroups;
}

/**
 * Resolves a cgroups path cleaned by {@link cleanCgroupsPath} in every
 * hierarchy of `layout`: an absolute path is relative to each hierarchy's
 * root, a relative one to the cgroup the runtime itself (`self`) holds in
 * that hierarchy.
 */
export function resolveCgroupPaths(inner: string, options: ResolveOptions): ResolvedPaths {
  const { layout, self } = options;
  const absolute = inner.startsWith("/");
  const result: ResolvedPaths = { inner, v1: {} };
  for (const controller of V1_CONTROLLERS) {
    const mount = layout.v1[controller];
    if (!mount) continue;
    const base = absolute ? mount.mountpoint : dirOf(mount, self.v1[controller] ?? "/");
    result.v1[controller] = joinPath(base, inner);
  }
  if (layout.unified) {
    const base = absolute ? layout.unified.mountpoint : dirOf(layout.unified, self.unified ?? "/");
    result.unified = joinPath(base, inner);
  }
  return result;
}
