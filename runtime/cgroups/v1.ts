/**
 * The cgroup v1 manager: one directory per mounted controller (cpuset, cpu,
 * cpuacct, memory, devices, freezer, blkio, pids, … and name=systemd),
 * following runc's cgroupfs driver. On a hybrid host it also makes and joins
 * the matching cgroup in the unified hierarchy (as runc does), which tracks
 * the processes and lets SIGKILL use cgroup.kill; resources stay on v1.
 *
 * @module
 */

import { FailedPrecondition, InvalidArgument, NotImplemented } from "../../errors.ts";
import { SyscallError } from "../../ffi/syscall.ts";
import type { LinuxResources } from "../spec.ts";
import {
  errnoOf,
  intText,
  limitError,
  type ManagerOptions,
  mkdirAll,
  parseFlatKeyed,
  parseNumber,
  pathExists,
  pidsUnder,
  rdmaLine,
  readText,
  removeEmptyParents,
  removeMade,
  removeTree,
  requireCgroup,
  signalProcesses,
  sleepSync,
  writeLimit,
} from "./_common.ts";
import { checkUnifiedKey, validateResources } from "./_validate.ts";
import { emulateDeviceRules, normalizeDeviceRules, v1DeviceRuleText } from "./devices.ts";
import { V1_CONTROLLERS } from "./paths.ts";
import type { Syscall } from "../../ffi/syscall.ts";
import type { CgroupLayout, CgroupManager, CgroupStats } from "./types.ts";

const SIGKILL = 9;
/** v1 reports "no limit" as a huge number (PAGE_COUNTER_MAX × page size); anything this big is no limit. */
const V1_UNLIMITED = 2 ** 62;

/** The cgroup v1 (and hybrid) {@link CgroupManager}. */
export class CgroupV1Manager implements CgroupManager {
  readonly version = 1 as const;
  readonly #sys: Syscall;
  readonly #layout: CgroupLayout;
  readonly #dirs: Record<string, string>;
  readonly #unified: string | undefined;
  readonly #warn: (message: string) => void;
  readonly #inner: string | undefined;
  #made: string[] = [];
  #fresh = false;

  constructor(options: ManagerOptions) {
    this.#sys = options.sys;
    this.#layout = options.layout;
    this.#dirs = { ...options.paths.v1 };
    this.#unified = options.layout.mode === "hybrid" ? options.paths.unified : undefined;
    this.#warn = options.warn;
    this.#inner = options.paths.inner;
  }

