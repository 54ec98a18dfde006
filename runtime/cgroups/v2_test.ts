import { FailedPrecondition, InvalidArgument, NotFound } from "../../errors.ts";
import {
  BPF_PROG_ATTACH,
  BPF_PROG_LOAD,
  BPF_PROG_QUERY,
  S_IFDIR,
  S_IFREG,
} from "../../ffi/constants.ts";
import { libcSyscall } from "../../ffi/libc.ts";
import { signalOf } from "../../ffi/syscall.ts";
import { assert, assertEquals, assertStringIncludes, assertThrows } from "../../tests/assert.ts";
import { requires, withTempDir } from "../../tests/harness.ts";
import { DirCgroupfs, FakeCgroupfs, V2_CONTROLLERS, v2Files } from "./_testing.ts";
import {
  blkioToIoWeight,
  type CgroupManager,
  cgroupManager,
  type LinuxResources,
  sharesToWeight,
  swapToV2,
} from "./mod.ts";

const MiB = 1024 * 1024;

function fakeHost(): FakeCgroupfs {
  const fs = new FakeCgroupfs("/cg", "v2");
  fs.addFile("/cg/own", S_IFDIR | 0o755);
  for (const [name, content] of Object.entries(v2Files(V2_CONTROLLERS))) {
    fs.addFile(`/cg/own/${name}`, S_IFREG | 0o644, content);
  }
  return fs;
}

function managerOn(fs: FakeCgroupfs, warnings: string[] = []): CgroupManager {
  return cgroupManager({
    id: "web",
    sys: fs,
    layout: fs.layout,
    selfCgroup: "0::/own\n",
    warn: (m) => warnings.push(m),
  });
}

const RESOURCES: LinuxResources = {
  cpu: { cpus: "0-1", shares: 1024, quota: 50000, period: 100000, burst: 1000 },
  memory: { limit: 32 * MiB, swap: 48 * MiB, reservation: 8 * MiB },
  pids: { limit: 10 },
  blockIO: { weight: 500, throttleReadBpsDevice: [{ major: 8, minor: 0, rate: MiB }] },
  hugepageLimits: [{ pageSize: "2MB", limit: 4 * MiB }],
  devices: [{ allow: false, access: "rwm" }, {
    allow: true,
    type: "c",
    major: 1,
    minor: 3,
    access: "rwm",
  }],
  unified: { "memory.high": "30M" },
};

Deno.test("sharesToWeight() maps cpu.shares onto cpu.weight as runc does (1024 to 100)", () => {
  const cases: [number, number][] = [
    [0, 0],
    [1, 1],
    [2, 1],
    [3, 2],
    [512, 59],
    [1024, 100],
    [2048, 174],
    [262143, 10000],
    [262144, 10000],
    [262145, 10000],
  ];
  for (const [shares, weight] of cases) {
    assertEquals(sharesToWeight(shares), weight, `shares ${shares}`);
  }
});

Deno.test("blkioToIoWeight() maps blkio weights 10..1000 onto io.weight 1..10000", () => {
  assertEquals([0, 10, 500, 1000].map(blkioToIoWeight), [0, 1, 4950, 10000]);
});

Deno.test("swapToV2() turns memory+swap into memory.swap.max", () => {
  const cases: [number | undefined, number | undefined, number | undefined][] = [
    [undefined, undefined, undefined],
    [0, 0, undefined],
    [-1, 0, -1],
    [-1, -1, -1],
    [0, -1, -1], // no memory limit and no swap limit given: lift swap too
    [-1, 1000, -1],
    [1000, 1000, 0], // swap equal to memory: no swap at all
    [500, 200, 300],
  ];
  for (const [swap, limit, want] of cases) {
    assertEquals(swapToV2(swap, limit), want, `swap ${swap} limit ${limit}`);
  }
  assertThrows(() => swapToV2(300, 400), InvalidArgument, "below memory.limit");
  assertThrows(() => swapToV2(300, 0), InvalidArgument, "needs a memory.limit");
  assertThrows(() => swapToV2(300, -1), InvalidArgument, "needs a memory.limit");
});

