import { join } from "node:path";
import { libcSyscall } from "../../ffi/libc.ts";
import { assertEquals } from "../../tests/assert.ts";
import { requires, withTempDir } from "../../tests/harness.ts";
import { CAPS, describeTree, richTree } from "../unpack/testing.ts";
import { copyTree } from "./copy.ts";

Deno.test({
  name: "copyTree() keeps owners, modes, xattrs, hard links, devices, symlinks and times",
  ignore: requires("root"),
  fn: () =>
    withTempDir(async (dir) => {
      const src = join(dir, "src"), dst = join(dir, "dst");
      await Deno.mkdir(src);
      await Deno.mkdir(dst);
      await richTree(src);
      libcSyscall().lsetxattr(
        join(src, "home"),
        "trusted.overlay.opaque",
        new TextEncoder().encode("y"),
      );
      await copyTree(src, dst);
      assertEquals(describeTree(dst, { dirMtimes: true }), describeTree(src, { dirMtimes: true }));
      assertEquals(libcSyscall().lgetxattr(join(dst, "capped"), "security.capability"), CAPS);
      assertEquals(
        libcSyscall().llistxattr(join(dst, "home")),
        [],
        "overlayfs' own attributes are not copied",
      );
    }),
});
