import { join } from "node:path";
import { InvalidArgument } from "../../errors.ts";
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { requires, withTempDir } from "../../tests/harness.ts";
import { snapshotterConformance } from "./conformance.ts";
import { openOverlaySnapshotter, OverlaySnapshotter } from "./overlay.ts";

snapshotterConformance("overlayfs", (root) => openOverlaySnapshotter(root), {
  ignore: requires("root", "overlayfs"),
});

Deno.test("overlayfs: mount records follow containerd's layout", async () => {
  await withTempDir(async (dir) => {
    const sn = await openOverlaySnapshotter(dir, { indexOff: true });
    try {
      const fs = (id: number) => join(dir, "snapshots", String(id), "fs");
      assertEquals(await sn.prepare("a"), [{
        type: "bind",
        source: fs(1),
        options: ["rw", "rbind"],
      }]);
      await sn.commit("l1", "a");
      assertEquals(await sn.view("v0"), [{
        type: "bind",
        source: fs(2),
        options: ["ro", "rbind"],
      }]);
      assertEquals(await sn.view("v1", "l1"), [{
        type: "bind",
        source: fs(1),
        options: ["ro", "rbind"],
      }]);
      await sn.prepare("b", "l1");
      assertEquals(await sn.mounts("b"), [{
        type: "overlay",
        source: "overlay",
        options: [
          "index=off",
          `workdir=${join(dir, "snapshots/4/work")}`,
          `upperdir=${fs(4)}`,
          `lowerdir=${fs(1)}`,
        ],
      }]);
      await sn.commit("l2", "b");
      assertEquals(await sn.view("v2", "l2"), [{
        type: "overlay",
        source: "overlay",
        options: ["index=off", `lowerdir=${fs(4)}:${fs(1)}`],
      }]);
    } finally {
      await sn.close();
    }
  });
});

Deno.test("overlayfs: a root whose path would break overlay options is refused", () => {
  assertThrows(() => new OverlaySnapshotter("/tmp/a,b"), InvalidArgument, "a,b");
  assertThrows(() => new OverlaySnapshotter("/tmp/a:b"), InvalidArgument, "a:b");
});

Deno.test("overlayfs: opening removes what an interrupted operation left", async () => {
  await withTempDir(async (dir) => {
    let sn = await openOverlaySnapshotter(dir);
    await sn.prepare("kept");
    await sn.close();
    for (const leftover of ["new-123", "rm-7", "42"]) {
      await Deno.mkdir(join(dir, "snapshots", leftover, "fs"), { recursive: true });
    }
    sn = await openOverlaySnapshotter(dir);
    try {
      assertEquals([...Deno.readDirSync(join(dir, "snapshots"))].map((e) => e.name), ["1"]);
      assertEquals((await sn.stat("kept")).kind, "active");
    } finally {
      await sn.close();
    }
  });
});
