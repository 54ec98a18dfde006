/**
 * The cgroup v2 manager: one directory in the unified hierarchy, following
 * runc's fs2 driver. Device rules become an eBPF program attached to the
 * directory (see devices.ts).
 *
 * @module
 */

import { FailedPrecondition, InvalidArgument, NotImplemented } from "../../errors.ts";
import type { Syscall } from "../../ffi/syscall.ts";
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
import {
  blkioToIoWeight,
  checkUnifiedKey,
  sharesToWeight,
  swapToV2,
  v2Limit,
  validateResources,
} from "./_validate.ts";
import {
  attachDeviceFilter,
  deviceFilterProgram,
  emulateDeviceRules,
  normalizeDeviceRules,
} from "./devices.ts";
import type { CgroupManager, CgroupStats } from "./types.ts";

const SIGKILL = 9;
/** How long freeze() and thaw() wait for cgroup.events to report the new state, milliseconds. */
const FREEZE_PATIENCE_MS = 5000;

/** The cgroup v2 {@link CgroupManager}. */
export class CgroupV2Manager implements CgroupManager {
  readonly version = 2 as const;
  readonly #sys: Syscall;
  readonly #base: string;
  readonly #dir: string;
  readonly #warn: (message: string) => void;
  readonly #inner: string | undefined;
  #made: string[] = [];
  #fresh = false;

  constructor(options: ManagerOptions) {
    const unified = options.layout.unified;
    if (!unified || !options.paths.unified) {
      throw new InvalidArgument("Manage cgroup: this host has no unified (v2) hierarchy");
    }
    this.#sys = options.sys;
    this.#base = unified.mountpoint;
    this.#dir = options.paths.unified;
    this.#warn = options.warn;
    this.#inner = options.paths.inner;
  }

  paths(): Record<string, string> {
    return { unified: this.#dir };
  }

  create(): void {
    const sys = this.#sys;
    const made: string[] = [];
    try {
      // Enable every controller the root offers, at every level from the root down to the
      // parent of our cgroup, as runc does (failures are left for apply() to report).
      const wanted = (readText(sys, `${this.#base}/cgroup.controllers`) ?? "").split(/\s+/).filter(
        Boolean,
      );
      const parts = this.#dir.slice(this.#base.length).split("/").filter(Boolean);
      let current = this.#base;
      for (let i = 0; i <= parts.length; i++) {
        if (i > 0) {
          current = `${current}/${parts[i - 1]}`;
          mkdirAll(sys, current.slice(0, current.lastIndexOf("/")), current, made);
          const type = (readText(sys, `${current}/cgroup.type`) ?? "").trim();
          if (type === "domain invalid") {
            throw new FailedPrecondition(
              `Create cgroup ${current}: its type is "domain invalid" (a parent holds processes and also has threaded children)`,
            );
          }
        }
        if (i < parts.length) this.#enableControllers(current, wanted);
      }
    } catch (err) {
      removeMade(sys, made);
      throw err;
    }
    this.#made = made;
    this.#fresh = true;
  }

  #enableControllers(dir: string, wanted: string[]): void {
    const sys = this.#sys;
    const available = (readText(sys, `${dir}/cgroup.controllers`) ?? "").split(/\s+/);
    const enabled = (readText(sys, `${dir}/cgroup.subtree_control`) ?? "").split(/\s+/);
    const missing = wanted.filter((c) => available.includes(c) && !enabled.includes(c));
    if (missing.length === 0) return;
    try {
      sys.writeFile(`${dir}/cgroup.subtree_control`, missing.map((c) => `+${c}`).join(" "));
    } catch {
      // One by one, so that one refused controller (EBUSY: the cgroup holds processes) does not keep out the others.
      for (const c of missing) {
        try {
          sys.writeFile(`${dir}/cgroup.subtree_control`, `+${c}`);
        } catch {
          // reported by apply() when a limit needs this controller
        }
      }
    }
  }

