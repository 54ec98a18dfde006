import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { assertNothingLeft, leftovers, mountsUnder, requires, TUG } from "./harness.ts";
import { busyboxRootfs } from "./bundle.ts";
import { defaultSpec } from "../runtime/default_spec.ts";
import { RpcClient, type ShimEvent } from "../shim/rpc.ts";
import type { Spec } from "../runtime/spec.ts";

const ignore = requires("root", "busybox", "tug", "cgroup1");

interface ShimTest {
  dir: string;
  state: string;
  rootfs: string;
  client: RpcClient;
  events: ShimEvent[];
  spec(args: string[], modify?: (s: Spec) => void): Spec;
  startShim(): Promise<RpcClient>;
  /** SIGKILLs the running shim and waits until it is gone. */
  killShim(): Promise<void>;
}

async function waitFor(
  check: () => boolean | Promise<boolean>,
  ms = 5000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** True once process `pid` no longer exists. */
function gone(pid: number): Promise<boolean> {
  return Deno.stat(`/proc/${pid}`).then(() => false, () => true);
}

/** Runs `fn` with a shim of its own (group "g") over a busybox rootfs, and tears everything down. */
async function withShim(fn: (t: ShimTest) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tug-shim-" });
  const before = leftovers(dir);
  const state = `${dir}/state`;
  const rootfs = `${dir}/rootfs`;
  await busyboxRootfs(rootfs);
  const events: ShimEvent[] = [];
  const shims: Deno.ChildProcess[] = [];
  const startShim = async () => {
    shims.push(
      new Deno.Command(TUG, {
        args: ["shim", "--group", "g", "--state", state, "--idle-exit", "1"],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn(),
    );
    const socket = `${state}/shims/g/shim.sock`;
    let client: RpcClient | undefined;
    // A socket file may be a dead shim's: retry until the new one answers.
    await waitFor(
      async () => {
        client = await RpcClient.connect(socket, (e) => events.push(e)).catch(() => undefined);
        return client !== undefined;
      },
      10000,
      "the shim to answer",
    );
    return client!;
  };
  const t: ShimTest = {
    dir,
    state,
    rootfs,
    events,
    client: undefined as unknown as RpcClient,
    spec: (args, modify) => {
      const s = defaultSpec({ args, terminal: false });
      s.root = { path: "rootfs", readonly: false };
      s.linux!.cgroupsPath = `tug-test/${dir.split("/").pop()}`;
      modify?.(s);
      return s;
    },
    startShim,
    killShim: async () => {
      const { pid } = await t.client.call<{ pid: number }>("ping", {});
      Deno.kill(pid, "SIGKILL");
      await t.client.closed;
      await waitFor(() => gone(pid), 5000, "the shim to die");
    },
  };
  let failure: unknown;
  try {
    t.client = await startShim();
    await fn(t);
  } catch (err) {
    failure = err;
  }
  try {
    // Clean up whatever the test left: kill and delete every task, let the shim leave.
    const list = await t.client.call<{ namespace: string; id: string }[]>("list", {}).catch(
      () => [],
    );
    for (const c of list) {
      await t.client.call("kill", { namespace: c.namespace, id: c.id, signal: 9, all: true }).catch(
        () => {},
      );
      await t.client.call("delete", { namespace: c.namespace, id: c.id, force: true }).catch(
        () => {},
      );
    }
    t.client.close();
    await waitFor(
      () => Deno.stat(`${state}/shims/g/shim.sock`).then(() => false, () => true),
      10000,
      "the shim to exit",
    );
    // Reap the shims we started (the idle one exits by itself; a killed one already died).
    await Promise.all(shims.map((c) => c.status));
    assertNothingLeft(before, dir);
  } catch (err) {
    failure ??= err;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  if (failure) throw failure;
}

function createParams(t: ShimTest, id: string, spec: Spec, extra: Record<string, unknown> = {}) {
  return {
    namespace: "default",
    id,
    spec,
    rootfs: [{ type: "bind", source: t.rootfs, options: ["rbind", "rw"] }],
    log: { path: `${t.dir}/logs/${id}.log`, maxSize: 1024 * 1024, maxFiles: 2 },
    ...extra,
  };
}

Deno.test({
  name: "a shim runs a container, logs its output with timestamps and reports its exit code",
  ignore,
  fn: () =>
    withShim(async (t) => {
      const spec = t.spec(["sh", "-c", "echo out-line; echo err-line >&2; exit 3"]);
      const { pid } = await t.client.call<{ pid: number }>("create", createParams(t, "c1", spec));
      assert(pid > 0);
      await t.client.call("start", { namespace: "default", id: "c1" });
      const exit = await t.client.call<{ exitCode: number; exitedAt: string }>("wait", {
        namespace: "default",
        id: "c1",
      });
      assertEquals(exit.exitCode, 3);
      await waitFor(
        async () => (await Deno.readTextFile(`${t.dir}/logs/c1.log`)).includes("err-line"),
        3000,
        "the log",
      );
      const lines = (await Deno.readTextFile(`${t.dir}/logs/c1.log`)).trim().split("\n").map((l) =>
        JSON.parse(l)
      );
      assertEquals(lines.map((l) => [l.stream, l.log]).sort(), [["stderr", "err-line\n"], [
        "stdout",
        "out-line\n",
      ]]);
      for (const l of lines) assertMatch(l.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
      const deleted = await t.client.call<{ exitCode: number }>("delete", {
        namespace: "default",
        id: "c1",
      });
      assertEquals(deleted.exitCode, 3);
      assertEquals(t.events.map((e) => e.topic).filter((x) => x !== "/tasks/exec-started"), [
        "/tasks/create",
        "/tasks/start",
        "/tasks/exit",
        "/tasks/delete",
      ]);
    }),
});

Deno.test({
  name: "the host's mount of a rootfs goes once the init holds it, unless a host hook may need it",
  ignore,
  fn: () =>
    withShim(async (t) => {
      const rootfsOf = (id: string) => `${t.state}/shims/g/bundles/default/${id}/rootfs`;
      // The container checks its root is still whole after the host's mount has gone.
      const spec = t.spec(["sh", "-c", "sleep 0.5; test -x /bin/busybox && test -d /etc"]);
      await t.client.call("create", createParams(t, "held", spec));
      await t.client.call("start", { namespace: "default", id: "held" });
      await waitFor(() => mountsUnder(rootfsOf("held")).length === 0, 3000, "the host's unmount");
      const exit = await t.client.call<{ exitCode: number }>("wait", {
        namespace: "default",
        id: "held",
      });
      assertEquals(exit.exitCode, 0, "the container still sees its rootfs");
      await t.client.call("delete", { namespace: "default", id: "held" });

      // A poststop hook runs on the host after the container is gone: the mount stays until delete.
      const hooked = t.spec(["sleep", "100"], (s) => {
        s.hooks = { poststop: [{ path: "/bin/true" }] };
      });
      await t.client.call("create", createParams(t, "hooked", hooked));
      await t.client.call("start", { namespace: "default", id: "hooked" });
      await new Promise((r) => setTimeout(r, 300));
      assertEquals(mountsUnder(rootfsOf("hooked")).length, 1);
      await t.client.call("kill", { namespace: "default", id: "hooked", signal: 9 });
      await t.client.call("wait", { namespace: "default", id: "hooked" });
      await t.client.call("delete", { namespace: "default", id: "hooked" });
      assertEquals(mountsUnder(rootfsOf("hooked")), []);
    }),
});

Deno.test({
  name: "a shim execs into a running container with FIFOs for its stdio",
  ignore,
  fn: () =>
    withShim(async (t) => {
      await t.client.call(
        "create",
        createParams(t, "c1", t.spec(["sleep", "1000"], (s) => (s.hostname = "shimmed"))),
      );
      await t.client.call("start", { namespace: "default", id: "c1" });
      const out = `${t.dir}/exec.out`;
      await new Deno.Command("mkfifo", { args: [out] }).output();
      const reader = Deno.open(out, { read: true });
      const process = {
        args: ["sh", "-c", "echo exec-says $(hostname)"],
        cwd: "/",
        user: { uid: 0, gid: 0 },
        env: ["PATH=/bin"],
      };
      // The read end's open runs on Deno's blocking pool and cannot be awaited before the request
      // (it waits for the writer): on a busy machine the shim can come first, and is refused.
      for (let attempt = 0;; attempt++) {
        try {
          await t.client.call("exec", {
            namespace: "default",
            id: "c1",
            execId: "e1",
            process,
            stdout: out,
          });
          break;
        } catch (err) {
          if (attempt >= 100 || !String(err).includes("Nobody reads the FIFO")) throw err;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
      const file = await reader;
      const text = new TextDecoder().decode(await new Response(file.readable).arrayBuffer());
      assertEquals(text, "exec-says shimmed\n");
      const exit = await t.client.call<{ exitCode: number }>("wait", {
        namespace: "default",
        id: "c1",
        execId: "e1",
      });
      assertEquals(exit.exitCode, 0);
      assertEquals(
        (await t.client.call<number[]>("ps", { namespace: "default", id: "c1" })).length,
        1,
      );
    }),
});

Deno.test({
  name: "a stdin FIFO nobody writes to does not hang the shim: the process reads end of file",
  ignore,
  fn: () =>
    withShim(async (t) => {
      const stdin = `${t.dir}/nobody-writes`;
      await new Deno.Command("mkfifo", { args: [stdin] }).output();
      await t.client.call("create", createParams(t, "c1", t.spec(["cat"]), { stdin, start: true }));
      const exit = await t.client.call<{ exitCode: number }>("wait", {
        namespace: "default",
        id: "c1",
      });
      assertEquals(exit.exitCode, 0);
      await t.client.call("delete", { namespace: "default", id: "c1" }); // c2 takes its cgroup
      // And an exec with such a stdin, in another container that is running.
      await t.client.call(
        "create",
        createParams(t, "c2", t.spec(["sleep", "1000"]), { start: true }),
      );
      await t.client.call("exec", {
        namespace: "default",
        id: "c2",
        execId: "e1",
        process: { args: ["cat"], cwd: "/", user: { uid: 0, gid: 0 }, env: ["PATH=/bin"] },
        stdin,
      });
      const execExit = await t.client.call<{ exitCode: number }>("wait", {
        namespace: "default",
        id: "c2",
        execId: "e1",
      });
      assertEquals(execExit.exitCode, 0);
    }),
});

Deno.test({
  name: "containers outlive a killed shim, and a new shim adopts them",
  ignore,
  fn: () =>
    withShim(async (t) => {
      await t.client.call("create", createParams(t, "c1", t.spec(["sleep", "1000"])));
      await t.client.call("start", { namespace: "default", id: "c1" });
      const { pid } = await t.client.call<{ pid: number }>("state", {
        namespace: "default",
        id: "c1",
      });
      await t.killShim();
      assertStringIncludes(await Deno.readTextFile(`/proc/${pid}/cmdline`), "sleep");
      t.client = await t.startShim();
      const list = await t.client.call<{ id: string; status: string }[]>("list", {});
      assertEquals(list.map((c) => [c.id, c.status]), [["c1", "running"]]);
      await t.client.call("kill", { namespace: "default", id: "c1", signal: 9 });
      const exit = await t.client.call<{ exitCode: number; unknown?: boolean }>("wait", {
        namespace: "default",
        id: "c1",
      });
      assertEquals(exit.unknown, true);
    }),
});

Deno.test({
  name:
    "a new shim removes what a shim killed in the middle of a create left, and the id works again",
  ignore,
  fn: () =>
    withShim(async (t) => {
      // A shim killed after the init was ready but before its record was saved (c1), or before
      // the runtime's state too (c2): the inits wait for start, with no record naming them.
      const group = `${t.state}/shims/g`;
      const pids: number[] = [];
      const spec = (id: string) =>
        t.spec(["true"], (s) => (s.linux!.cgroupsPath = `${s.linux!.cgroupsPath}-${id}`));
      for (const id of ["c1", "c2"]) {
        await t.client.call("create", createParams(t, id, spec(id)));
        const { pid } = await t.client.call<{ pid: number }>("state", { namespace: "default", id });
        pids.push(pid);
      }
      await t.killShim();
      await Deno.remove(`${group}/containers/default/c1.json`);
      await Deno.remove(`${group}/containers/default/c2.json`);
      await Deno.remove(`${group}/runtime/default+c2/state.json`);
      for (const pid of pids) await Deno.stat(`/proc/${pid}`); // alive, waiting for start
      // Killed earlier still (c3): the rootfs was mounted into the bundle, nothing else made.
      await Deno.mkdir(`${group}/bundles/default/c3/rootfs`, { recursive: true });
      const bind = await new Deno.Command("mount", {
        args: ["--bind", t.rootfs, `${group}/bundles/default/c3/rootfs`],
      }).output();
      assertEquals(bind.code, 0);
      assertEquals(mountsUnder(`${group}/bundles`).length, 1);

      t.client = await t.startShim();
      for (const pid of pids) {
        await waitFor(() => gone(pid), 5000, `init ${pid} to be gone`);
      }
      assertEquals(mountsUnder(`${group}/bundles`), []);
      // The runtime's lock directory stays (runtime/state.ts lockContainer), empty.
      assertEquals([...Deno.readDirSync(`${group}/runtime`)].map((e) => e.name), ["@locks"]);
      assertEquals([...Deno.readDirSync(`${group}/runtime/@locks`)], []);
      assertEquals([...Deno.readDirSync(`${group}/bundles/default`)], []);
      assertEquals(await t.client.call("list", {}), []);

      await t.client.call("create", createParams(t, "c2", spec("c2"), { start: true }));
      const exit = await t.client.call<{ exitCode: number }>("wait", {
        namespace: "default",
        id: "c2",
      });
      assertEquals(exit.exitCode, 0);
      await t.client.call("delete", { namespace: "default", id: "c2" });
    }),
});

Deno.test({
  name: "a shim rotates a container's log by size",
  ignore,
  fn: () =>
    withShim(async (t) => {
      const spec = t.spec([
        "sh",
        "-c",
        "i=0; while [ $i -lt 400 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done",
      ]);
      await t.client.call(
        "create",
        createParams(t, "c1", spec, {
          log: { path: `${t.dir}/logs/c1.log`, maxSize: 8192, maxFiles: 3 },
        }),
      );
      await t.client.call("start", { namespace: "default", id: "c1" });
      await t.client.call("wait", { namespace: "default", id: "c1" });
      await t.client.call("delete", { namespace: "default", id: "c1" });
      const files = [...Deno.readDirSync(`${t.dir}/logs`)].map((e) => e.name).sort();
      assertEquals(files, ["c1.log", "c1.log.1", "c1.log.2"]);
      for (const f of files) assert((await Deno.stat(`${t.dir}/logs/${f}`)).size <= 8192, f);
      const last = (await Deno.readTextFile(`${t.dir}/logs/c1.log`)).trim().split("\n").pop()!;
      assertEquals(JSON.parse(last).log, "line-399-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n");
    }),
});

Deno.test({
  name: "a shim's errors name the container as the user does, not by its runtime id",
  ignore,
  fn: () =>
    withShim(async (t) => {
      const spec = t.spec(["/no/such/program"]);
      const err = await t.client.call("create", createParams(t, "c1", spec)).then(
        () => undefined,
        (e: Error) => e,
      );
      assert(err, "the create fails");
      assertStringIncludes(err.message, '"c1"');
      assert(!err.message.includes("default+c1"), err.message);
    }),
});

Deno.test({
  name:
    "a shim uses FIFOs only for stdio: a regular file named as stdout or stdin is refused and left as it was",
  ignore,
  fn: () =>
    withShim(async (t) => {
      // It wrote the container's output over the file, or fed it to the container (a helper's probes).
      const victim = `${t.dir}/victim.txt`;
      const secret = `${t.dir}/secret.txt`;
      await Deno.writeTextFile(victim, "ORIGINAL\n");
      await Deno.writeTextFile(secret, "host data\n");
      const spec = t.spec(["sh", "-c", "echo INJECTED; cat"]);
      for (const stdio of [{ stdout: victim }, { stdin: secret }, { stderr: "/dev/null" }]) {
        const err = await t.client.call("create", createParams(t, "c1", spec, stdio)).then(
          () => undefined,
          (e: Error) => e,
        );
        assert(err, `create with ${JSON.stringify(stdio)} fails`);
        assertStringIncludes(err.message, "is not a FIFO");
      }
      assertEquals(await Deno.readTextFile(victim), "ORIGINAL\n");
      assertEquals((await Deno.stat("/dev/null")).isCharDevice, true);
    }),
});
