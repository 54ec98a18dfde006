import { assertEquals, assertRejects } from "../tests/assert.ts";
import { FakeSyscall } from "../ffi/fake.ts";
import { LOCK_EX, LOCK_NB, O_CREAT, O_RDWR } from "../ffi/constants.ts";
import { SyscallError } from "../ffi/syscall.ts";
import { lockExclusive } from "./lock.ts";

const PATH = "/run/locks/c1";

Deno.test("lockExclusive takes a free lock without waiting and closes its fd on release", async () => {
  const sys = new FakeSyscall().addFile(PATH);
  const held = await lockExclusive(sys, PATH, () => sys.open(PATH, O_RDWR | O_CREAT));
  const [fd, operation] = sys.calls.find((c) => c.name === "flock")!.args;
  assertEquals(operation, LOCK_EX | LOCK_NB);
  assertEquals(sys.calls.some((c) => c.name === "close"), false);
  held.release();
  assertEquals(sys.calls.at(-1), { name: "close", args: [fd] });
});

Deno.test("lockExclusive locks again when the file it locked is no longer at its path", async () => {
  // The holder before us removed it: the first open finds a file that is gone once locked.
  const sys = new FakeSyscall();
  let opens = 0;
  const held = await lockExclusive(sys, PATH, () => {
    opens++;
    const fd = sys.open("/", 0);
    if (opens === 2) sys.addFile(PATH);
    return fd;
  });
  assertEquals(opens, 2);
  assertEquals(sys.calls.filter((c) => c.name === "flock").length, 2);
  assertEquals(sys.calls.filter((c) => c.name === "close").length, 1);
  held.release();
});

Deno.test("lockExclusive passes on a failure other than a held lock, with its fd closed", async () => {
  const sys = new FakeSyscall().addFile(PATH).failOn("flock", "EBADF");
  await assertRejects(
    () => lockExclusive(sys, PATH, () => sys.open(PATH, O_RDWR)),
    SyscallError,
    "flock",
  );
  assertEquals(sys.calls.at(-1)?.name, "close");
});