Deno.test("v2 create() enables the root's controllers in every ancestor, then makes the directories", () => {
  const fs = fakeHost();
  const cg = managerOn(fs);
  assertEquals(cg.paths(), { unified: "/cg/own/tug/web" });
  cg.create();
  const all = "+cpuset +cpu +io +memory +hugetlb +pids +rdma";
  assertEquals(fs.writes(), [
    ["/cg/cgroup.subtree_control", all],
    ["/cg/own/cgroup.subtree_control", all],
    ["/cg/own/tug/cgroup.subtree_control", all],
  ]);
  const made = fs.calls.filter((c) => c.name === "mkdir" && c.args[0] !== "/cg/own").map((c) =>
    c.args[0]
  );
  assertEquals(made, ["/cg/own/tug", "/cg/own/tug/web"]);
  assertEquals(fs.text("/cg/own/tug/web/cgroup.controllers").trim(), V2_CONTROLLERS.join(" "));
  // A second container under the same parent finds the controllers enabled already.
  const before = fs.writes().length;
  cgroupManager({ id: "db", sys: fs, layout: fs.layout, selfCgroup: "0::/own\n" }).create();
  assertEquals(fs.writes().length, before);
});

Deno.test("v2 create() enables controllers one by one when the kernel refuses some", () => {
  class Refusing extends FakeCgroupfs {
    override writeFile(path: string, data: string | Uint8Array, options = {}): void {
      if (path === "/cg/own/cgroup.subtree_control" && String(data).includes("+cpu ")) {
        super.writeFile("/nonexistent/refused", data); // recorded, then fails like the kernel would
      }
      if (path === "/cg/own/cgroup.subtree_control" && data === "+cpu") {
        super.writeFile("/nonexistent/refused", data);
      }
      super.writeFile(path, data, options);
    }
  }
  const fs = new Refusing("/cg", "v2");
  fs.addFile("/cg/own", S_IFDIR | 0o755);
  for (const [name, content] of Object.entries(v2Files(V2_CONTROLLERS))) {
    fs.addFile(`/cg/own/${name}`, S_IFREG | 0o644, content);
  }
  managerOn(fs).create();
  assertEquals(
    fs.text("/cg/own/tug/web/cgroup.controllers").trim(),
    "cpuset io memory hugetlb pids rdma",
  );
});

Deno.test("v2 apply() writes each limit to its v2 file, converting shares, swap and blkio weights", () => {
  const fs = fakeHost();
  const cg = managerOn(fs);
  cg.create();
  const start = fs.calls.length;
  cg.apply(RESOURCES);
  const d = "/cg/own/tug/web";
  const writes = fs.calls.slice(start).filter((c) => c.name === "writeFile").map((
    c,
  ) => [c.args[0], c.args[1]]);
  assertEquals(writes, [
    [`${d}/cpuset.cpus`, "0-1"],
    [`${d}/memory.swap.max`, String(16 * MiB)],
    [`${d}/memory.max`, String(32 * MiB)],
    [`${d}/memory.low`, String(8 * MiB)],
    [`${d}/cpu.weight`, "100"],
    [`${d}/cpu.max.burst`, "1000"],
    [`${d}/cpu.max`, "50000 100000"],
    [`${d}/pids.max`, "10"],
    [`${d}/io.weight`, "4950"],
    [`${d}/io.max`, "8:0 rbps=1048576"],
    [`${d}/hugetlb.2MB.max`, String(4 * MiB)],
    [`${d}/hugetlb.2MB.rsvd.max`, String(4 * MiB)],
    [`${d}/memory.high`, "30M"],
  ]);
  const bpf = fs.calls.slice(start).filter((c) => c.name === "bpf").map((c) => c.args[0]);
  assertEquals(bpf, [BPF_PROG_QUERY, BPF_PROG_LOAD, BPF_PROG_ATTACH]);
  assertEquals(fs.fds.size, 0);
});

Deno.test("v2 apply() lifts limits with max and keeps the quota when only the period changes", () => {
  const fs = fakeHost();
  const cg = managerOn(fs);
  cg.create();
  cg.apply({ cpu: { quota: 50000, period: 100000 } });
  cg.apply({ cpu: { period: 200000 } });
  assertEquals(fs.text("/cg/own/tug/web/cpu.max"), "50000 200000");
  cg.apply({ cpu: { quota: -1 }, memory: { limit: -1 }, pids: { limit: -1 } });
  assertEquals(fs.text("/cg/own/tug/web/cpu.max"), "max");
  assertEquals(fs.text("/cg/own/tug/web/memory.max"), "max");
  assertEquals(fs.text("/cg/own/tug/web/memory.swap.max"), "max");
  assertEquals(fs.text("/cg/own/tug/web/pids.max"), "max");
});

