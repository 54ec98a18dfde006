/**
 * Test helpers: a model of the control files the kernel puts into a new
 * cgroup directory, applied by a {@link FakeCgroupfs} (FakeSyscall) or by a
 * {@link DirCgroupfs} (real files in a temporary directory), so that the
 * managers can be exercised without the kernel's cgroupfs.
 *
 * @module
 */

import { S_IFDIR, S_IFMT, S_IFREG } from "../../ffi/constants.ts";
import { FakeSyscall } from "../../ffi/fake.ts";
import { LibcSyscall } from "../../ffi/libc.ts";
import type { CgroupLayout } from "./types.ts";

const UNLIMITED_V1 = "9223372036854771712";

/** Control files of a new v1 cgroup of `controller`, with the kernel's defaults. */
export function v1Files(controller: string, isRoot = false): Record<string, string> {
  const common = { "cgroup.procs": "", "tasks": "", "notify_on_release": "0" };
  switch (controller) {
    case "cpuset":
      return {
        ...common,
        "cpuset.cpus": isRoot ? "0-1\n" : "\n",
        "cpuset.mems": isRoot ? "0\n" : "\n",
      };
    case "cpu":
      return {
        ...common,
        "cpu.shares": "1024\n",
        "cpu.cfs_period_us": "100000\n",
        "cpu.cfs_quota_us": "-1\n",
        "cpu.cfs_burst_us": "0\n",
        "cpu.rt_period_us": "1000000\n",
        "cpu.rt_runtime_us": "0\n",
        "cpu.idle": "0\n",
        "cpu.stat": "nr_periods 10\nnr_throttled 2\nthrottled_time 5000\n",
      };
    case "cpuacct":
      return {
        ...common,
        "cpuacct.usage": "3000\n",
        "cpuacct.usage_user": "2000\n",
        "cpuacct.usage_sys": "1000\n",
      };
    case "memory":
      return {
        ...common,
        "memory.limit_in_bytes": `${UNLIMITED_V1}\n`,
        "memory.memsw.limit_in_bytes": `${UNLIMITED_V1}\n`,
        "memory.soft_limit_in_bytes": `${UNLIMITED_V1}\n`,
        "memory.kmem.tcp.limit_in_bytes": `${UNLIMITED_V1}\n`,
        "memory.swappiness": "60\n",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        "memory.usage_in_bytes": "4096\n",
        "memory.max_usage_in_bytes": "8192\n",
        "memory.memsw.usage_in_bytes": "4096\n",
        "memory.failcnt": "0\n",
        "memory.stat": "cache 100\nrss 200\ntotal_cache 1000\ntotal_rss 2000\n" +
          "total_active_file 300\ntotal_inactive_file 400\ntotal_active_anon 500\ntotal_inactive_anon 600\n",
      };
    case "devices":
      return { ...common, "devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm\n" };
    case "freezer":
      return isRoot ? common : { ...common, "freezer.state": "THAWED\n" };
    case "blkio":
      return {
        ...common,
        "blkio.bfq.weight": "default 100\n",
        "blkio.bfq.weight_device": "",
        "blkio.throttle.read_bps_device": "",
        "blkio.throttle.write_bps_device": "",
        "blkio.throttle.read_iops_device": "",
        "blkio.throttle.write_iops_device": "",
        "blkio.throttle.io_service_bytes_recursive":
          "8:0 Read 100\n8:0 Write 200\n8:16 Read 1\nTotal 301\n",
        "blkio.throttle.io_serviced_recursive": "8:0 Read 3\n8:0 Write 4\nTotal 7\n",
      };
    case "pids":
      return isRoot ? common : { ...common, "pids.max": "max\n", "pids.current": "0\n" };
    default:
      return common;
  }
}