  apply(resources: LinuxResources): void {
    const fresh = this.#fresh;
    this.#fresh = false;
    try {
      validateResources(resources, 2);
      this.#apply(resources);
    } catch (err) {
      if (fresh) {
        removeMade(this.#sys, this.#made);
        this.#made = [];
      }
      throw err;
    }
  }

  #write(key: string, file: string, value: string): void {
    writeLimit(this.#sys, `resources.${key}`, `${this.#dir}/${file}`, value);
  }

  #has(file: string): boolean {
    return pathExists(this.#sys, `${this.#dir}/${file}`);
  }

  #apply(r: LinuxResources): void {
    // Checks that need the host, and the device filter, before the first write.
    for (const [key, value] of Object.entries(r.unified ?? {})) {
      checkUnifiedKey(key, value);
      if (!this.#has(key)) {
        throw new InvalidArgument(
          `Set resources.unified[${
            JSON.stringify(key)
          }]: cgroup ${this.#dir} has no file ${key} (unknown, or its controller is not enabled)`,
        );
      }
    }
    const program = r.devices
      ? deviceFilterProgram(emulateDeviceRules(normalizeDeviceRules(r.devices)))
      : undefined;
    this.#checkControllers(r);

    const c = r.cpu;
    if (c?.cpus) this.#write("cpu.cpus", "cpuset.cpus", c.cpus);
    if (c?.mems) this.#write("cpu.mems", "cpuset.mems", c.mems);
    if (r.memory) this.#applyMemory(r.memory);
    if (c) this.#applyCpu(c);
    if (r.pids) {
      this.#write("pids.limit", "pids.max", r.pids.limit > 0 ? intText(r.pids.limit) : "max");
    }
    if (r.blockIO) this.#applyIo(r.blockIO);
    (r.hugepageLimits ?? []).forEach((h, i) => {
      this.#write(`hugepageLimits[${i}]`, `hugetlb.${h.pageSize}.max`, intText(h.limit));
      const rsvd = `hugetlb.${h.pageSize}.rsvd.max`;
      if (this.#has(rsvd)) this.#write(`hugepageLimits[${i}]`, rsvd, intText(h.limit));
    });
    for (const [device, limits] of Object.entries(r.rdma ?? {})) {
      this.#write(`rdma[${JSON.stringify(device)}]`, "rdma.max", rdmaLine(device, limits));
    }
    if (r.network?.classID !== undefined || r.network?.priorities?.length) {
      this.#warn("resources.network ignored: cgroup v2 has no net_cls or net_prio controller");
    }
    if (program) attachDeviceFilter(this.#dir, program, { sys: this.#sys });
    for (const [key, value] of Object.entries(r.unified ?? {})) {
      this.#write(`unified[${JSON.stringify(key)}]`, key, value);
    }
  }

  /**
   * Throws FailedPrecondition before the first write when `r` needs a controller that is not
   * enabled for this cgroup (the parent's cgroup.subtree_control could not take it).
   */
  #checkControllers(r: LinuxResources): void {
    const text = readText(this.#sys, `${this.#dir}/cgroup.controllers`);
    if (text === undefined) return; // the write itself will say what is missing
    const enabled = text.split(/\s+/);
    const need = (controller: string, key: string) => {
      if (!enabled.includes(controller)) {
        throw new FailedPrecondition(
          `Set resources.${key}: the ${controller} controller is not enabled for cgroup ${this.#dir} (it has: ${
            text.trim() || "none"
          })`,
        );
      }
    };
    const c = r.cpu, m = r.memory, b = r.blockIO;
    if (c?.cpus || c?.mems) need("cpuset", c.cpus ? "cpu.cpus" : "cpu.mems");
    if (m && (m.limit || m.swap || m.reservation)) need("memory", "memory");
    if (c && (c.shares || c.quota || c.period || (c.burst ?? null) !== null)) need("cpu", "cpu");
    if (r.pids) need("pids", "pids.limit");
    if (b && Object.values(b).some((v) => Array.isArray(v) ? v.length > 0 : !!v)) {
      need("io", "blockIO");
    }
    if (r.hugepageLimits?.length) need("hugetlb", "hugepageLimits");
    if (Object.keys(r.rdma ?? {}).length) need("rdma", "rdma");
  }

  #applyMemory(m: NonNullable<LinuxResources["memory"]>): void {
    const swap = swapToV2(m.swap, m.limit);
    if (swap !== undefined) {
      const value = v2Limit(swap);
      try {
        this.#sys.writeFile(`${this.#dir}/memory.swap.max`, value);
      } catch (err) {
        // Without swap accounting there is no memory.swap.max: "no swap" and "any swap" then hold anyway.
        if (!(errnoOf(err) === "ENOENT" && (value === "max" || value === "0"))) {
          throw limitError("resources.memory.swap", `${this.#dir}/memory.swap.max`, value, err);
        }
      }
    }
    if (m.limit) this.#write("memory.limit", "memory.max", v2Limit(m.limit));
    if (m.reservation) this.#write("memory.reservation", "memory.low", v2Limit(m.reservation));
    if (m.swappiness !== undefined && m.swappiness !== null && m.swappiness !== -1) {
      this.#warn("resources.memory.swappiness ignored: cgroup v2 has no per-cgroup swappiness");
    }
    if (m.disableOOMKiller) {
      this.#warn(
        "resources.memory.disableOOMKiller ignored: cgroup v2 cannot disable the OOM killer",
      );
    }
    if (m.kernelTCP) {
      this.#warn("resources.memory.kernelTCP ignored: cgroup v2 has no separate TCP memory limit");
    }
  }