Deno.test("v2 apply() rejects bad values and unknown unified keys with InvalidArgument naming the key, before any write", () => {
  const cases: [LinuxResources, string][] = [
    [{ cpu: { cpus: "abc" } }, "cpu.cpus"],
    [{ cpu: { realtimeRuntime: 1000 } }, "cpu.realtimeRuntime"],
    [{ memory: { swap: 64 * MiB } }, "memory.swap"],
    [{ memory: { limit: -2 } }, "memory.limit"],
    [{ unified: { "memory.bogus": "1" } }, 'unified["memory.bogus"]'],
    [{ unified: { "cgroup.kill": "1" } }, 'unified["cgroup.kill"]'],
    [{
      devices: [{ allow: true, type: "c", major: 1, access: "rwm" }, {
        allow: false,
        type: "c",
        major: 1,
        minor: 3,
        access: "r",
      }],
    }, "devices[1]"],
  ];
  for (const [resources, key] of cases) {
    const fs = fakeHost();
    const cg = managerOn(fs);
    cg.create();
    const calls = fs.calls.length;
    assertThrows(() => cg.apply(resources), InvalidArgument, key);
    assertEquals(
      fs.calls.slice(calls).filter((c) => c.name === "writeFile" || c.name === "bpf"),
      [],
      `nothing written for ${key}`,
    );
  }
});

Deno.test("v2 apply() warns about what cgroup v2 cannot do instead of failing", () => {
  const fs = fakeHost();
  const warnings: string[] = [];
  const cg = managerOn(fs, warnings);
  cg.create();
  cg.apply({
    memory: { swappiness: 10, disableOOMKiller: true, kernel: 1 },
    network: { classID: 1 },
  });
  assertEquals(warnings.length, 3);
  assertStringIncludes(warnings.join("\n"), "memory.swappiness ignored");
  assertStringIncludes(warnings.join("\n"), "disableOOMKiller ignored");
  assertStringIncludes(warnings.join("\n"), "network ignored");
});

Deno.test("v2 create() and apply() leave nothing behind when any call fails", () => {
  const probe = fakeHost();
  const p = managerOn(probe);
  p.create();
  p.apply(RESOURCES);
  const total = probe.calls.length;
  const initial = fakeHost().dirs("/cg");
  for (let n = 1; n <= total; n++) {
    const fs = fakeHost();
    fs.failAt(n, "EIO");
    const cg = managerOn(fs);
    try {
      cg.create();
      cg.apply(RESOURCES);
      cg.destroy();
    } catch {
      // expected for most n
    }
    assertEquals(
      fs.dirs("/cg"),
      initial,
      `after a failure at call ${n} (${fs.calls[n - 1]?.name} ${fs.calls[n - 1]?.args[0]})`,
    );
  }
});

Deno.test("v2 enter(), freeze(), thaw(), signalAll() and stats() use the unified files", () => {
  const fs = fakeHost();
  const cg = managerOn(fs);
  cg.create();
  const d = "/cg/own/tug/web";
  cg.enter();
  assertEquals(fs.writes().at(-1), [`${d}/cgroup.procs`, "0"]);
  cg.freeze();
  assertEquals(cg.frozen(), true);
  cg.thaw();
  assertEquals(cg.frozen(), false);
  fs.addFile(`${d}/cgroup.procs`, S_IFREG | 0o644, "1234\n1235\n");
  assertEquals(cg.pids(), [1234, 1235]);
  const mark = fs.calls.length;
  cg.signalAll(15);
  assertEquals(
    fs.calls.slice(mark).filter((c) => c.name === "kill").map((c) => c.args),
    [[1234, 15], [1235, 15]],
  );
  assertEquals(cg.frozen(), false, "thawed again after signalling");
  cg.signalAll(9);
  assertEquals(fs.writes().at(-1), [`${d}/cgroup.kill`, "1"]);
  cg.apply({ memory: { limit: 32 * MiB }, pids: { limit: 5 } });
  assertEquals(cg.stats(), {
    cpu: {
      usageNs: 7000,
      userNs: 5000,
      systemNs: 2000,
      periods: 4,
      throttledPeriods: 1,
      throttledNs: 3000,
    },
    memory: {
      usage: 4096,
      maxUsage: 8192,
      limit: 32 * MiB,
      cache: 400,
      rss: 600,
      file: 400,
      anon: 600,
      swap: 0,
      failcnt: 3,
    },
    pids: { current: 0, limit: 5 },
    io: { readBytes: 100, writeBytes: 200, readOps: 3, writeOps: 4 },
    oomKills: 1,
  });
  assertEquals(cg.oomKillCount(), 1);
  fs.addFile(`${d}/cgroup.procs`, S_IFREG | 0o644, "");
  cg.destroy();
  cg.destroy();
  assertThrows(() => cg.stats(), NotFound);
});

