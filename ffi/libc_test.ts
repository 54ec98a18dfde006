import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import { O_CLOEXEC, O_RDONLY } from "./constants.ts";
import { LibcSyscall } from "./libc.ts";
import { exitCodeOf, SyscallError } from "./syscall.ts";

const sys = new LibcSyscall();

Deno.test("LibcSyscall errors name the call, the path and the errno", () => {
  const err = assertThrows(() => sys.open("/nonexistent/tug", O_RDONLY | O_CLOEXEC), SyscallError);
  assertEquals(err.message, 'open "/nonexistent/tug": ENOENT');
  assertEquals((err as SyscallError).errnoName, "ENOENT");
});

Deno.test("LibcSyscall.fork() gives a child that runs JavaScript and exits with its code", () => {
  const pid = sys.fork();
  if (pid === 0) {
    const work = Array.from({ length: 20000 }, (_, i) => ({ i, s: `x${i}` }));
    sys.exit(work.length === 20000 ? 42 : 1);
  }
  const { status } = sys.waitpid(pid, 0);
  assertEquals(exitCodeOf(status), 42);
});

Deno.test("LibcSyscall passes fds over a socketpair with SCM_RIGHTS", () => {
  const [a, b] = sys.socketpair(1);
  const fd = sys.open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  try {
    sys.sendFds(a, new TextEncoder().encode("hi"), [fd]);
    const got = sys.recvFds(b, 16);
    assertEquals(new TextDecoder().decode(got.data), "hi");
    assertEquals(got.fds.length, 1);
    assert(sys.fstat(got.fds[0]!).size >= 0n);
    sys.close(got.fds[0]!);
  } finally {
    sys.close(fd);
    sys.close(a);
    sys.close(b);
  }
});