  paths(): Record<string, string> {
    const paths = { ...this.#dirs };
    if (this.#unified) paths.unified = this.#unified;
    return paths;
  }

  /** Every distinct directory, with the mount point it lies under, v1 first. */
  #allDirs(): { dir: string; base: string }[] {
    const seen = new Set<string>();
    const out: { dir: string; base: string }[] = [];
    for (const controller of V1_CONTROLLERS) {
      const dir = this.#dirs[controller];
      if (!dir || seen.has(dir)) continue;
      seen.add(dir);
      out.push({ dir, base: this.#layout.v1[controller]!.mountpoint });
    }
    if (this.#unified) out.push({ dir: this.#unified, base: this.#layout.unified!.mountpoint });
    return out;
  }

  create(): void {
    const made: string[] = [];
    try {
      for (const { dir, base } of this.#allDirs()) mkdirAll(this.#sys, base, dir, made);
      const cpuset = this.#dirs.cpuset;
      if (cpuset) this.#fillCpuset(this.#layout.v1.cpuset!.mountpoint, cpuset);
    } catch (err) {
      removeMade(this.#sys, made);
      throw err;
    }
    this.#made = made;
    this.#fresh = true;
  }

  /** A new cpuset cgroup has no CPUs and no memory nodes: copy them down from the parent, level by level. */
  #fillCpuset(base: string, dir: string): void {
    let parent = base;
    for (const part of dir.slice(base.length).split("/").filter(Boolean)) {
      const current = `${parent}/${part}`;
      for (const file of ["cpuset.cpus", "cpuset.mems"]) {
        const value = readText(this.#sys, `${current}/${file}`);
        if (value === undefined || value.trim() !== "") continue;
        const inherited = (readText(this.#sys, `${parent}/${file}`) ?? "").trim();
        writeLimit(
          this.#sys,
          `cpuset (copy ${file} from the parent)`,
          `${current}/${file}`,
          inherited,
        );
      }
      parent = current;
    }
  }

  apply(resources: LinuxResources): void {
    const fresh = this.#fresh;
    this.#fresh = false;
    try {
      validateResources(resources, 1);
      this.#apply(resources);
    } catch (err) {
      if (fresh) {
        removeMade(this.#sys, this.#made);
        this.#made = [];
      }
      throw err;
    }
  }

  /** The directory of `controller`, or NotImplemented naming `key` when the host does not mount it. */
  #need(controller: string, key: string): string {
    const dir = this.#dirs[controller];
    if (!dir) {
      throw new NotImplemented(
        `Set resources.${key}: the ${controller} controller is not mounted on this host`,
      );
    }
    return dir;
  }

  #write(key: string, path: string, value: string): void {
    writeLimit(this.#sys, `resources.${key}`, path, value);
  }

  /** Writes and returns the SyscallError instead of throwing it (for writes that runc retries in another order). */
  #tryWrite(path: string, value: string): SyscallError | undefined {
    try {
      this.#sys.writeFile(path, value);
      return undefined;
    } catch (err) {
      if (err instanceof SyscallError) return err;
      throw err;
    }
  }

  #apply(r: LinuxResources): void {
    const sys = this.#sys;
    // Checks that need the host, before the first write.
    const unifiedKeys = Object.keys(r.unified ?? {});
    if (unifiedKeys.length > 0) this.#checkUnified(r.unified!);
    const rules = r.devices ? normalizeDeviceRules(r.devices) : undefined;
    if (rules) emulateDeviceRules(rules);
    this.#checkControllers(r);

    const c = r.cpu;
    if (c?.cpus) this.#write("cpu.cpus", `${this.#need("cpuset", "cpu.cpus")}/cpuset.cpus`, c.cpus);
    if (c?.mems) this.#write("cpu.mems", `${this.#need("cpuset", "cpu.mems")}/cpuset.mems`, c.mems);

    if (rules) {
      const dir = this.#need("devices", "devices");
      this.#write("devices", `${dir}/devices.deny`, "a");
      rules.forEach((rule, i) => {
        const file = rule.allow ? "devices.allow" : "devices.deny";
        this.#write(`devices[${i}]`, `${dir}/${file}`, v1DeviceRuleText(rule));
      });
    }

    if (r.memory) this.#applyMemory(r.memory);
    if (c) this.#applyCpu(c);

    if (r.pids) {
      const limit = r.pids.limit;
      this.#write(
        "pids.limit",
        `${this.#need("pids", "pids.limit")}/pids.max`,
        limit > 0 ? intText(limit) : "max",
      );
    }

    if (r.blockIO) this.#applyBlkio(r.blockIO);

    (r.hugepageLimits ?? []).forEach((h, i) => {
      const key = `hugepageLimits[${i}]`;
      if (this.#dirs.hugetlb) {
        const dir = this.#dirs.hugetlb;
        this.#write(key, `${dir}/hugetlb.${h.pageSize}.limit_in_bytes`, intText(h.limit));
        const rsvd = `${dir}/hugetlb.${h.pageSize}.rsvd.limit_in_bytes`;
        if (pathExists(sys, rsvd)) this.#write(key, rsvd, intText(h.limit));
      } else if (this.#unified && this.#unifiedHas("hugetlb")) {
        this.#write(key, `${this.#unified}/hugetlb.${h.pageSize}.max`, intText(h.limit));
        const rsvd = `${this.#unified}/hugetlb.${h.pageSize}.rsvd.max`;
        if (pathExists(sys, rsvd)) this.#write(key, rsvd, intText(h.limit));
      } else {
        throw new NotImplemented(
          `Set resources.${key}: the hugetlb controller is not mounted on v1 nor enabled for the unified cgroup on this host`,
        );
      }
    });

    if (r.network) {
      const { classID, priorities } = r.network;
      if (classID !== undefined) {
        if (this.#dirs.net_cls) {
          this.#write("network.classID", `${this.#dirs.net_cls}/net_cls.classid`, String(classID));
        } else {
          this.#warn(
            "resources.network.classID ignored: the net_cls controller is not mounted on this host",
          );
        }
      }
      if (priorities?.length) {
        if (this.#dirs.net_prio) {
          priorities.forEach((p, i) => {
            this.#write(
              `network.priorities[${i}]`,
              `${this.#dirs.net_prio}/net_prio.ifpriomap`,
              `${p.name} ${p.priority}`,
            );
          });
        } else {
          this.#warn(
            "resources.network.priorities ignored: the net_prio controller is not mounted on this host",
          );
        }
      }
    }

    for (const [device, limits] of Object.entries(r.rdma ?? {})) {
      const dir = this.#need("rdma", "rdma");
      this.#write(`rdma[${JSON.stringify(device)}]`, `${dir}/rdma.max`, rdmaLine(device, limits));
    }

    for (const key of unifiedKeys) {
      this.#write(`unified[${JSON.stringify(key)}]`, `${this.#unified}/${key}`, r.unified![key]!);
    }
  }

  /** Throws NotImplemented before the first write when `r` needs a controller this host does not mount. */
  #checkControllers(r: LinuxResources): void {
    const c = r.cpu, m = r.memory, b = r.blockIO;
    if (c?.cpus) this.#need("cpuset", "cpu.cpus");
    if (c?.mems) this.#need("cpuset", "cpu.mems");
    if (r.devices) this.#need("devices", "devices");
    if (
      m && (m.limit || m.swap || m.reservation || m.kernelTCP || m.disableOOMKiller !== undefined)
    ) {
      this.#need("memory", "memory");
    }
    if (m?.swappiness !== undefined && m.swappiness !== null && m.swappiness !== -1) {
      this.#need("memory", "memory.swappiness");
    }
    if (c && (c.shares || c.quota || c.period || c.burst !== undefined || c.idle !== undefined)) {
      this.#need("cpu", "cpu");
    }
    if (c?.realtimePeriod || c?.realtimeRuntime) this.#need("cpu", "cpu.realtimeRuntime");
    if (r.pids) this.#need("pids", "pids.limit");
    if (b && Object.values(b).some((v) => Array.isArray(v) ? v.length > 0 : !!v)) {
      this.#need("blkio", "blockIO");
    }
    if (Object.keys(r.rdma ?? {}).length) this.#need("rdma", "rdma");
    if (
      r.hugepageLimits?.length && !this.#dirs.hugetlb &&
      !(this.#unified && this.#unifiedHas("hugetlb"))
    ) {
      throw new NotImplemented(
        "Set resources.hugepageLimits: the hugetlb controller is not mounted on v1 nor enabled for the unified cgroup on this host",
      );
    }
  }

  #unifiedHas(controller: string): boolean {
    const text = readText(this.#sys, `${this.#unified}/cgroup.controllers`) ?? "";
    return text.split(/\s+/).includes(controller);
  }

  #checkUnified(unified: Record<string, string>): void {
    for (const [key, value] of Object.entries(unified)) {
      checkUnifiedKey(key, value);
      const name = `resources.unified[${JSON.stringify(key)}]`;
      if (!this.#unified) {
        throw new InvalidArgument(`Set ${name}: cgroup v2 files cannot be set on a cgroup v1 host`);
      }
      if (!pathExists(this.#sys, `${this.#unified}/${key}`)) {
        throw new InvalidArgument(
          `Set ${name}: the resource controllers are on cgroup v1 on this host, and the unified cgroup has no file ${key}`,
        );
      }
    }
  }

  #applyMemory(m: NonNullable<LinuxResources["memory"]>): void {
    const limit = m.limit ?? 0;
    let swap = m.swap ?? 0;
    const wanted = limit !== 0 || swap !== 0 || (m.reservation ?? 0) !== 0 ||
      m.kernelTCP !== undefined ||
      (m.swappiness !== undefined && m.swappiness !== null && m.swappiness !== -1) ||
      m.disableOOMKiller !== undefined;
    if (!wanted) return;
    const dir = this.#need("memory", "memory");
    const memsw = `${dir}/memory.memsw.limit_in_bytes`;
    // Lifting the memory limit lifts the swap limit too, unless swap is given.
    if (limit === -1 && swap === 0 && pathExists(this.#sys, memsw)) swap = -1;
    const setLimit = () => {
      if (limit !== 0) this.#setMemoryLimit(dir, limit);
    };
    const setSwap = () => {
      if (swap !== 0) this.#write("memory.swap", memsw, intText(swap));
    };
    // memory.limit_in_bytes must stay <= memory.memsw.limit_in_bytes: raise swap first when it grows.
    const current = limit !== 0 && swap !== 0
      ? parseNumber(readText(this.#sys, `${dir}/memory.limit_in_bytes`))
      : undefined;
    if (limit !== 0 && swap !== 0 && (swap === -1 || (current !== undefined && current < swap))) {
      setSwap();
      setLimit();
    } else {
      setLimit();
      setSwap();
    }
    if (m.reservation) {
      this.#write(
        "memory.reservation",
        `${dir}/memory.soft_limit_in_bytes`,
        intText(m.reservation),
      );
    }
    if (m.kernelTCP !== undefined && m.kernelTCP !== 0) {
      const file = `${dir}/memory.kmem.tcp.limit_in_bytes`;
      if (pathExists(this.#sys, file)) this.#write("memory.kernelTCP", file, intText(m.kernelTCP));
      else {this.#warn(
          "resources.memory.kernelTCP ignored: this kernel has no memory.kmem.tcp.limit_in_bytes",
        );}
    }
    if (m.swappiness !== undefined && m.swappiness !== null && m.swappiness !== -1) {
      this.#write("memory.swappiness", `${dir}/memory.swappiness`, String(m.swappiness));
    }
    if (m.disableOOMKiller !== undefined) {
      this.#write(
        "memory.disableOOMKiller",
        `${dir}/memory.oom_control`,
        m.disableOOMKiller ? "1" : "0",
      );
    }
  }

  #setMemoryLimit(dir: string, limit: number): void {
    const path = `${dir}/memory.limit_in_bytes`;
    const err = this.#tryWrite(path, intText(limit));
    if (!err) return;
    if (err.errnoName === "EBUSY") {
      const usage = parseNumber(readText(this.#sys, `${dir}/memory.usage_in_bytes`));
      const peak = parseNumber(readText(this.#sys, `${dir}/memory.max_usage_in_bytes`));
      throw new FailedPrecondition(
        `Set resources.memory.limit: ${limit} is below what the cgroup uses (current usage ${usage}, peak ${peak})`,
        { cause: err },
      );
    }
    throw limitError("resources.memory.limit", path, intText(limit), err);
  }

  #applyCpu(c: NonNullable<LinuxResources["cpu"]>): void {
    const dirFor = (key: string) => this.#need("cpu", `cpu.${key}`);
    // Real-time: the kernel checks runtime against period; if the period write fails first, retry after runtime.
    if (c.realtimePeriod || c.realtimeRuntime) {
      const dir = dirFor(c.realtimePeriod ? "realtimePeriod" : "realtimeRuntime");
      let pendingPeriod: string | undefined;
      if (c.realtimePeriod) {
        const err = this.#tryWrite(`${dir}/cpu.rt_period_us`, intText(c.realtimePeriod));
        if (err && (err.errnoName !== "EINVAL" || !c.realtimeRuntime)) {
          throw limitError(
            "resources.cpu.realtimePeriod",
            `${dir}/cpu.rt_period_us`,
            intText(c.realtimePeriod),
            err,
          );
        }
        if (err) pendingPeriod = intText(c.realtimePeriod);
      }
      if (c.realtimeRuntime) {
        this.#write("cpu.realtimeRuntime", `${dir}/cpu.rt_runtime_us`, intText(c.realtimeRuntime));
        if (pendingPeriod) {
          this.#write("cpu.realtimePeriod", `${dir}/cpu.rt_period_us`, pendingPeriod);
        }
      }
    }
    if (c.shares) {
      const file = `${dirFor("shares")}/cpu.shares`;
      this.#write("cpu.shares", file, intText(c.shares));
      const got = parseNumber(readText(this.#sys, file));
      if (got !== undefined && got !== c.shares) {
        throw new InvalidArgument(
          `Set resources.cpu.shares: the kernel set ${got} for ${c.shares} (cgroup v1 allows 2 to 262144)`,
        );
      }
    }
    // Period, burst and quota are checked against each other: a period or burst the kernel
    // refuses (EINVAL) before the new quota is in is written again after it, as runc does.
    let pendingPeriod: string | undefined;
    let pendingBurst: string | undefined;
    if (c.period) {
      const dir = dirFor("period");
      const err = this.#tryWrite(`${dir}/cpu.cfs_period_us`, intText(c.period));
      if (err && (err.errnoName !== "EINVAL" || !c.quota)) {
        throw limitError(
          "resources.cpu.period",
          `${dir}/cpu.cfs_period_us`,
          intText(c.period),
          err,
        );
      }
      if (err) pendingPeriod = intText(c.period);
    }
    if (c.burst !== undefined && c.burst !== null) {
      const dir = dirFor("burst");
      const err = this.#tryWrite(`${dir}/cpu.cfs_burst_us`, intText(c.burst));
      if (err && (err.errnoName !== "EINVAL" || !c.quota)) {
        throw limitError("resources.cpu.burst", `${dir}/cpu.cfs_burst_us`, intText(c.burst), err);
      }
      if (err) pendingBurst = intText(c.burst);
    }
    if (c.quota) {
      const dir = dirFor("quota");
      this.#write("cpu.quota", `${dir}/cpu.cfs_quota_us`, intText(c.quota));
      if (pendingPeriod) this.#write("cpu.period", `${dir}/cpu.cfs_period_us`, pendingPeriod);
      if (pendingBurst) this.#write("cpu.burst", `${dir}/cpu.cfs_burst_us`, pendingBurst);
    }
    if (c.idle !== undefined && c.idle !== null) {
      this.#write("cpu.idle", `${dirFor("idle")}/cpu.idle`, String(c.idle));
    }
  }

  #applyBlkio(b: NonNullable<LinuxResources["blockIO"]>): void {
    const sys = this.#sys;
    const throttles = [
      ["throttleReadBpsDevice", "blkio.throttle.read_bps_device"],
      ["throttleWriteBpsDevice", "blkio.throttle.write_bps_device"],
      ["throttleReadIOPSDevice", "blkio.throttle.read_iops_device"],
      ["throttleWriteIOPSDevice", "blkio.throttle.write_iops_device"],
    ] as const;
    const wanted = !!b.weight || !!b.leafWeight || (b.weightDevice?.length ?? 0) > 0 ||
      throttles.some(([key]) => (b[key]?.length ?? 0) > 0);
    if (!wanted) return;
    const dir = this.#need("blkio", "blockIO");
    // Kernels with BFQ name the weight files blkio.bfq.*; CFQ kernels had blkio.*.
    const pick = (name: string) =>
      pathExists(sys, `${dir}/blkio.${name}`) ? `${dir}/blkio.${name}` : `${dir}/blkio.bfq.${name}`;
    if (b.weight) this.#write("blockIO.weight", pick("weight"), String(b.weight));
    if (b.leafWeight) {
      if (pathExists(sys, `${dir}/blkio.leaf_weight`)) {
        this.#write("blockIO.leafWeight", `${dir}/blkio.leaf_weight`, String(b.leafWeight));
      } else {this.#warn(
          "resources.blockIO.leafWeight ignored: this kernel has no blkio.leaf_weight",
        );}
    }
    (b.weightDevice ?? []).forEach((d, i) => {
      if (d.weight) {
        this.#write(
          `blockIO.weightDevice[${i}]`,
          pick("weight_device"),
          `${d.major}:${d.minor} ${d.weight}`,
        );
      }
      if (d.leafWeight) {
        const file = `${dir}/blkio.leaf_weight_device`;
        if (pathExists(sys, file)) {
          this.#write(
            `blockIO.weightDevice[${i}].leafWeight`,
            file,
            `${d.major}:${d.minor} ${d.leafWeight}`,
          );
        } else {this.#warn(
            `resources.blockIO.weightDevice[${i}].leafWeight ignored: this kernel has no blkio.leaf_weight_device`,
          );}
      }
    });
    for (const [key, file] of throttles) {
      (b[key] ?? []).forEach((d, i) => {
        this.#write(
          `blockIO.${key}[${i}]`,
          `${dir}/${file}`,
          `${d.major}:${d.minor} ${intText(d.rate)}`,
        );
      });
    }
  }

  enter(): void {
    for (const { dir } of this.#allDirs()) {
      try {
        this.#sys.writeFile(`${dir}/cgroup.procs`, "0");
      } catch (err) {
        throw new FailedPrecondition(`Join cgroup ${dir}: ${errnoOf(err) ?? String(err)}`, {
          cause: err,
        });
      }
    }
  }

  pids(): number[] {
    const all = new Set<number>();
    for (const { dir } of this.#allDirs()) {
      for (const pid of pidsUnder(this.#sys, dir)) all.add(pid);
    }
    return [...all].sort((a, b) => a - b);
  }

  signalAll(signal: number): void {
    const sys = this.#sys;
    if (signal === SIGKILL && this.#unified && pathExists(sys, `${this.#unified}/cgroup.kill`)) {
      try {
        sys.writeFile(`${this.#unified}/cgroup.kill`, "1");
      } catch {
        // fall back to killing pid by pid below
      }
    }
    const freezer = this.#dirs.freezer;
    signalProcesses(sys, this, signal, freezer !== undefined && pathExists(sys, freezer));
  }

  #freezer(action: string): string {
    const dir = this.#dirs.freezer;
    if (!dir) {
      throw new NotImplemented(`${action}: the freezer controller is not mounted on this host`);
    }
    return dir;
  }

  freeze(): void {
    const dir = this.#freezer("Freeze cgroup");
    const file = `${dir}/freezer.state`;
    const sys = this.#sys;
    // As runc does: keep asking; thaw now and then so processes that keep forking cannot hold it off.
    for (let i = 0; i < 1000; i++) {
      if (i % 50 === 49) {
        sys.writeFile(file, "THAWED");
        sleepSync(10);
      }
      writeLimit(sys, "freezer", file, "FROZEN");
      if (i % 25 === 24) sleepSync(10);
      const state = (readText(sys, file) ?? "").trim();
      if (state === "FROZEN") return;
      if (state !== "FREEZING") {
        throw new FailedPrecondition(
          `Freeze cgroup ${dir}: unexpected freezer.state ${JSON.stringify(state)}`,
        );
      }
      sleepSync(1);
    }
    sys.writeFile(file, "THAWED");
    throw new FailedPrecondition(`Freeze cgroup ${dir}: still FREEZING after 1000 attempts`);
  }

  thaw(): void {
    const dir = this.#freezer("Thaw cgroup");
    const file = `${dir}/freezer.state`;
    for (let i = 0; i < 1000; i++) {
      writeLimit(this.#sys, "freezer", file, "THAWED");
      const state = (readText(this.#sys, file) ?? "").trim();
      if (state === "THAWED") return;
      sleepSync(1);
    }
    throw new FailedPrecondition(`Thaw cgroup ${dir}: freezer.state did not become THAWED`);
  }

  frozen(): boolean {
    const dir = this.#dirs.freezer;
    if (!dir) return false;
    const state = (readText(this.#sys, `${dir}/freezer.state`) ?? "THAWED").trim();
    return state === "FROZEN" || state === "FREEZING";
  }

  stats(): CgroupStats {
    const sys = this.#sys;
    const first = this.#allDirs()[0];
    if (first) requireCgroup(sys, first.dir);
    const read = (controller: string, file: string) => {
      const dir = this.#dirs[controller];
      return dir ? readText(sys, `${dir}/${file}`) : undefined;
    };
    const num = (controller: string, file: string) => parseNumber(read(controller, file)) ?? 0;

    let userNs = num("cpuacct", "cpuacct.usage_user");
    let systemNs = num("cpuacct", "cpuacct.usage_sys");
    if (read("cpuacct", "cpuacct.usage_user") === undefined) {
      const ticks = parseFlatKeyed(read("cpuacct", "cpuacct.stat"));
      userNs = (ticks.user ?? 0) * 1e7; // USER_HZ is 100 on Linux
      systemNs = (ticks.system ?? 0) * 1e7;
    }
    const cpuStat = parseFlatKeyed(read("cpu", "cpu.stat"));
    const memStat = parseFlatKeyed(read("memory", "memory.stat"));
    const limit = parseNumber(read("memory", "memory.limit_in_bytes"));
    const usage = num("memory", "memory.usage_in_bytes");
    const memsw = parseNumber(read("memory", "memory.memsw.usage_in_bytes"));
    const pidsMax = parseNumber(read("pids", "pids.max"));
    const bytes = blkioTotals(
      read("blkio", "blkio.throttle.io_service_bytes_recursive") ??
        read("blkio", "blkio.throttle.io_service_bytes"),
    );
    const ops = blkioTotals(
      read("blkio", "blkio.throttle.io_serviced_recursive") ??
        read("blkio", "blkio.throttle.io_serviced"),
    );
    const stat = (k: string) => memStat[`total_${k}`] ?? memStat[k] ?? 0;
    return {
      cpu: {
        usageNs: num("cpuacct", "cpuacct.usage"),
        userNs,
        systemNs,
        periods: cpuStat.nr_periods ?? 0,
        throttledPeriods: cpuStat.nr_throttled ?? 0,
        throttledNs: cpuStat.throttled_time ?? 0,
      },
      memory: {
        usage,
        maxUsage: num("memory", "memory.max_usage_in_bytes"),
        limit: limit === undefined || limit >= V1_UNLIMITED ? null : limit,
        cache: stat("cache"),
        rss: stat("rss"),
        file: stat("active_file") + stat("inactive_file"),
        anon: stat("active_anon") + stat("inactive_anon"),
        swap: memsw === undefined ? 0 : Math.max(0, memsw - usage),
        // With memory+swap limited, hitting the limit counts in memsw.failcnt instead.
        failcnt: Math.max(num("memory", "memory.failcnt"), num("memory", "memory.memsw.failcnt")),
      },
      pids: { current: num("pids", "pids.current"), limit: pidsMax ?? null },
      io: {
        readBytes: bytes.read,
        writeBytes: bytes.write,
        readOps: ops.read,
        writeOps: ops.write,
      },
      oomKills: this.oomKillCount(),
    };
  }

  oomKillCount(): number {
    const dir = this.#dirs.memory;
    if (!dir) return 0;
    return parseFlatKeyed(readText(this.#sys, `${dir}/memory.oom_control`)).oom_kill ?? 0;
  }

  destroy(): void {
    let first: unknown;
    for (const { dir } of [...this.#allDirs()].reverse()) {
      try {
        removeTree(this.#sys, dir);
        removeEmptyParents(this.#sys, dir, this.#inner);
      } catch (err) {
        first ??= err;
      }
    }
    this.#made = [];
    if (first) throw first;
  }
}

/** Sums the Read and Write lines of a v1 blkio statistics file over all devices. */
function blkioTotals(text: string | undefined): { read: number; write: number } {
  const totals = { read: 0, write: 0 };
  for (const line of (text ?? "").split("\n")) {
    const [device, op, value] = line.trim().split(/\s+/);
    if (!device || !/^\d+:\d+$/.test(device) || value === undefined) continue;
    if (op === "Read") totals.read += Number(value);
    if (op === "Write") totals.write += Number(value);
  }
  return totals;
}