  #applyCpu(c: NonNullable<LinuxResources["cpu"]>): void {
    if (c.idle !== undefined && c.idle !== null) {
      this.#write("cpu.idle", "cpu.idle", String(c.idle));
    }
    if (c.shares) this.#write("cpu.shares", "cpu.weight", String(sharesToWeight(c.shares)));
    // A burst larger than the current quota allows is refused (EINVAL) until the new quota is in.
    let pendingBurst: string | undefined;
    if (c.burst !== undefined && c.burst !== null) {
      try {
        this.#sys.writeFile(`${this.#dir}/cpu.max.burst`, intText(c.burst));
      } catch (err) {
        if (errnoOf(err) !== "EINVAL" || !(c.quota || c.period)) {
          throw limitError(
            "resources.cpu.burst",
            `${this.#dir}/cpu.max.burst`,
            intText(c.burst),
            err,
          );
        }
        pendingBurst = intText(c.burst);
      }
    }
    if (c.quota || c.period) {
      let quota = c.quota && c.quota > 0 ? intText(c.quota) : c.quota === -1 ? "max" : undefined;
      // Only a period given: keep the quota in place.
      quota ??= (readText(this.#sys, `${this.#dir}/cpu.max`) ?? "max").trim().split(/\s+/)[0] ??
        "max";
      const value = c.period ? `${quota} ${intText(c.period)}` : quota;
      this.#write(c.quota ? "cpu.quota" : "cpu.period", "cpu.max", value);
      if (pendingBurst) this.#write("cpu.burst", "cpu.max.burst", pendingBurst);
    }
  }

  #applyIo(b: NonNullable<LinuxResources["blockIO"]>): void {
    const bfq = this.#has("io.bfq.weight");
    if (b.weight) {
      if (bfq) this.#write("blockIO.weight", "io.bfq.weight", String(b.weight));
      else this.#write("blockIO.weight", "io.weight", String(blkioToIoWeight(b.weight)));
    }
    if (b.leafWeight) {
      this.#warn("resources.blockIO.leafWeight ignored: cgroup v2 has no leaf weight");
    }
    (b.weightDevice ?? []).forEach((d, i) => {
      const key = `blockIO.weightDevice[${i}]`;
      if (d.weight) {
        if (bfq) this.#write(key, "io.bfq.weight", `${d.major}:${d.minor} ${d.weight}`);
        else this.#write(key, "io.weight", `${d.major}:${d.minor} ${blkioToIoWeight(d.weight)}`);
      }
      if (d.leafWeight) {
        this.#warn(`resources.${key}.leafWeight ignored: cgroup v2 has no leaf weight`);
      }
    });
    const throttles = [
      ["throttleReadBpsDevice", "rbps"],
      ["throttleWriteBpsDevice", "wbps"],
      ["throttleReadIOPSDevice", "riops"],
      ["throttleWriteIOPSDevice", "wiops"],
    ] as const;
    for (const [key, name] of throttles) {
      (b[key] ?? []).forEach((d, i) => {
        this.#write(
          `blockIO.${key}[${i}]`,
          "io.max",
          `${d.major}:${d.minor} ${name}=${intText(d.rate)}`,
        );
      });
    }
  }

  enter(): void {
    try {
      this.#sys.writeFile(`${this.#dir}/cgroup.procs`, "0");
    } catch (err) {
      throw new FailedPrecondition(`Join cgroup ${this.#dir}: ${errnoOf(err) ?? String(err)}`, {
        cause: err,
      });
    }
  }

  pids(): number[] {
    return [...new Set(pidsUnder(this.#sys, this.#dir))].sort((a, b) => a - b);
  }

  signalAll(signal: number): void {
    const sys = this.#sys;
    if (signal === SIGKILL && this.#has("cgroup.kill")) {
      this.#write("cgroup.kill", "cgroup.kill", "1");
      return;
    }
    signalProcesses(sys, this, signal, this.#has("cgroup.freeze"));
  }

  #setFrozen(frozen: boolean): void {
    const action = frozen ? "Freeze" : "Thaw";
    if (!this.#has("cgroup.freeze")) {
      requireCgroup(this.#sys, this.#dir);
      throw new NotImplemented(
        `${action} cgroup ${this.#dir}: this kernel has no cgroup.freeze (it needs Linux 5.2)`,
      );
    }
    this.#write("freezer", "cgroup.freeze", frozen ? "1" : "0");
    const want = frozen ? 1 : 0;
    let waited = 0;
    for (let wait = 1;; wait = Math.min(wait * 2, 20)) {
      const events = parseFlatKeyed(readText(this.#sys, `${this.#dir}/cgroup.events`));
      if (events.frozen === undefined || events.frozen === want) return;
      if (waited >= FREEZE_PATIENCE_MS) {
        if (frozen) this.#sys.writeFile(`${this.#dir}/cgroup.freeze`, "0");
        throw new FailedPrecondition(
          `${action} cgroup ${this.#dir}: cgroup.events did not report frozen ${want}`,
        );
      }
      sleepSync(wait);
      waited += wait;
    }
  }

  freeze(): void {
    this.#setFrozen(true);
  }

  thaw(): void {
    this.#setFrozen(false);
  }

  frozen(): boolean {
    return (readText(this.#sys, `${this.#dir}/cgroup.freeze`) ?? "0").trim() === "1";
  }

  stats(): CgroupStats {
    const sys = this.#sys;
    requireCgroup(sys, this.#dir);
    const read = (file: string) => readText(sys, `${this.#dir}/${file}`);
    const num = (file: string) => parseNumber(read(file)) ?? 0;
    const cpu = parseFlatKeyed(read("cpu.stat"));
    const mem = parseFlatKeyed(read("memory.stat"));
    const events = parseFlatKeyed(read("memory.events"));
    const io = ioTotals(read("io.stat"));
    return {
      cpu: {
        usageNs: (cpu.usage_usec ?? 0) * 1000,
        userNs: (cpu.user_usec ?? 0) * 1000,
        systemNs: (cpu.system_usec ?? 0) * 1000,
        periods: cpu.nr_periods ?? 0,
        throttledPeriods: cpu.nr_throttled ?? 0,
        throttledNs: (cpu.throttled_usec ?? 0) * 1000,
      },
      memory: {
        usage: num("memory.current"),
        maxUsage: num("memory.peak"),
        limit: parseNumber(read("memory.max")) ?? null,
        cache: mem.file ?? 0,
        rss: mem.anon ?? 0,
        file: mem.file ?? 0,
        anon: mem.anon ?? 0,
        swap: num("memory.swap.current"),
        failcnt: events.max ?? 0,
      },
      pids: { current: num("pids.current"), limit: parseNumber(read("pids.max")) ?? null },
      io,
      oomKills: events.oom_kill ?? 0,
    };
  }

  oomKillCount(): number {
    return parseFlatKeyed(readText(this.#sys, `${this.#dir}/memory.events`)).oom_kill ?? 0;
  }

  destroy(): void {
    removeTree(this.#sys, this.#dir);
    removeEmptyParents(this.#sys, this.#dir, this.#inner);
    this.#made = [];
  }
}

/** Sums io.stat (`8:0 rbytes=… wbytes=… rios=… wios=…`) over all devices. */
function ioTotals(text: string | undefined): CgroupStats["io"] {
  const totals = { readBytes: 0, writeBytes: 0, readOps: 0, writeOps: 0 };
  for (const line of (text ?? "").split("\n")) {
    for (const field of line.trim().split(/\s+/).slice(1)) {
      const [key, value] = field.split("=");
      const n = Number(value);
      if (!Number.isFinite(n)) continue;
      if (key === "rbytes") totals.readBytes += n;
      if (key === "wbytes") totals.writeBytes += n;
      if (key === "rios") totals.readOps += n;
      if (key === "wios") totals.writeOps += n;
    }
  }
  return totals;
}