/** Control files of a new v2 cgroup whose parent enables `controllers`. */
export function v2Files(controllers: readonly string[], isRoot = false): Record<string, string> {
  const files: Record<string, string> = {
    "cgroup.procs": "",
    "cgroup.controllers": controllers.join(" ") + "\n",
    "cgroup.subtree_control": "\n",
  };
  if (isRoot) return files;
  Object.assign(files, {
    "cgroup.type": "domain\n",
    "cgroup.freeze": "0\n",
    "cgroup.kill": "",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cpu.stat": "usage_usec 7\nuser_usec 5\nsystem_usec 2\n",
  });
  for (const c of controllers) {
    switch (c) {
      case "cpu":
        Object.assign(files, {
          "cpu.weight": "100\n",
          "cpu.max": "max 100000\n",
          "cpu.max.burst": "0\n",
          "cpu.idle": "0\n",
          "cpu.stat":
            "usage_usec 7\nuser_usec 5\nsystem_usec 2\nnr_periods 4\nnr_throttled 1\nthrottled_usec 3\n",
        });
        break;
      case "memory":
        Object.assign(files, {
          "memory.max": "max\n",
          "memory.swap.max": "max\n",
          "memory.low": "0\n",
          "memory.high": "max\n",
          "memory.current": "4096\n",
          "memory.peak": "8192\n",
          "memory.swap.current": "0\n",
          "memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
          "memory.stat": "anon 600\nfile 400\n",
        });
        break;
      case "io":
        Object.assign(files, {
          "io.max": "",
          "io.weight": "default 100\n",
          "io.stat": "8:0 rbytes=100 wbytes=200 rios=3 wios=4 dbytes=0 dios=0\n",
        });
        break;
      case "pids":
        Object.assign(files, { "pids.max": "max\n", "pids.current": "0\n" });
        break;
      case "hugetlb":
        Object.assign(files, {
          "hugetlb.2MB.max": "max\n",
          "hugetlb.2MB.rsvd.max": "max\n",
          "hugetlb.1GB.max": "max\n",
        });
        break;
      case "cpuset":
        Object.assign(files, { "cpuset.cpus": "\n", "cpuset.mems": "\n" });
        break;
      case "rdma":
        Object.assign(files, { "rdma.max": "" });
        break;
    }
  }
  return files;
}

/** The v1 controllers of the hybrid layout of this project's machines (cpu and cpuacct apart). */
export const V1_MOUNTS = [
  "cpu",
  "cpuacct",
  "cpuset",
  "memory",
  "devices",
  "freezer",
  "blkio",
  "pids",
  "systemd",
];
/** Controllers the fake v2 root offers. */
export const V2_CONTROLLERS = ["cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma"];

/** The layout of a fake cgroupfs under `root`. */
export function fakeLayout(root: string, mode: CgroupLayout["mode"]): CgroupLayout {
  if (mode === "v2") {
    return {
      mode,
      root,
      v1: {},
      unified: { mountpoint: root, root: "/", controllers: [...V2_CONTROLLERS] },
    };
  }
  const v1: CgroupLayout["v1"] = {};
  for (const name of V1_MOUNTS) {
    const controller = name === "systemd" ? "name=systemd" : name;
    v1[controller] = { mountpoint: `${root}/${name}`, root: "/", controllers: [controller] };
  }
  const layout: CgroupLayout = { mode, root, v1 };
  if (mode === "hybrid") {
    layout.unified = { mountpoint: `${root}/unified`, root: "/", controllers: [] };
  }
  return layout;
}

/** Where under `layout` a directory lies: its v1 controller, or v2. */
function hierarchyOf(layout: CgroupLayout, path: string): { v1?: string; v2?: string } | undefined {
  if (
    layout.unified &&
    (path === layout.unified.mountpoint || path.startsWith(layout.unified.mountpoint + "/"))
  ) {
    return { v2: layout.unified.mountpoint };
  }
  for (const [controller, mount] of Object.entries(layout.v1)) {
    if (path === mount.mountpoint || path.startsWith(mount.mountpoint + "/")) {
      return { v1: controller };
    }
  }
  return undefined;
}

function parentOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/")) || "/";
}

/** Adds `+c`/`-c` tokens to a subtree_control's current content, as the kernel does. */
function mergeSubtreeControl(current: string, written: string): string {
  const set = new Set(current.split(/\s+/).filter(Boolean));
  for (const token of written.split(/\s+/).filter(Boolean)) {
    if (token.startsWith("+")) set.add(token.slice(1));
    else if (token.startsWith("-")) set.delete(token.slice(1));
  }
  return [...set].join(" ") + "\n";
}

/** Fills a directory's control files, the way cgroupfs does on mkdir. */
function filesForNewDir(
  layout: CgroupLayout,
  path: string,
  readParent: (file: string) => string,
): Record<string, string> {
  const where = hierarchyOf(layout, path);
  if (!where) return {};
  if (where.v1) return v1Files(where.v1 === "name=systemd" ? "systemd" : where.v1);
  return v2Files(readParent("cgroup.subtree_control").split(/\s+/).filter(Boolean));
}

/** A FakeSyscall whose files behave like a cgroupfs: mkdir fills in control files, rmdir drops them. */
export class FakeCgroupfs extends FakeSyscall {
  readonly layout: CgroupLayout;

  constructor(root: string, mode: CgroupLayout["mode"]) {
    super();
    this.layout = fakeLayout(root, mode);
    if (mode === "v2") {
      this.#addDir(root, v2Files(V2_CONTROLLERS, true));
    } else {
      for (const name of V1_MOUNTS) {
        this.#addDir(`${root}/${name}`, v1Files(name, true));
      }
      if (mode === "hybrid") this.#addDir(`${root}/unified`, v2Files([], true));
    }
  }

