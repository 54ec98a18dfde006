import { assert, assertEquals, assertMatch } from "../tests/assert.ts";
import {
  CLONE_NEWIPC,
  CLONE_NEWNET,
  CLONE_NEWNS,
  CLONE_NEWUTS,
  MS_BIND,
  MS_REC,
  MS_SLAVE,
  PROC_SUPER_MAGIC,
  S_IFDIR,
} from "../ffi/constants.ts";
import { FakeExec, FakeExit, FakeSyscall } from "../ffi/fake.ts";
import { closeOtherFds, initContainer, type InitContext } from "./init.ts";
import { planContainer } from "./plan.ts";
import type { Spec } from "./spec.ts";

const ROOTFS = "/bundle/rootfs";

function spec(overrides: Partial<Spec> = {}): Spec {
  return {
    ociVersion: "1.1.0",
    root: { path: "rootfs" },
    hostname: "box",
    process: {
      user: { uid: 1000, gid: 1000, additionalGids: [10] },
      args: ["/bin/sh", "-c", "true"],
      env: ["PATH=/bin"],
      cwd: "/",
    },
    mounts: [
      { destination: "/proc", type: "proc", source: "proc" },
      { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "mode=755"] },
    ],
    linux: {
      namespaces: [{ type: "pid" }, { type: "mount" }, { type: "uts" }, { type: "ipc" }, {
        type: "network",
      }],
      maskedPaths: ["/proc/kcore"],
      readonlyPaths: ["/proc/sys"],
    },
    ...overrides,
  };
}

