/**
 * When garbage collection runs, through a real daemon: soon after a start
 * on a root whose last daemon stopped (SIGTERM or kill -9) before the
 * collection it had scheduled; after a name is moved to another image (a
 * pull of a moved tag, `tag --force`, an import over a name); and what it
 * does with the ingests a killed daemon left (an import's go, a pull's stay
 * to resume).
 */
import { join } from "node:path";
import { assert, assertEquals, assertNotEquals } from "./assert.ts";
import {
  BUSYBOX_IMAGE as BUSYBOX,
  killDuringPull,
  ok,
  startDaemon,
  type TestDaemon,
  waitFor,
} from "./daemon.ts";
import { pushFixture } from "./fixtures/mod.ts";
import { requires, TUG } from "./harness.ts";
import { blobStall, startProxy, startRegistry } from "./registry.ts";

const ignore = requires("root", "tug", "registry", "skopeo", "umoci", "busybox");

/** The blobs in the content store under the daemon's root (on the disk, every namespace). */
function blobsOnDisk(daemon: TestDaemon): string[] {
  try {
    return [...Deno.readDirSync(join(daemon.dir, "root", "content", "blobs", "sha256"))]
      .map((e) => e.name);
  } catch {
    return [];
  }
}

/** The backing snapshots under the daemon's root, by snapshotter/name. */
function snapshotsOnDisk(daemon: TestDaemon): string[] {
  const found: string[] = [];
  const root = join(daemon.dir, "root", "snapshots");
  try {
    for (const sn of Deno.readDirSync(root)) {
      try {
        for (const e of Deno.readDirSync(join(root, sn.name, "snapshots"))) {
          found.push(`${sn.name}/${e.name}`);
        }
      } catch {
        // no snapshot yet
      }
    }
  } catch {
    // none
  }
  return found;
}

/** The ingests under the daemon's root: backing ref → bytes written. */
function ingests(daemon: TestDaemon): Map<string, number> {
  const dir = join(daemon.dir, "root", "content", "ingest");
  const found = new Map<string, number>();
  try {
    for (const e of Deno.readDirSync(dir)) {
      try {
        const ref = Deno.readTextFileSync(join(dir, e.name, "ref")).trim();
        found.set(ref, Deno.statSync(join(dir, e.name, "data")).size);
      } catch {
        // one being made
      }
    }
  } catch {
    // none
  }
  return found;
}

async function target(daemon: TestDaemon, name: string): Promise<string> {
  const images = JSON.parse(await ok(daemon, ["images", "ls", "--json"])) as Array<
    { name: string; target: { digest: string } }
  >;
  const image = images.find((i) => i.name === name);
  assert(image, `${name} in ${JSON.stringify(images)}`);
  return image.target.digest;
}

/** Waits (10 s at most) until a collection removed `digest` from the namespace's content. */
async function collected(daemon: TestDaemon, digest: string, why: string): Promise<void> {
  await waitFor(
    `${digest} collected (${why})`,
    async () => (await ok(daemon, ["content", "ls", "-q"])).includes(digest) ? undefined : true,
    10_000,
  );
}

Deno.test({
  name:
    "an image removed just before the daemon stops (SIGTERM, or kill -9) is collected soon after the next start",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    await pushFixture(registry, "single", { repo: "library/busybox" });
    // A collection an hour away: the daemon surely stops before it runs.
    await using first = await startDaemon({ registry, gcDelay: "1h" });
    for (const how of ["SIGTERM", "kill -9"]) {
      const daemon = how === "SIGTERM" ? first : await first.restart({ gcDelay: "1h" });
      await ok(daemon, ["images", "pull", "busybox"]);
      assert(blobsOnDisk(daemon).length > 0 && snapshotsOnDisk(daemon).length > 0);
      await ok(daemon, ["images", "rm", BUSYBOX]);
      if (how === "SIGTERM") assertEquals(await daemon.stop(), 0);
      else await daemon.kill9();
      assert(blobsOnDisk(daemon).length > 0, "nothing was collected before the stop");

      const next = await first.restart({ gcDelay: "100ms" });
      await waitFor(
        `the blobs and snapshots left before the ${how} collected`,
        () => blobsOnDisk(next).length === 0 && snapshotsOnDisk(next).length === 0 || undefined,
        10_000,
      );
      assertEquals(await ok(next, ["content", "ls", "-q"]), "");
      assertEquals(JSON.parse(await ok(next, ["snapshots", "ls", "--json"])), []);
      assertEquals(await next.stop(), 0);
    }
    // A clean stop with nothing pending leaves nothing for the next start to do: the idle
    // daemon does not even open its image store.
    const idle = await first.restart({ gcDelay: "100ms" });
    await ok(idle, ["version"]);
    await new Promise((r) => setTimeout(r, 1000));
    assert(!idle.log().includes('msg="image service open"'), idle.log());
  },
});

