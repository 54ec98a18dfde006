import { InvalidArgument } from "../../errors.ts";
import { MS_BIND, MS_RDONLY, MS_REC, MS_REMOUNT } from "../../ffi/constants.ts";
import { FakeSyscall } from "../../ffi/fake.ts";
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { mountAll, parseOptions, relativeOverlayOptions, unmountAll } from "./mount.ts";

Deno.test("parseOptions() splits flags from filesystem data", () => {
  assertEquals(parseOptions(["ro", "rbind", "nosuid"]).flags, MS_RDONLY | MS_BIND | MS_REC | 0x2);
  assertEquals(parseOptions(["rw", "index=off", "lowerdir=/a:/b"]), {
    flags: 0,
    data: ["index=off", "lowerdir=/a:/b"],
  });
});

Deno.test("mountAll() makes a read-only bind with a bind mount then a read-only remount", () => {
  const sys = new FakeSyscall();
  mountAll([{ type: "bind", source: "/s/1/fs", options: ["ro", "rbind"] }], "/mnt", { sys });
  assertEquals(sys.calls.map((c) => c.args), [
    ["/s/1/fs", "/mnt", null, MS_BIND | MS_REC, null],
    [null, "/mnt", null, MS_REMOUNT | MS_BIND | MS_RDONLY, null],
  ]);
});

Deno.test("mountAll() passes short overlay options straight to mount(2)", () => {
  const sys = new FakeSyscall();
  const options = ["workdir=/s/3/work", "upperdir=/s/3/fs", "lowerdir=/s/2/fs:/s/1/fs"];
  mountAll([{ type: "overlay", source: "overlay", options }], "/mnt", { sys });
  assertEquals(sys.names(), ["mount"]);
  assertEquals(sys.calls[0]!.args, ["overlay", "/mnt", "overlay", 0, options.join(",")]);
});

Deno.test("mountAll() mounts overlays with options longer than a page from a child in their common directory", () => {
  const sys = new FakeSyscall();
  const lowers = Array.from(
    { length: 200 },
    (_, i) => `/var/lib/tug/snapshots/overlayfs/snapshots/${200 - i}/fs`,
  );
  const options = [
    "index=off",
    "workdir=/var/lib/tug/snapshots/overlayfs/snapshots/201/work",
    "upperdir=/var/lib/tug/snapshots/overlayfs/snapshots/201/fs",
    `lowerdir=${lowers.join(":")}`,
  ];
  mountAll([{ type: "overlay", source: "overlay", options }], "/mnt", { sys });
  // The fake's fork returns the child's pid: what the parent does is recorded here, the child's
  // chdir + mount (made relative to /var/lib/tug/snapshots/overlayfs/snapshots) run only for real.
  assertEquals(sys.names(), ["fork", "waitpid"]);
});

Deno.test("mountAll() says so when even relative paths exceed a page", () => {
  const sys = new FakeSyscall();
  const lowers = Array.from({ length: 50 }, (_, i) => `/s/${"x".repeat(100)}${i}/fs`);
  const err = assertThrows(
    () =>
      mountAll(
        [{ type: "overlay", source: "overlay", options: [`lowerdir=${lowers.join(":")}`] }],
        "/mnt",
        { sys },
      ),
    InvalidArgument,
    "relative to",
  );
  assertEquals(err.message.includes("/mnt"), true);
  assertEquals(sys.names(), []);
});

Deno.test("mountAll() undoes the mounts it made when a later one fails", () => {
  const sys = new FakeSyscall().failAt(2, "EBUSY");
  assertThrows(
    () =>
      mountAll(
        [
          { type: "tmpfs", source: "tmpfs", options: [] },
          { type: "tmpfs", source: "tmpfs", options: [] },
        ],
        "/mnt",
        { sys },
      ),
    Error,
    "EBUSY",
  );
  assertEquals(sys.mounts, []);
});

Deno.test("unmountAll() unmounts until the target is no longer a mount point", () => {
  const sys = new FakeSyscall();
  sys.mount("a", "/mnt", "tmpfs", 0, null);
  sys.mount("b", "/mnt", "tmpfs", 0, null);
  unmountAll("/mnt", { sys });
  assertEquals(sys.mounts, []);
  assertEquals(sys.names().filter((n) => n === "umount2").length, 3);
});

Deno.test("relativeOverlayOptions() rewrites the directories relative to their common directory", () => {
  assertEquals(
    relativeOverlayOptions([
      "index=off",
      "workdir=/r/s/3/work",
      "upperdir=/r/s/3/fs",
      "lowerdir=/r/s/2/fs:/r/s/1/fs",
    ]),
    { dir: "/r/s", data: ["index=off", "workdir=3/work", "upperdir=3/fs", "lowerdir=2/fs:1/fs"] },
  );
  assertEquals(relativeOverlayOptions(["lowerdir=/r/s/2/fs:/r/s/2/fs"]), {
    dir: "/r/s/2",
    data: ["lowerdir=fs:fs"],
  });
  assertEquals(relativeOverlayOptions(["lowerdir=/a:/b"]), { dir: "/", data: ["lowerdir=a:b"] });
  assertEquals(relativeOverlayOptions(["lowerdir=relative:/b"]), undefined);
});
