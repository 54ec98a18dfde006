import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import {
  MADV_DONTFORK,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_CLOEXEC,
  O_DIRECTORY,
  O_NOFOLLOW,
  O_PATH,
  O_RDONLY,
  PROT_READ,
  PROT_WRITE,
} from "./constants.ts";
import { forkMode, LibcSyscall } from "./libc.ts";
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

Deno.test("LibcSyscall.fork() children survive V8 mapping new pages between forks", () => {
  // V8 marks every mapping it makes MADV_DONTFORK; fork() must undo that each time, even for
  // pages mapped a moment before (large objects, new heap pages).
  const keep: unknown[] = [];
  for (let i = 0; i < 40; i++) {
    keep.push(Array.from({ length: 2000 + (i % 5) * 3000 }, (_, k) => ({ k, s: `v${k}${i}` })));
    if (i % 10 === 0) keep.push(new Uint8Array(2 << 20));
    if (keep.length > 12) keep.splice(0, 6);
    const pid = sys.fork();
    if (pid === 0) {
      const work = Array.from({ length: 10000 }, (_, k) => ({ k }));
      sys.exit(work.length === 10000 ? 3 : 1);
    }
    assertEquals(exitCodeOf(sys.waitpid(pid, 0).status), 3, `fork ${i}`);
  }
});

Deno.test("LibcSyscall.fork() forks from native code, and the child keeps a page marked MADV_DONTFORK", () => {
  assertEquals(forkMode(), "native");
  // A page of our own, marked as V8 marks its heap pages: without the pass the child lacks it.
  const lib = Deno.dlopen(
    "libc.so.6",
    {
      mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
      munmap: { parameters: ["pointer", "usize"], result: "i32" },
      madvise: { parameters: ["pointer", "usize", "i32"], result: "i32" },
    } as const,
  );
  const page = lib.symbols.mmap(
    null,
    4096n,
    PROT_READ | PROT_WRITE,
    MAP_PRIVATE | MAP_ANONYMOUS,
    -1,
    0n,
  );
  try {
    new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(page!, 4096))[100] = 42;
    assertEquals(lib.symbols.madvise(page, 4096n, MADV_DONTFORK), 0);
    const pid = sys.fork();
    if (pid === 0) sys.exit(new Deno.UnsafePointerView(page!).getUint8(100));
    assertEquals(exitCodeOf(sys.waitpid(pid, 0).status), 42);
  } finally {
    lib.symbols.munmap(page, 4096n);
    lib.close();
  }
});

Deno.test("LibcSyscall.readdir() lists a directory past one getdents64 buffer; readlinkat() reads a link", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tug-libc-" });
  try {
    const names = Array.from({ length: 1500 }, (_, i) => `entry-with-a-longish-name-${i}`);
    for (const n of names) await Deno.writeTextFile(`${dir}/${n}`, "");
    await Deno.symlink("../some/target", `${dir}/link`);
    const fd = sys.open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    try {
      assertEquals(sys.readdir(fd).sort(), [...names, "link"].sort());
      assertEquals(sys.readlinkat(fd, "link"), "../some/target");
      const link = sys.openat(fd, "link", O_PATH | O_NOFOLLOW | O_CLOEXEC);
      try {
        assertEquals(sys.readlinkat(link, ""), "../some/target");
      } finally {
        sys.close(link);
      }
      const err = assertThrows(() => sys.readlinkat(fd, names[0]!), SyscallError);
      assertEquals(err.message, `readlinkat "${names[0]}": EINVAL`);
    } finally {
      sys.close(fd);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
