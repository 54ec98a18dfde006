import { assert, assertEquals } from "../tests/assert.ts";
import { FakeSyscall } from "../ffi/fake.ts";
import { FailedPrecondition, Internal } from "../errors.ts";
import { exitedAlready, initFailure } from "./container.ts";

const SYNC_FD = 7;

Deno.test("exitedAlready reaps an init that has ended and leaves an unknown pid alone", () => {
  const sys = new FakeSyscall();
  const pid = sys.fork();
  assertEquals(exitedAlready(sys, pid), 0);
  assertEquals(exitedAlready(sys, pid), undefined); // reaped: ECHILD
  assertEquals(sys.calls.filter((c) => c.name === "kill").length, 0);
});

Deno.test("initFailure says how an init that ended on its own ended, without killing its pid again", () => {
  const sys = new FakeSyscall();
  const err = initFailure(sys, "c1", 4242, SYNC_FD, 3 << 8);
  assert(err instanceof Internal);
  assertEquals(
    err.message,
    'Cannot create container "c1": its init exited with code 3 during set-up',
  );
  // Its pid is reaped already and may belong to another process by now.
  assertEquals(sys.calls.filter((c) => c.name === "kill" || c.name === "waitpid").length, 0);
});

Deno.test("initFailure prefers the error the init reported", () => {
  const sys = new FakeSyscall().queueRead(SYNC_FD, JSON.stringify({ t: "error", m: "boom" }));
  const err = initFailure(sys, "c1", 4242, SYNC_FD, 9);
  assert(err instanceof FailedPrecondition);
  assertEquals(err.message, 'Cannot create container "c1": boom');
});

Deno.test("initFailure kills and reaps an init that is still there", () => {
  const sys = new FakeSyscall();
  const pid = sys.fork();
  const err = initFailure(sys, "c1", pid, SYNC_FD);
  assert(err instanceof Internal);
  assertEquals(sys.calls.filter((c) => c.name === "kill").map((c) => c.args), [[pid, 9]]);
  assertEquals(sys.calls.filter((c) => c.name === "waitpid").map((c) => c.args[0]), [pid]);
});
