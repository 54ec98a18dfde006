/**
 * `kill -9` of the daemon in the middle of a pull: after a restart on the
 * same root, the state is consistent (no image half-recorded, listings and
 * usage work) and the next pull completes.
 */
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { killDuringPull, startDaemon } from "./daemon.ts";
import { pushFixture } from "./fixtures/mod.ts";
import { requires } from "./harness.ts";
import { startProxy, startRegistry } from "./registry.ts";

const ignore = requires("root", "tug", "registry", "skopeo", "umoci", "busybox");

Deno.test({
  name: "kill -9 during a pull, then a restart: nothing corrupt, and the next pull works",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    await pushFixture(registry, "large", { repo: "library/big" });
    // The proxy holds the big layer's download after 1 MiB, so the pull is surely mid-way when killed.
    let stalling = true;
    await using proxy = startProxy(registry.url, {
      stallAfter: (req) =>
        (stalling && req.method === "GET" && new URL(req.url).pathname.includes("/blobs/"))
          ? 1 << 20
          : undefined,
    });
    const first = await startDaemon({ registry: proxy });
    const dir = first.dir;
    try {
      const pull = await killDuringPull(first, "big");
      assertStringIncludes(pull.out, "downloading");
      assert(pull.code !== 0, "the pull fails when the daemon dies");
      assertStringIncludes(pull.stderr, "tug daemon");

      stalling = false;
      const second = await startDaemon({ dir, registry: proxy });
      try {
        assertEquals(
          (await second.tug(["images", "ls", "-q"])).stdout,
          "",
          "no half-recorded image",
        );
        for (
          const args of [["content", "ls"], ["snapshots", "ls"], ["images", "usage"], [
            "system",
            "df",
          ], ["namespaces", "ls"]]
        ) {
          const r = await second.tug(args);
          assertEquals(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
        }
        const again = await second.tug(["images", "pull", "big"]);
        assertEquals(again.code, 0, again.stderr);
        assertEquals(
          (await second.tug(["images", "ls", "-q"])).stdout,
          "docker.io/library/big:latest\n",
        );
        const df = JSON.parse((await second.tug(["system", "df", "--json"])).stdout);
        assertEquals(df.images.count, 1);
        assertEquals(await second.stop(), 0);
      } finally {
        await second.cleanup();
      }
    } finally {
      await first.cleanup();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