async function plan(s: Spec) {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(`${dir}/rootfs`);
  try {
    const p = planContainer(s, { id: "c1", bundle: dir });
    p.rootfs = ROOTFS;
    p.bundle = "/bundle";
    return p;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function fakeWithRootfs(): FakeSyscall {
  const sys = new FakeSyscall();
  sys.addFile(ROOTFS, S_IFDIR | 0o755);
  sys.addFile(`${ROOTFS}/bin/sh`, 0o100755);
  sys.addFile("/bin/sh", 0o100755); // what the init sees after pivot_root (the fake has one namespace)
  sys.addFile("/proc/kcore", 0o100400);
  sys.addFile("/proc/sys", S_IFDIR | 0o555);
  sys.addFile("/proc/self/mountinfo", 0o100444, "1 0 8:1 / / rw - ext4 /dev/root rw\n");
  sys.queueRead(4, "0"); // `start` writes one byte to the exec fifo
  return sys;
}

function context(sys: FakeSyscall, entered: string[]): InitContext {
  return {
    sys,
    syncFd: 3,
    fifoFd: 4,
    joinFds: [],
    cgroup: () => entered.push("cgroup"),
    ignoredSignals: [13],
    cgroupMounts: [],
    preserveFds: 0,
    parentHooks: false,
  };
}

function runInit(
  sys: FakeSyscall,
  p: Awaited<ReturnType<typeof plan>>,
  entered: string[] = [],
): Error {
  try {
    initContainer(p, context(sys, entered));
  } catch (err) {
    return err as Error;
  }
  throw new Error("initContainer returned");
}

Deno.test("initContainer() sets up in runc's order and ends in execve", async () => {
  const sys = fakeWithRootfs();
  const entered: string[] = [];
  const end = runInit(sys, await plan(spec()), entered);
  assert(end instanceof FakeExec, `expected execve, got ${end}`);
  assertEquals(end.argv, ["/bin/sh", "-c", "true"]);
  assertEquals(end.envp, ["PATH=/bin", "HOME=/"]);
  assertEquals(entered, ["cgroup"]);
  const names = sys.names();
  const at = (name: string, arg0?: unknown) =>
    sys.calls.findIndex((c) =>
      c.name === name &&
      (arg0 === undefined || c.args[0] === arg0 || c.args[1] === arg0 || c.target === arg0)
    );
  // namespaces before mounts, mounts before pivot_root, pivot before hostname, credentials after paths, exec last
  const unshare = sys.calls.find((c) => c.name === "unshare")!;
  assertEquals(unshare.args[0], CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET);
  const order = [
    at("unshare"),
    at("mount", "/"),
    at("mount", `${ROOTFS}/proc`),
    at("mknodat"),
    at("pivotRoot"),
    at("sethostname"),
    at("mount", "/proc/sys"),
    at("mount", "/proc/kcore"),
    at("setgroups"),
    at("setresgid"),
    at("setresuid"),
    at("read", 4),
    sys.calls.findLastIndex((c) => c.name === "closeRange"),
    at("execve"),
  ];
  assertEquals(
    order.every((v, i) => v >= 0 && (i === 0 || v > order[i - 1]!)),
    true,
    `order ${order} in ${names.join(",")}`,
  );
  const first = sys.calls.find((c) => c.name === "mount")!;
  assertEquals(first.args, [null, "/", null, MS_SLAVE | MS_REC, null]);
  const bind = sys.calls.find((c) => c.name === "mount" && c.args[0] === ROOTFS)!;
  assertEquals(bind.args[3], MS_BIND | MS_REC);
  assertEquals(sys.calls.find((c) => c.name === "setgroups")!.args[0], [10]);
  assertEquals(sys.calls.findLast((c) => c.name === "closeRange")!.args.slice(0, 1), [3]);
});

Deno.test("initContainer() mounts onto fds of the destinations and makes nothing by path in the rootfs", async () => {
  const sys = fakeWithRootfs();
  sys.addFile("/host/file", 0o100644);
  const s = spec();
  s.mounts!.push({ destination: "/etc/f", type: "bind", source: "/host/file", options: ["ro"] });
  const end = runInit(sys, await plan(s));
  assert(end instanceof FakeExec, `expected execve, got ${end}`);
  const pivot = sys.calls.findIndex((c) => c.name === "pivotRoot");
  const before = sys.calls.slice(0, pivot);
  // "/" made slave and the rootfs bound onto itself are by path; every mount inside the rootfs is onto an fd.
  const mounts = before.filter((c) => c.name === "mount").slice(2);
  for (const c of mounts) assertMatch(String(c.args[1]), /^\/proc\/self\/fd\/\d+$/);
  assertEquals(mounts.map((c) => c.target), [
    `${ROOTFS}/proc`,
    `${ROOTFS}/dev`,
    `${ROOTFS}/etc/f`,
    `${ROOTFS}/etc/f`, // the read-only remount
  ]);
  const byPath = ["mkdir", "mknod", "symlink", "unlink", "chown", "open"];
  const made = before.filter((c) =>
    byPath.includes(c.name) && String(c.args[0]).startsWith(`${ROOTFS}/`)
  );
  assertEquals(made.map((c) => `${c.name} ${c.args[0]}`), []);
  assertEquals(sys.files.get(`${ROOTFS}/etc/f`)?.mode, 0o100644);
});

Deno.test("initContainer() reports a failure at any call to its parent and exits 1", async () => {
  const p = await plan(spec());
  const probe = fakeWithRootfs();
  runInit(probe, p);
  const total = probe.calls.length;
  for (let n = 1; n < total; n++) {
    const sys = fakeWithRootfs();
    sys.failAt(n, "EIO");
    const end = runInit(sys, p);
    const call = probe.calls[n - 1]!;
    if (end instanceof FakeExec) {
      // Tolerated failures: chdir(cwd) is tried before the uid change and again after it (as runc does),
      // and an unreadable /etc/passwd only means HOME=/.
      const chdirs = (f: FakeSyscall) =>
        f.calls.filter((c) => c.name === "chdir" && c.args[0] === p.process.cwd).length;
      const retriedChdir = call.name === "chdir" && call.args[0] === p.process.cwd &&
        chdirs(sys) === chdirs(probe) + 1;
      const passwd = call.name === "readFile" && call.args[0] === "/etc/passwd";
      assert(retriedChdir || passwd, `call ${n} (${call.name}) failed but execve followed`);
      continue;
    }
    assert(end instanceof FakeExit, `call ${n} (${call.name}): expected exit, got ${end}`);
    assertEquals(end.code, 1);
    const failed = probe.calls[n - 1]!.name;
    // Before the sync socket is closed, the error goes to the parent; after it, to stderr.
    const reported = sys.calls.some((c) =>
      c.name === "write" && (c.args[0] === 3 || c.args[0] === 2)
    );
    assert(reported || failed === "write", `call ${n} (${failed}) failed silently`);
    assert(
      failed === "execve" || !sys.calls.some((c) => c.name === "execve"),
      `call ${n}: execve after a failure`,
    );
  }
});

/** The sync messages the init sent its parent (fd 3). */
function syncMessages(sys: FakeSyscall): { t: string; m?: string }[] {
  return sys.calls.filter((c) => c.name === "write" && c.args[0] === 3)
    .map((c) => JSON.parse(new TextDecoder().decode(c.args[1] as Uint8Array)));
}

Deno.test("initContainer() refuses a mount inside /proc before mounting anything there", async () => {
  for (
    const m of [
      { destination: "/proc/sys", type: "tmpfs", source: "tmpfs" },
      { destination: "/proc/self/attr", type: "bind", source: "/host/dir", options: ["rbind"] },
      { destination: "/proc/fs/cgroup", type: "cgroup", source: "cgroup" },
    ]
  ) {
    const sys = fakeWithRootfs();
    sys.addFile("/host/dir", S_IFDIR | 0o755);
    const s = spec();
    s.mounts!.push(m);
    const end = runInit(sys, await plan(s));
    assert(end instanceof FakeExit, `${m.destination}: expected exit, got ${end}`);
    assertEquals(end.code, 1);
    assertEquals(syncMessages(sys).at(-1), {
      t: "error",
      m: `${JSON.stringify(m.destination)} cannot be mounted because it is inside /proc`,
    });
    assertEquals(sys.mounts.filter((t) => t.startsWith(`${ROOTFS}/proc/`)), [], m.destination);
    assert(!sys.calls.some((c) => c.name === "pivotRoot"), m.destination);
    assertEquals([...sys.fds], [], `${m.destination}: fds left open`);
  }
});

Deno.test("initContainer() lets onto /proc only proc, or a bind of a procfs (warning unless its root)", async () => {
  const bindProc = (source: string) =>
    spec({ mounts: [{ destination: "/proc", type: "bind", source, options: ["rbind"] }] });
  const sys = fakeWithRootfs();
  sys.addFile("/host/proc", S_IFDIR | 0o555);
  sys.fsTypes.set("/host/proc", PROC_SUPER_MAGIC);
  assert(runInit(sys, await plan(bindProc("/host/proc"))) instanceof FakeExec);
  assertEquals(sys.mounts.slice(2, 3), [`${ROOTFS}/proc`]);
  assertEquals(syncMessages(sys).filter((msg) => msg.t === "warn"), [{
    t: "warn",
    m: 'the bind mount on "/proc" has a procfs source, "/host/proc", that is not the root of a procfs',
  }]);

  const other = fakeWithRootfs();
  other.addFile("/host/dir", S_IFDIR | 0o755);
  const end = runInit(other, await plan(bindProc("/host/dir")));
  assert(end instanceof FakeExit, `expected exit, got ${end}`);
  assertEquals(
    syncMessages(other).at(-1)?.m,
    '"/proc" cannot be mounted because it is not of type proc',
  );
  assertEquals(other.mounts.length, 2, "only / made slave and the rootfs bound");
});

Deno.test("initContainer() loads seccomp before dropping capabilities unless noNewPrivileges", async () => {
  for (const nnp of [false, true]) {
    const s = spec();
    s.process!.noNewPrivileges = nnp;
    s.process!.capabilities = {
      bounding: ["CAP_KILL"],
      effective: ["CAP_KILL"],
      permitted: ["CAP_KILL"],
    };
    const p = await plan(s);
    const sys = fakeWithRootfs();
    const events: string[] = [];
    const ctx = context(sys, []);
    ctx.seccomp = { load: () => (events.push(`seccomp@${sys.calls.length}`), undefined) };
    try {
      initContainer(p, ctx);
    } catch {
      // FakeExec
    }
    const loadedAt = Number(events[0]!.split("@")[1]);
    const capsetAt = sys.calls.findIndex((c) => c.name === "capset");
    assertEquals(
      loadedAt < capsetAt,
      !nnp,
      `nnp=${nnp}: seccomp at ${loadedAt}, capset at ${capsetAt}`,
    );
  }
});

Deno.test("closeOtherFds() closes every fd above the preserved ones except those the init keeps", () => {
  const sys = new FakeSyscall();
  closeOtherFds(sys, { syncFd: 5, joinFds: [7], fifoFd: 4, preserveFds: 1 });
  assertEquals(
    sys.calls.filter((c) => c.name === "closeRange").map((c) => c.args.slice(0, 2)),
    [[6, 6], [8, 0xffffffff]],
  );
});

Deno.test("planContainer() takes an rlimit of 18446744073709551615 (Docker's unlimited) as RLIM_INFINITY", async () => {
  const unlimited = JSON.parse(
    '{"type":"RLIMIT_MEMLOCK","soft":18446744073709551615,"hard":18446744073709551615}',
  );
  const p = await plan(spec({
    process: {
      ...spec().process!,
      rlimits: [unlimited, { type: "RLIMIT_CORE", soft: 1, hard: 2 }],
    },
  }));
  assertEquals(p.process.rlimits.map((r) => [r.soft, r.hard]), [
    [(1n << 64n) - 1n, (1n << 64n) - 1n],
    [1n, 2n],
  ]);
  let err: Error | undefined;
  try {
    await plan(spec({
      process: { ...spec().process!, rlimits: [{ type: "RLIMIT_CORE", soft: 2 ** 60, hard: 1 }] },
    }));
  } catch (e) {
    err = e as Error;
  }
  assert(err?.message.includes("process.rlimits[0].soft"), String(err));
});

Deno.test("planContainer() refuses a device path that leaves /dev with ..", async () => {
  let err: Error | undefined;
  try {
    await plan(spec({
      linux: {
        ...spec().linux,
        devices: [{ path: "/dev/../etc/passwd", type: "c", major: 1, minor: 3 }],
      },
    }));
  } catch (e) {
    err = e as Error;
  }
  assertEquals(
    err?.message,
    'Invalid linux.devices[0].path: "/dev/../etc/passwd" is not under /dev',
  );
});
