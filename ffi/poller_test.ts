import { assertEquals } from "../tests/assert.ts";
import { libcSyscall } from "./libc.ts";
import { Poller } from "./poller.ts";

const sys = libcSyscall();

Deno.test("Poller hands each ready pipe to its callback and reports the hang-up", async () => {
  const poller = new Poller();
  const pipes = [sys.pipe(), sys.pipe(), sys.pipe()];
  const got: string[][] = pipes.map(() => []);
  const done = pipes.map((p, i) =>
    new Promise<void>((resolve) => {
      poller.watch(p[0], (r) => {
        const buf = new Uint8Array(64);
        for (;;) {
          let n = 0;
          try {
            n = sys.read(p[0], buf);
          } catch {
            break; // EAGAIN: drained
          }
          if (n === 0) {
            poller.unwatch(p[0]);
            sys.close(p[0]);
            resolve();
            return;
          }
          got[i]!.push(new TextDecoder().decode(buf.subarray(0, n)));
        }
        if (r.hangup && !r.readable) resolve();
      });
    })
  );
  for (const [i, p] of pipes.entries()) {
    sys.write(p[1], new TextEncoder().encode(`hello ${i}`));
    sys.close(p[1]);
  }
  await Promise.all(done);
  assertEquals(got.map((g) => g.join("")), ["hello 0", "hello 1", "hello 2"]);
  assertEquals(poller.size, 0);
  poller.close();
});
