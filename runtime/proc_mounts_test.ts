import { assert, assertEquals } from "../tests/assert.ts";
import { PROC_FILES_ALLOWED, type ProcMountCandidate, procMountRefusal } from "./proc_mounts.ts";

function check(m: Partial<ProcMountCandidate> & { destination: string }): string | undefined {
  return procMountRefusal({
    resolved: m.destination,
    type: "tmpfs",
    bind: false,
    sourceIsProcfs: () => {
      throw new Error("sourceIsProcfs() asked");
    },
    ...m,
  });
}

Deno.test("procMountRefusal() refuses mounts inside /proc, of any type", () => {
  for (const type of ["tmpfs", "mqueue", "overlay", "proc", "sysfs", "cgroup"]) {
    assertEquals(
      check({ destination: "/proc/sys", type }),
      '"/proc/sys" cannot be mounted because it is inside /proc',
      type,
    );
  }
  assertEquals(
    check({ destination: "/proc/self/attr", resolved: "/proc/1/attr", bind: true, type: "bind" }),
    '"/proc/self/attr" cannot be mounted because it is inside /proc',
  );
  assertEquals(
    check({ destination: "/proc/sys/kernel/", type: "bind", bind: true }),
    '"/proc/sys/kernel/" cannot be mounted because it is inside /proc',
  );
});

Deno.test("procMountRefusal() says where a destination outside /proc resolved to", () => {
  assertEquals(
    check({ destination: "/foo/sys", resolved: "/proc/sys" }),
    '"/foo/sys" cannot be mounted because it resolves to "/proc/sys" and is inside /proc',
  );
  assertEquals(
    check({ destination: "/foo", resolved: "/proc" }),
    '"/foo" cannot be mounted because it resolves to "/proc" and is not of type proc',
  );
  // And lets through what a destination in /proc resolved to elsewhere (a rootfs whose /proc is a link).
  assertEquals(check({ destination: "/proc/sys", resolved: "/elsewhere/sys" }), undefined);
});

Deno.test("procMountRefusal() lets a proc mount, or a bind of a procfs, cover /proc itself", () => {
  assertEquals(check({ destination: "/proc", type: "proc" }), undefined);
  assertEquals(check({ destination: "//proc/", type: "proc" }), undefined);
  assertEquals(
    check({ destination: "/proc", type: "bind", bind: true, sourceIsProcfs: () => true }),
    undefined,
  );
  assertEquals(
    check({ destination: "/proc", type: "bind", bind: true, sourceIsProcfs: () => false }),
    '"/proc" cannot be mounted because it is not of type proc',
  );
  // A bind is judged by its source whatever type it claims (runc's "tricky bind mount" case).
  assertEquals(
    check({ destination: "/proc", type: "proc", bind: true, sourceIsProcfs: () => false }),
    '"/proc" cannot be mounted because it is not of type proc',
  );
  for (const type of ["tmpfs", "sysfs", "overlay"]) {
    assertEquals(
      check({ destination: "/proc", type }),
      '"/proc" cannot be mounted because it is not of type proc',
      type,
    );
  }
});

Deno.test("procMountRefusal() allows the files lxcfs emulates, and only those exactly", () => {
  // runc's list as of 1.2 (with fips_enabled, from runc#4246).
  assertEquals(PROC_FILES_ALLOWED.length, 11);
  for (
    const file of ["/proc/meminfo", "/proc/sys/kernel/ns_last_pid", "/proc/sys/crypto/fips_enabled"]
  ) {
    assert(PROC_FILES_ALLOWED.includes(file), file);
  }
  for (const file of PROC_FILES_ALLOWED) {
    assertEquals(check({ destination: file, type: "bind", bind: true }), undefined, file);
    assertEquals(check({ destination: file, type: "fuse.lxcfs" }), undefined, file);
  }
  assertEquals(check({ destination: "/proc/cpuinfo/x" }) !== undefined, true);
  assertEquals(check({ destination: "/proc/net" }) !== undefined, true);
  // Judged where it resolved: with proc mounted, /proc/net is a link to self/net, so /proc/net/dev
  // is /proc/1/net/dev, which is not on the list (runc refuses it the same way).
  assertEquals(
    check({ destination: "/proc/net/dev", resolved: "/proc/1/net/dev" }),
    '"/proc/net/dev" cannot be mounted because it resolves to "/proc/1/net/dev" and is inside /proc',
  );
  assertEquals(check({ destination: "/x", resolved: "/proc/meminfo" }), undefined);
});

Deno.test("procMountRefusal() leaves everything outside /proc alone", () => {
  for (const destination of ["/", "/sys", "/sys/fs/cgroup", "/procfs", "/proc2/sys", "/dev/proc"]) {
    assertEquals(check({ destination }), undefined, destination);
  }
});