Deno.test({
  name:
    "moving a name to another image (pull of a moved tag, tag --force, import over it) collects the old image",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    await pushFixture(registry, "single", { repo: "library/busybox" });
    await using daemon = await startDaemon({ registry });
    await ok(daemon, ["images", "pull", "busybox"]);
    const a = await target(daemon, BUSYBOX);

    // The tag moves in the registry; a pull takes it over.
    await pushFixture(registry, "layers", { repo: "library/busybox" });
    await ok(daemon, ["images", "pull", "busybox"]);
    const b = await target(daemon, BUSYBOX);
    assertNotEquals(a, b);
    await collected(daemon, a, "re-pull of a moved tag");

    // tag --force over a name.
    const old = "docker.io/library/busybox:old";
    await pushFixture(registry, "single", { repo: "library/busybox", tag: "old" });
    await ok(daemon, ["images", "pull", old]);
    assertEquals(await target(daemon, old), a);
    await ok(daemon, ["images", "tag", "--force", BUSYBOX, old]);
    assertEquals(await target(daemon, old), b);
    await collected(daemon, a, "tag --force");

    // An import over a name.
    const other = "docker.io/library/busybox:other";
    await pushFixture(registry, "single", { repo: "library/busybox", tag: "other" });
    await ok(daemon, ["images", "pull", other]);
    const archive = join(daemon.dir, "b.tar");
    await ok(daemon, ["images", "export", archive, BUSYBOX]);
    await ok(daemon, ["images", "import", "--name", other, archive]);
    assertEquals(await target(daemon, other), b);
    await collected(daemon, a, "import over a name");
    assert((await ok(daemon, ["content", "ls", "-q"])).includes(b), "the new image stays");
  },
});

Deno.test({
  name:
    "the ingest of an import cut off by a kill -9 is removed after the restart; a cut-off pull's stays to resume",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    await pushFixture(registry, "large", { repo: "library/big" });
    const stall = blobStall(1 << 20, false);
    await using proxy = startProxy(registry.url, stall);
    await using first = await startDaemon({ registry: proxy });
    await ok(first, ["images", "pull", "big"]);
    const archive = join(first.dir, "big.tar");
    await ok(first, ["images", "export", archive, "docker.io/library/big:latest"]);
    await ok(first, ["images", "rm", "--sync", "docker.io/library/big:latest"]);

    // Half of the archive, then the daemon dies.
    const bytes = await Deno.readFile(archive);
    const cli = new Deno.Command(TUG, {
      args: ["-a", first.address, "images", "import", "-"],
      stdin: "piped",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const writer = cli.stdin.getWriter();
    await writer.write(bytes.subarray(0, bytes.length >> 1));
    const importing = () =>
      [...ingests(first)].some(([ref, n]) => ref.startsWith("default/import-") && n > 0);
    await waitFor("an import ingest", () => importing() || undefined, 20_000);
    await first.kill9();
    await writer.abort().catch(() => {});
    await cli.status;

    // A pull cut off the same way.
    const second = await first.restart();
    stall.on = true;
    const resumable = () =>
      [...ingests(first)].some(([ref, n]) => !ref.includes("/import-") && n >= 1 << 20);
    await killDuringPull(second, "big", resumable);
    assert(resumable(), "the pull's ingest is there");

    const third = await first.restart();
    await waitFor("the import's ingest removed", () => importing() ? undefined : true, 10_000);
    await waitFor(
      "a collection",
      () => third.log().includes('msg="garbage collected"') || undefined,
      10_000,
    );
    assert(resumable(), "the pull's ingest stays, to resume");
    assertEquals(
      [...ingests(third).keys()].filter((r) => r.includes("/import-")),
      [],
    );
    const df = JSON.parse(await ok(third, ["system", "df", "--json"]));
    assertEquals(df.ingests.count, ingests(third).size, "only the pull's partial downloads count");
    stall.on = false;
    await ok(third, ["images", "pull", "big"]);
  },
});
