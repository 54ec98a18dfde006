import { join } from "node:path";
import { assertEquals } from "../../tests/assert.ts";
import { requires, withTempDir } from "../../tests/harness.ts";
import { snapshotterConformance } from "./conformance.ts";
import { openNativeSnapshotter } from "./native.ts";

snapshotterConformance("native", (root) => openNativeSnapshotter(root), {
  ignore: requires("root"),
  chainLength: 40,
});

Deno.test("native: mounts are binds of the whole tree", async () => {
  await withTempDir(async (dir) => {
    const sn = await openNativeSnapshotter(dir);
    try {
      const fs = (id: number) => join(dir, "snapshots", String(id), "fs");
      assertEquals(await sn.prepare("a"), [{
        type: "bind",
        source: fs(1),
        options: ["rw", "rbind"],
      }]);
      await sn.commit("l1", "a");
      assertEquals(await sn.prepare("b", "l1"), [{
        type: "bind",
        source: fs(2),
        options: ["rw", "rbind"],
      }]);
      assertEquals(await sn.view("v", "l1"), [{
        type: "bind",
        source: fs(3),
        options: ["ro", "rbind"],
      }]);
    } finally {
      await sn.close();
    }
  });
});
