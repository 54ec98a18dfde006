import { join } from "node:path";
import { FakeSyscall } from "../ffi/fake.ts";
import { assert, assertEquals } from "../tests/assert.ts";
import { withTempDir } from "../tests/harness.ts";
import { sdNotify } from "./notify.ts";

/** A datagram socket of our own (python3's socket module), receiving `count` messages. */
async function receiver(address: string, count: number) {
  const script = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
name = sys.argv[1]
s.bind("\\0" + name[1:] if name.startswith("@") else name)
print("bound", flush=True)
for _ in range(int(sys.argv[2])):
    print(s.recv(4096).decode(), flush=True)
`;
  const child = new Deno.Command("python3", {
    args: ["-c", script, address, String(count)],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  const lines: string[] = [];
  const nextLine = async () => {
    while (!buffer.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("receiver ended");
      buffer += value;
    }
    const i = buffer.indexOf("\n");
    const line = buffer.slice(0, i);
    buffer = buffer.slice(i + 1);
    return line;
  };
  assertEquals(await nextLine(), "bound");
  return {
    async messages(): Promise<string[]> {
      for (let i = 0; i < count; i++) lines.push(await nextLine());
      await reader.cancel();
      await child.status;
      return lines;
    },
    kill() {
      try {
        child.kill("SIGKILL");
      } catch {
        // gone
      }
    },
  };
}

Deno.test("sdNotify() does nothing without a notify socket", async () => {
  const sys = new FakeSyscall();
  assertEquals(await sdNotify("READY=1", { socket: "", sys }), false);
  assertEquals(sys.calls.length, 0);
});

Deno.test("sdNotify() sends each state as one datagram to a socket path", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "notify.sock");
    const r = await receiver(path, 2);
    try {
      assert(await sdNotify("READY=1", { socket: path }));
      assert(await sdNotify("STOPPING=1", { socket: path }));
      assertEquals(await r.messages(), ["READY=1", "STOPPING=1"]);
    } finally {
      r.kill();
    }
  });
});

Deno.test("sdNotify() reaches a socket in the abstract namespace", async () => {
  const name = `@tug-notify-test-${crypto.randomUUID()}`;
  const r = await receiver(name, 1);
  try {
    assert(await sdNotify("READY=1", { socket: name }));
    assertEquals(await r.messages(), ["READY=1"]);
  } finally {
    r.kill();
  }
});