Deno.test("v2 manager on a cgroupfs laid out in a temporary directory creates, limits and removes nested cgroups", async () => {
  await withTempDir(async (root) => {
    const sys = new DirCgroupfs(root, "v2");
    const cg = cgroupManager({ id: "web", sys, root, selfCgroup: "0::/\n" });
    assertEquals(cg.version, 2);
    const dir = `${root}/tug/web`;
    assertEquals(cg.paths(), { unified: dir });
    cg.create();
    assertEquals(
      (await Deno.readTextFile(`${root}/cgroup.subtree_control`)).trim(),
      V2_CONTROLLERS.join(" "),
    );
    cg.apply({
      memory: { limit: 64 * MiB, swap: 64 * MiB },
      cpu: { shares: 2048 },
      pids: { limit: 3 },
    });
    assertEquals(await Deno.readTextFile(`${dir}/memory.max`), String(64 * MiB));
    assertEquals(await Deno.readTextFile(`${dir}/memory.swap.max`), "0");
    assertEquals(await Deno.readTextFile(`${dir}/cpu.weight`), "174");
    assertEquals(await Deno.readTextFile(`${dir}/pids.max`), "3");
    assertThrows(
      () => cg.apply({ unified: { "memory.nonexistent": "1" } }),
      InvalidArgument,
      "memory.nonexistent",
    );
    // The container made cgroups of its own inside.
    sys.mkdir(`${dir}/inner`, 0o755);
    sys.mkdir(`${dir}/inner/deeper`, 0o755);
    cg.destroy();
    assertEquals(
      await Deno.stat(`${root}/tug`).then(() => true, () => false),
      false,
      "tug/ is removed once empty",
    );
  });
});

// ---------------------------------------------------------------------------
// The real unified hierarchy of this machine (root), nested under our own unified cgroup.

const sys = libcSyscall();
const UNIFIED = "/sys/fs/cgroup/unified";
const REAL = requires("root", "cgroup2", "busybox") ||
  !isDir(UNIFIED) && !isFile("/sys/fs/cgroup/cgroup.controllers");

function isDir(p: string): boolean {
  try {
    return Deno.statSync(p).isDirectory;
  } catch {
    return false;
  }
}

function isFile(p: string): boolean {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
}

/** The unified hierarchy's mount point on this machine: /sys/fs/cgroup/unified (hybrid) or /sys/fs/cgroup. */
function unifiedRoot(): string {
  return isFile("/sys/fs/cgroup/cgroup.controllers") ? "/sys/fs/cgroup" : UNIFIED;
}

function spawnInto(cg: CgroupManager, args: string[]): number {
  const pid = sys.fork();
  if (pid === 0) {
    try {
      cg.enter();
      sys.execve("/bin/busybox", ["busybox", ...args], ["PATH=/bin:/usr/bin"]);
    } catch {
      sys.exit(127);
    }
  }
  return pid;
}

function execed(pid: number): boolean {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).startsWith("busybox\0");
  } catch {
    return false;
  }
}

