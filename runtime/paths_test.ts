import { assert, assertEquals } from "../tests/assert.ts";
import { O_DIRECTORY, O_RDONLY, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from "../ffi/constants.ts";
import { FakeSyscall } from "../ffi/fake.ts";
import { libcSyscall } from "../ffi/libc.ts";
import { SyscallError } from "../ffi/syscall.ts";
import { PYTHON3, startSwapper } from "../tests/racer.ts";
import {
  closeRoot,
  createFileInRoot,
  mkdirAllInRoot,
  openInRoot,
  openRoot,
  parentInRoot,
  pathInRoot,
  type Root,
} from "./paths.ts";

const sys = libcSyscall();

/** Runs `fn` on a fresh root (with openat2 and with the component walk), and a host directory beside it. */
async function withRoots(
  fn: (root: Root, dir: string, host: string, walk: boolean) => void | Promise<void>,
): Promise<void> {
  for (const walk of [false, true]) {
    const dir = await Deno.makeTempDir({ prefix: "tug-paths-" });
    const host = await Deno.makeTempDir({ prefix: "tug-paths-host-" });
    await Deno.mkdir(`${dir}/rootfs`);
    const fds = openFds();
    const root = openRoot(sys, `${dir}/rootfs`, { walk });
    try {
      await fn(root, `${dir}/rootfs`, host, walk);
    } finally {
      closeRoot(root);
      await Deno.remove(dir, { recursive: true });
      await Deno.remove(host, { recursive: true });
    }
    assertEquals(openFds(), fds, `fds left open (walk=${walk})`);
  }
}

function openFds(): string[] {
  return [...Deno.readDirSync("/proc/self/fd")].map((e) => e.name).sort();
}

function typeOf(fd: number): number {
  try {
    return sys.fstat(fd).mode & S_IFMT;
  } finally {
    sys.close(fd);
  }
}

function errnoOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof SyscallError) return `${err.errnoName} ${err.message}`;
    throw err;
  }
  throw new Error("no error");
}

Deno.test("mkdirAllInRoot() and createFileInRoot() never leave the root through a symlink", () =>
  withRoots(async (root, rootfs, host, walk) => {
    await Deno.symlink(host, `${rootfs}/abs`); // an absolute link to a host directory
    await Deno.symlink("../../../../../..", `${rootfs}/up`); // climbs past the root
    await Deno.mkdir(`${rootfs}/d`);
    await Deno.symlink("../../up/../abs", `${rootfs}/d/mixed`);
    typeOf(mkdirAllInRoot(root, "/abs/a/b"));
    typeOf(mkdirAllInRoot(root, "/up/c"));
    typeOf(mkdirAllInRoot(root, "/d/mixed/e"));
    assertEquals(typeOf(createFileInRoot(root, "/abs/f")), S_IFREG);
    assertEquals(typeOf(createFileInRoot(root, "/up/g")), S_IFREG);
    assertEquals([...Deno.readDirSync(host)], [], `walk=${walk}: the host directory was written`);
    // What the links name, taken inside the root.
    assert(Deno.statSync(`${rootfs}${host}/a/b`).isDirectory);
    assert(Deno.statSync(`${rootfs}${host}/e`).isDirectory);
    assert(Deno.statSync(`${rootfs}${host}/f`).isFile);
    assert(Deno.statSync(`${rootfs}/c`).isDirectory);
    assert(Deno.statSync(`${rootfs}/g`).isFile);
  }));

Deno.test("mkdirAllInRoot() makes a dangling symlink's target inside the root", () =>
  withRoots(async (root, rootfs) => {
    await Deno.symlink("/no/such/dir", `${rootfs}/dangling`);
    assertEquals(typeOf(mkdirAllInRoot(root, "/dangling/sub")), S_IFDIR);
    assert(Deno.statSync(`${rootfs}/no/such/dir/sub`).isDirectory);
    assertEquals(Deno.lstatSync(`${rootfs}/dangling`).isSymlink, true);
  }));

Deno.test("openInRoot() takes .. no higher than the root and opens with the flags asked for", () =>
  withRoots(async (root, rootfs) => {
    await Deno.mkdir(`${rootfs}/etc`);
    await Deno.writeTextFile(`${rootfs}/etc/hosts`, "x");
    assertEquals(typeOf(openInRoot(root, "/../../etc/../../etc/hosts")), S_IFREG);
    assertEquals(typeOf(openInRoot(root, "/")), S_IFDIR);
    const fd = openInRoot(root, "/etc/..", O_RDONLY | O_DIRECTORY);
    try {
      assert(sys.readdir(fd).includes("etc"));
    } finally {
      sys.close(fd);
    }
  }));

