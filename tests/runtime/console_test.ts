import { assertEquals, assertMatch, assertStringIncludes } from "../assert.ts";
import { requires, run } from "../harness.ts";
import { withRuntime } from "./_helpers.ts";

const ignore = requires("root", "busybox", "tug", "cgroup1") ||
  !(await Deno.stat("/usr/bin/python3").then(() => true, () => false));

// An independent console-socket receiver: accepts one connection, takes the pty master with SCM_RIGHTS,
// prints what the container writes until EOF.
const RECEIVER = `
import array, os, socket, sys
path = sys.argv[1]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path); srv.listen(1)
print("listening", flush=True)
conn, _ = srv.accept()
fds = array.array("i")
msg, anc, flags, addr = conn.recvmsg(1024, socket.CMSG_LEN(4 * fds.itemsize))
for level, kind, data in anc:
    fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
master = fds[0]
print("name", msg.decode(), flush=True)
out = b""
while True:
    try:
        chunk = os.read(master, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
sys.stdout.write(out.decode(errors="replace"))
`;

Deno.test({
  name:
    "create --console-socket sends the pty master and the container gets it as its controlling terminal",
  ignore,
  fn: () =>
    withRuntime({
      args: ["sh", "-c", "tty; stty size; echo ctty=$(ps -o tty= -p $$ 2>/dev/null || echo x)"],
      terminal: true,
    }, async (t) => {
      const { editSpec } = await import("../bundle.ts");
      await editSpec(t.bundle, (s) => (s.process!.consoleSize = { height: 30, width: 100 }));
      const sock = `${t.dir}/console.sock`;
      const receiver = new Deno.Command("python3", {
        args: ["-c", RECEIVER, sock],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const reader = receiver.stdout.pipeThrough(new TextDecoderStream()).getReader();
      assertStringIncludes((await reader.read()).value ?? "", "listening");
      await t.ok(["create", "--console-socket", sock, "c1"]);
      await t.ok(["start", "c1"]);
      let out = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        out += value;
      }
      await receiver.status;
      assertMatch(out, /name \/dev\/pts\/\d+/);
      assertMatch(out, /\/dev\/(pts\/\d+|console)\r?\n/);
      assertStringIncludes(out, "30 100");
      await t.ok(["delete", "--force", "c1"]);
    }),
});

Deno.test({
  name: "create without --console-socket for a terminal process is refused",
  ignore,
  fn: () =>
    withRuntime({ terminal: true }, async (t) => {
      const r = await t.rt(["create", "c1"]);
      assertEquals(r.code, 1);
      assertMatch(r.stderr, /Cannot allocate a terminal without --console-socket/);
    }),
});

Deno.test({
  name: "create names a console socket whose other end closed before the pty master was sent",
  ignore,
  fn: () =>
    withRuntime({ args: ["true"], terminal: true }, async (t) => {
      const sock = `${t.dir}/console.sock`;
      const listener = Deno.listen({ transport: "unix", path: sock });
      try {
        const closer = (async () => (await listener.accept()).close())();
        const r = await t.rt(["create", "--console-socket", sock, "c1"]);
        await closer;
        assertEquals(r.code, 1);
        // It said "sendmsg fd 23: EPIPE".
        assertMatch(
          r.stderr,
          /Cannot create container "c1": send the pty master to the console socket: EPIPE \(its other end was closed\)/,
        );
        assertEquals((await t.rt(["list", "-q"])).stdout, "");
      } finally {
        listener.close();
      }
    }),
});

Deno.test({
  name: "run relays a terminal process through its own pty when it has no console socket",
  ignore,
  fn: () =>
    withRuntime({
      args: ["sh", "-c", "tty >/dev/null && echo has-tty; read line; echo got:$line"],
      terminal: true,
    }, async (t) => {
      // python's pty gives `tug runtime run` a terminal of its own, as a user's shell would.
      const driver = `
import os, pty, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
time.sleep(0.5)
os.write(fd, b"hello\\r")
out = b""
while True:
    try:
        c = os.read(fd, 4096)
    except OSError:
        break
    if not c: break
    out += c
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
print("exit", os.waitstatus_to_exitcode(status))
`;
      const { TUG } = await import("../harness.ts");
      const r = await run("python3", [
        "-c",
        driver,
        TUG,
        "runtime",
        "--root",
        t.root,
        "run",
        "--bundle",
        t.bundle,
        "c1",
      ]);
      assertStringIncludes(r.stdout, "has-tty");
      assertStringIncludes(r.stdout, "got:hello");
      assertStringIncludes(r.stdout, "exit 0");
    }),
});