  #addDir(dir: string, files: Record<string, string>): void {
    this.addFile(dir, S_IFDIR | 0o755);
    for (const [name, content] of Object.entries(files)) {
      this.addFile(`${dir}/${name}`, S_IFREG | 0o644, content);
    }
  }

  /** A file's content as text. */
  text(path: string): string {
    const f = this.files.get(path);
    if (!f) throw new Error(`no file ${path}`);
    return new TextDecoder().decode(f.content);
  }

  /** Paths of the directories that exist under `under`. */
  dirs(under: string): string[] {
    return [...this.files.entries()]
      .filter(([p, f]) =>
        (f.mode & S_IFMT) === S_IFDIR && (p === under || p.startsWith(under + "/"))
      )
      .map(([p]) => p)
      .sort();
  }

  /** The writes made, as [path, value] pairs, in order. */
  writes(): [string, string][] {
    return this.calls.filter((c) => c.name === "writeFile").map((
      c,
    ) => [c.args[0] as string, c.args[1] as string]);
  }

  override mkdir(path: string, mode: number): void {
    super.mkdir(path, mode);
    const files = filesForNewDir(
      this.layout,
      path,
      (file) => this.text(`${parentOf(path)}/${file}`),
    );
    for (const [name, content] of Object.entries(files)) {
      this.addFile(`${path}/${name}`, S_IFREG | 0o644, content);
    }
  }

  override rmdir(path: string): void {
    const f = this.files.get(path);
    if (f && (f.mode & S_IFMT) === S_IFDIR) {
      const inside = [...this.files.keys()].filter((p) => p.startsWith(path + "/"));
      const hasDirs = inside.some((p) => (this.files.get(p)!.mode & S_IFMT) === S_IFDIR);
      if (!hasDirs) { for (const p of inside) this.files.delete(p); }
    }
    super.rmdir(path);
  }

  override writeFile(
    path: string,
    data: string | Uint8Array,
    options: { create?: boolean; mode?: number; append?: boolean } = {},
  ): void {
    if (
      path.endsWith("/cgroup.subtree_control") && typeof data === "string" && this.files.has(path)
    ) {
      const merged = mergeSubtreeControl(this.text(path), data);
      super.writeFile(path, data, options); // recorded as written
      this.files.get(path)!.content = new TextEncoder().encode(merged);
      return;
    }
    super.writeFile(path, data, options);
    if (path.endsWith("/cgroup.freeze") && typeof data === "string") {
      const events = `${parentOf(path)}/cgroup.events`;
      if (this.files.has(events)) {
        this.addFile(events, S_IFREG | 0o644, `populated 0\nfrozen ${data.trim()}\n`);
      }
    }
  }
}

/** A LibcSyscall over a plain directory laid out like a cgroupfs (mkdir fills in control files). */
export class DirCgroupfs extends LibcSyscall {
  readonly layout: CgroupLayout;
  /** Every write, as [path, value] pairs, in order. */
  readonly written: [string, string][] = [];

  constructor(root: string, mode: CgroupLayout["mode"]) {
    super();
    this.layout = fakeLayout(root, mode);
    if (mode === "v2") {
      this.#fill(root, v2Files(V2_CONTROLLERS, true));
    } else {
      for (const name of V1_MOUNTS) {
        Deno.mkdirSync(`${root}/${name}`, { recursive: true });
        this.#fill(`${root}/${name}`, v1Files(name, true));
      }
      if (mode === "hybrid") {
        Deno.mkdirSync(`${root}/unified`, { recursive: true });
        this.#fill(`${root}/unified`, v2Files([], true));
      }
    }
  }

  #fill(dir: string, files: Record<string, string>): void {
    for (const [name, content] of Object.entries(files)) {
      Deno.writeTextFileSync(`${dir}/${name}`, content);
    }
  }

  override mkdir(path: string, mode: number): void {
    super.mkdir(path, mode);
    this.#fill(
      path,
      filesForNewDir(this.layout, path, (f) => Deno.readTextFileSync(`${parentOf(path)}/${f}`)),
    );
  }

  override rmdir(path: string): void {
    try {
      for (const e of Deno.readDirSync(path)) if (e.isFile) Deno.removeSync(`${path}/${e.name}`);
    } catch {
      // let rmdir report it
    }
    super.rmdir(path);
  }

  override writeFile(
    path: string,
    data: string | Uint8Array,
    options: { create?: boolean; mode?: number; append?: boolean } = {},
  ): void {
    const text = typeof data === "string" ? data : new TextDecoder().decode(data);
    this.written.push([path, text]);
    if (path.endsWith("/cgroup.subtree_control")) {
      super.writeFile(path, mergeSubtreeControl(Deno.readTextFileSync(path), text), options);
      return;
    }
    super.writeFile(path, data, options);
    if (path.endsWith("/cgroup.freeze")) {
      Deno.writeTextFileSync(
        `${parentOf(path)}/cgroup.events`,
        `populated 0\nfrozen ${text.trim()}\n`,
      );
    }
  }
}
