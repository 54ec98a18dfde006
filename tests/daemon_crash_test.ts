/**
 * `kill -9` of the daemon in the middle of a pull: after a restart on the
 * same root, the state is consistent (no image half-recorded, listings and
 * usage work), the next pull completes, resuming the partial layer, and
 * the killed pull's lease is gone, so nothing of the image stays once it is
 * removed.
 */
import { join } from "node:path";
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { killDuringPull, startDaemon } from "./daemon.ts";
import { pushFixture } from "./fixtures/mod.ts";
import { requires } from "./harness.ts";
import { blobStall, startProxy, startRegistry } from "./registry.ts";

const ignore = requires("root", "tug", "registry", "skopeo", "umoci", "busybox");

/** The bytes written into the ingests under `dir` (their `data` files). */
function ingestBytes(dir: string): number {
  let total = 0;
  try {
    for (const e of Deno.readDirSync(dir)) {
      try {
        total += Deno.statSync(join(dir, e.name, "data")).size;
      } catch {
        // an ingest being made
      }
    }
  } catch {
    // no ingest yet
  }
  return total;
}

Deno.test({
  name: "kill -9 during a pull, then a restart: nothing corrupt, and the next pull works",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    await pushFixture(registry, "large", { repo: "library/big" });
    // The proxy holds the big layer's download after 1 MiB, so the pull is surely mid-way when killed.
    const stall = blobStall(1 << 20);
    await using proxy = startProxy(registry.url, stall);
    await using first = await startDaemon({ registry: proxy });
    const dir = first.dir;
    // Killed once the big layer's first MiB is in its ingest, so the next pull has something to resume.
    const ingested = () => ingestBytes(join(dir, "root", "content", "ingest")) >= 1 << 20;
    const pull = await killDuringPull(first, "big", ingested);
    assert(ingested(), "the big layer's download had begun when the daemon was killed");
    assertStringIncludes(pull.out, "downloading");
    assert(pull.code !== 0, "the pull fails when the daemon dies");
    assertStringIncludes(pull.stderr, "tug daemon");

    stall.on = false;
    const second = await first.restart();
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
    // The partial layer is counted, as a partial download.
    const partial = JSON.parse((await second.tug(["system", "df", "--json"])).stdout);
    assert(partial.ingests.size >= 1 << 20, JSON.stringify(partial));
    const before = proxy.requests.length;
    const again = await second.tug(["images", "pull", "big"]);
    assertEquals(again.code, 0, again.stderr);
    // The restarted daemon continued the partial layer from where its ingest ended (a layer
    // whose download had not written anything yet starts again from zero).
    const blobs = proxy.requests.slice(before).filter((r) => r.path.includes("/blobs/"));
    for (const b of blobs.filter((b) => b.headers.range)) {
      assertEquals(b.status, 206, JSON.stringify(b));
    }
    assert(
      blobs.some((b) => b.headers.range === `bytes=${1 << 20}-`),
      `the big layer resumes after its first MiB: ${JSON.stringify(blobs)}`,
    );
    assertEquals(
      (await second.tug(["images", "ls", "-q"])).stdout,
      "docker.io/library/big:latest\n",
    );
    const df = JSON.parse((await second.tug(["system", "df", "--json"])).stdout);
    assertEquals(df.images.count, 1);
    assertEquals(df.ingests, { count: 0, size: 0 });
    // The killed pull's lease was removed when the daemon started again: once the image is
    // gone, nothing of it is held (that lease kept the config, and through it the snapshots).
    const rm = await second.tug(["images", "rm", "big"]);
    assertEquals(rm.code, 0, rm.stderr);
    const prune = await second.tug(["images", "prune", "--all"]);
    assertEquals(prune.code, 0, prune.stderr);
    assertEquals((await second.tug(["content", "ls", "-q"])).stdout, "");
    assertEquals(JSON.parse((await second.tug(["snapshots", "ls", "--json"])).stdout), []);
    assertStringIncludes(second.log(), "removed a lease left by an earlier run");
    assertEquals(await second.stop(), 0);
  },
});