Deno.test("lookups in the root name the path in the container when they fail", () =>
  withRoots(async (root, rootfs) => {
    await Deno.writeTextFile(`${rootfs}/file`, "x");
    assertEquals(
      errnoOf(() => mkdirAllInRoot(root, "/file/sub")),
      'ENOTDIR open "/file/sub": ENOTDIR',
    );
    assertEquals(errnoOf(() => mkdirAllInRoot(root, "/file")), 'ENOTDIR mkdir "/file": ENOTDIR');
    assertEquals(errnoOf(() => openInRoot(root, "/missing/x")), 'ENOENT open "/missing/x": ENOENT');
    await Deno.symlink("loop", `${rootfs}/loop`);
    assertEquals(errnoOf(() => mkdirAllInRoot(root, "/loop/x")).split(" ")[0], "ELOOP");
  }));

Deno.test("mkdirAllInRoot() with follow false returns a symlink in the last component as it is", () =>
  withRoots(async (root, rootfs, host) => {
    await Deno.symlink(host, `${rootfs}/proc`);
    assertEquals(typeOf(mkdirAllInRoot(root, "/proc", { follow: false })), S_IFLNK);
    assertEquals(typeOf(mkdirAllInRoot(root, "/sys", { follow: false })), S_IFDIR);
    const { dir, name } = parentInRoot(root, "/proc/x/y");
    assertEquals([typeOf(dir), name], [S_IFDIR, "y"]);
    assertEquals([...Deno.readDirSync(host)], [], "the host directory was written");
  }));

Deno.test("pathInRoot() names what a lookup reached, symlinks inside the root followed", () =>
  withRoots(async (root, rootfs) => {
    await Deno.mkdir(`${rootfs}/proc/sys`, { recursive: true });
    await Deno.symlink("/proc", `${rootfs}/abs`);
    await Deno.mkdir(`${rootfs}/d`);
    await Deno.symlink("../../../proc/sys", `${rootfs}/d/rel`);
    const at = (fd: number) => {
      try {
        return pathInRoot(root, fd);
      } finally {
        sys.close(fd);
      }
    };
    assertEquals(at(openInRoot(root, "/")), "/");
    assertEquals(at(mkdirAllInRoot(root, "/abs/sys")), "/proc/sys");
    assertEquals(at(mkdirAllInRoot(root, "/d/rel/kernel")), "/proc/sys/kernel");
    assertEquals(at(createFileInRoot(root, "/abs/cpuinfo")), "/proc/cpuinfo");
    assertEquals(at(mkdirAllInRoot(root, "/abs", { follow: false })), "/abs");
    // A root reached through a symlink on the host is named as the kernel names it.
    const linked = `${rootfs}/../linked`;
    await Deno.symlink(rootfs, linked);
    const other = openRoot(sys, linked);
    try {
      const fd = mkdirAllInRoot(other, "/abs/sys");
      try {
        assertEquals(pathInRoot(other, fd), "/proc/sys");
      } finally {
        sys.close(fd);
      }
    } finally {
      closeRoot(other);
    }
  }));

Deno.test("a root without openat2 (ENOSYS) walks component by component, links resolved inside it", () => {
  const fake = new FakeSyscall().failOn("openat2", "ENOSYS");
  fake.addFile("/bundle/rootfs/etc", S_IFDIR | 0o755);
  fake.files.set("/bundle/rootfs/etc/link", {
    mode: S_IFLNK | 0o777,
    content: new Uint8Array(),
    target: "/var/../abs",
  });
  const root = openRoot(fake, "/bundle/rootfs");
  const fd = mkdirAllInRoot(root, "/etc/link/x");
  assertEquals(root.walk, true);
  assertEquals(fake.fstat(fd).mode & S_IFMT, S_IFDIR);
  assert(fake.files.has("/bundle/rootfs/abs/x"), [...fake.files.keys()].join(" "));
  assert(!fake.files.has("/abs"));
  const made = fake.calls.filter((c) => c.name === "mkdirat").map((c) => c.args[1]);
  assertEquals(made, ["abs", "x"]);
  assertEquals(fake.calls.filter((c) => c.name === "openat2").length, 1, "openat2 tried once");
});

Deno.test({
  name:
    "lookups never leave the root while a directory on the way is swapped for a symlink to the host",
  ignore: !existsSync(PYTHON3),
  fn: () =>
    withRoots(async (root, rootfs, host, walk) => {
      await Deno.mkdir(`${rootfs}/race/x`, { recursive: true });
      await Deno.symlink(host, `${rootfs}/race/xl`);
      const swapper = await startSwapper(`${rootfs}/race`, "x", "xl");
      let swaps = 0, made = 0;
      try {
        const end = Date.now() + 1000;
        while (Date.now() < end) {
          for (let i = 0; i < 20; i++, made += 2) {
            typeOf(mkdirAllInRoot(root, `/race/x/d${i}`));
            typeOf(createFileInRoot(root, `/race/x/f${i}`));
          }
          if (Deno.lstatSync(`${rootfs}/race/x`).isSymlink) swaps++;
        }
        assert(swapper.running(), "the swapper stopped early");
      } finally {
        await swapper.stop();
      }
      assert(swaps > 0 && made > 0, `walk=${walk}: nothing raced (${swaps} swaps, ${made} made)`);
      assertEquals(names(host), [], `walk=${walk}: entries were made in the host directory`);
    }),
});

function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}