function waitFor(check: () => boolean, what: string): void {
  for (let i = 0; i < 1000; i++) {
    if (check()) return;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function reap(pid: number): void {
  try {
    sys.kill(pid, 9);
  } catch {
    // gone
  }
  try {
    sys.waitpid(pid, 0);
  } catch {
    // reaped
  }
}

/** Runs `fn` with a v2 manager on the real unified hierarchy; restores the root's subtree_control afterwards. */
async function withUnifiedCgroup(
  fn: (cg: CgroupManager, id: string) => void | Promise<void>,
): Promise<void> {
  const root = unifiedRoot();
  const subtree = `${root}/cgroup.subtree_control`;
  const enabledBefore = Deno.readTextFileSync(subtree).trim().split(/\s+/).filter(Boolean);
  const id = `tug-test-${crypto.randomUUID().slice(0, 8)}`;
  const cg = cgroupManager({ id, cgroupsPath: id, root });
  const own = Deno.readTextFileSync("/proc/self/cgroup").split("\n").find((l) =>
    l.startsWith("0::")
  )!.slice(3);
  try {
    assertEquals(cg.version, 2);
    assertEquals(cg.paths(), { unified: `${root}${own === "/" ? "" : own}/${id}` });
    cg.create();
    await fn(cg, id);
  } finally {
    cg.signalAll(9); // everything in the test cgroup is ours
    waitFor(() => cg.pids().length === 0, "the test cgroup to empty");
    cg.destroy();
    // create() enabled the root's controllers down to our parent: take back what it added at the root.
    const added = Deno.readTextFileSync(subtree).trim().split(/\s+/).filter((c) =>
      c && !enabledBefore.includes(c)
    );
    if (added.length) Deno.writeTextFileSync(subtree, added.map((c) => `-${c}`).join(" "));
  }
  assertEquals(isDir(cg.paths().unified!), false, "the cgroup is removed");
}

Deno.test({
  name:
    "a real unified cgroup holds a forked child, freezes and thaws it, and kills it with cgroup.kill",
  ignore: REAL,
  fn: () =>
    withUnifiedCgroup((cg, id) => {
      const pid = spawnInto(cg, ["sleep", "60"]);
      try {
        waitFor(() => execed(pid), "the child to join and exec");
        assertEquals(cg.pids(), [pid]);
        assertStringIncludes(Deno.readTextFileSync(`/proc/${pid}/cgroup`), `0::/${id}\n`);
        cg.freeze();
        assertEquals(cg.frozen(), true);
        assertStringIncludes(
          Deno.readTextFileSync(`${cg.paths().unified}/cgroup.events`),
          "frozen 1",
        );
        cg.thaw();
        assertEquals(cg.frozen(), false);
        assert(cg.stats().cpu.usageNs >= 0);
        cg.signalAll(9);
        assertEquals(signalOf(sys.waitpid(pid, 0).status), 9);
      } finally {
        reap(pid);
      }
    }),
});

Deno.test({
  name:
    "a real unified cgroup's eBPF device filter allows exactly the listed devices, and a new apply() replaces it",
  ignore: REAL,
  fn: () =>
    withUnifiedCgroup((cg) => {
      const run = (script: string) => {
        const pid = spawnInto(cg, ["sh", "-c", script]);
        return sys.waitpid(pid, 0).status >> 8;
      };
      const rules = [
        { allow: false, access: "rwm" },
        { allow: true, type: "c", major: 1, minor: 3, access: "rwm" }, // /dev/null
      ];
      cg.apply({ devices: rules });
      assertEquals(run("echo hi >/dev/null"), 0);
      assert(run("head -c 1 /dev/zero >/dev/null 2>/dev/null") !== 0, "/dev/zero is refused");
      cg.apply({
        devices: [...rules, { allow: true, type: "c", major: 1, minor: 5, access: "r" }],
      });
      assertEquals(
        run("head -c 1 /dev/zero >/dev/null"),
        0,
        "/dev/zero is allowed by the new filter alone",
      );
      assert(run("echo x 2>/dev/null >/dev/zero") !== 0, "writing /dev/zero is still refused");
    }),
});

Deno.test("v2 apply() refuses a limit whose controller is not enabled before writing anything", () => {
  const fs = fakeHost();
  fs.writeFile("/cg/own/cgroup.controllers", "cpu memory\n"); // what /cg/own can pass down
  fs.writeFile("/cg/own/cgroup.subtree_control", "");
  const cg = managerOn(fs);
  cg.create();
  assertEquals(fs.text("/cg/own/tug/web/cgroup.controllers").trim(), "cpu memory");
  const calls = fs.calls.length;
  assertThrows(
    () => cg.apply({ memory: { limit: MiB }, pids: { limit: 3 } }),
    FailedPrecondition,
    "pids controller is not enabled",
  );
  assertEquals(fs.calls.slice(calls).filter((c) => c.name === "writeFile"), []);
});
