/**
 * Images through the real CLI and daemon: `docker.io` served by a test
 * registry (Debian's docker-registry) through hosts.toml, busybox fixtures
 * pushed by skopeo. Pull with progress lines, list, tag, remove, export and
 * import, prune, usage, namespaces isolation, and clear errors.
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import {
  BUSYBOX_IMAGE as BUSYBOX,
  ok,
  startDaemon,
  stopWithin,
  type TestDaemon,
} from "./daemon.ts";
import { pushFixture } from "./fixtures/mod.ts";
import { requires, run, TUG, withTempDir } from "./harness.ts";
import { startProxy, startRegistry } from "./registry.ts";
import { concat } from "../util/bytes.ts";

const ignore = requires("root", "tug", "registry", "skopeo", "umoci", "busybox");

async function fails(daemon: TestDaemon, args: string[], message: string): Promise<void> {
  const r = await daemon.tug(args);
  assert(r.code !== 0, `tug ${args.join(" ")} should fail`);
  assertStringIncludes(r.stderr, message);
}

async function names(daemon: TestDaemon, ns = "default"): Promise<string[]> {
  return (await ok(daemon, ["-n", ns, "images", "ls", "-q"])).split("\n").filter(Boolean);
}

/**
 * `tug images export - REF` as a child process, read until `bytes` have come
 * (then left waiting): its reader, what it gave so far and its stderr.
 */
async function exportUntil(daemon: TestDaemon, ref: string, bytes: number) {
  const cli = new Deno.Command(TUG, {
    args: ["-a", daemon.address, "images", "export", "-", ref],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(cli.stderr).text();
  const reader = cli.stdout.getReader();
  const chunks: Uint8Array[] = [];
  let got = 0;
  while (got < bytes) {
    const r = await reader.read();
    assert(!r.done, "the export ended early");
    chunks.push(r.value);
    got += r.value.length;
  }
  return { cli, stderr, reader, chunks };
}

Deno.test({
  name:
    "images pull through the docker.io mirror prints plain progress lines, then list, tag and remove work",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    await pushFixture(registry, "layers", { repo: "library/busybox" });
    await using daemon = await startDaemon({ registry });
    const out = await ok(daemon, ["images", "pull", "busybox"]);
    assertStringIncludes(out, `busybox: resolving`);
    assertMatch(out, /^layer sha256:[0-9a-f]{64}: (downloading|done) \(/m);
    assertMatch(out, /^unpacked 4\/4 layers$/m);
    assertMatch(out, new RegExp(`^${BUSYBOX}: pulled sha256:[0-9a-f]{64} in [0-9.]+s: `, "m"));

    const table = await ok(daemon, ["images", "ls"]);
    assertMatch(table.split("\n")[0]!, /^REF\s+TYPE\s+DIGEST\s+SIZE\s+PLATFORMS\s+LABELS$/);
    assertStringIncludes(table, BUSYBOX);
    assertStringIncludes(table, "linux/amd64");
    const json = JSON.parse(await ok(daemon, ["images", "list", "--json"]));
    assertEquals(json.map((i: { name: string }) => i.name), [BUSYBOX]);

    await ok(daemon, ["images", "tag", BUSYBOX, "docker.io/library/busybox:copy"]);
    assertEquals(await names(daemon), ["docker.io/library/busybox:copy", BUSYBOX]);
    await fails(
      daemon,
      ["images", "tag", BUSYBOX, "docker.io/library/busybox:copy"],
      "exists already",
    );
    await ok(daemon, ["images", "tag", "--force", BUSYBOX, "docker.io/library/busybox:copy"]);

    assertEquals(await ok(daemon, ["images", "rm", BUSYBOX]), `${BUSYBOX}\n`);
    assertEquals(await names(daemon), ["docker.io/library/busybox:copy"]);
    await fails(daemon, ["images", "rm", BUSYBOX], "not found");
    await fails(daemon, ["images", "pull", "docker.io/library/nonexistent:latest"], "not found");
    await fails(daemon, [
      "images",
      "pull",
      "--platform",
      "linux/amd64",
      "--all-platforms",
      "busybox",
    ], "not both");
    await ok(daemon, ["images", "rm", "--sync", "docker.io/library/busybox:copy"]);
    assertEquals(await names(daemon), []);
    assertEquals(await ok(daemon, ["content", "ls", "-q"]), "", "--sync freed the content");
  },
});

Deno.test({
  name: "images export then import round-trips an image through a file and through stdin",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    await pushFixture(registry, "single", { repo: "library/busybox" });
    await using daemon = await startDaemon({ registry });
    await ok(daemon, ["images", "pull", "busybox"]);
    const digest = JSON.parse(await ok(daemon, ["images", "ls", "--json"]))[0].target.digest;
    await withTempDir(async (dir) => {
      const file = join(dir, "busybox.tar");
      await ok(daemon, ["images", "export", file, BUSYBOX]);
      assert((await Deno.stat(file)).size > 1024);
      await fails(
        daemon,
        ["images", "export", join(dir, "x.tar"), "docker.io/library/none:latest"],
        "not found",
      );
      let leftover = false;
      try {
        await Deno.stat(join(dir, "x.tar.tug-partial"));
        leftover = true;
      } catch {
        // nothing left behind
      }
      assert(!leftover, "a failed export leaves no file");

      // What is not a regular file is written to, not replaced: a FIFO (as /dev/null would be).
      const fifo = join(dir, "fifo");
      await run("mkfifo", [fifo]);
      const reader = new Deno.Command("cat", { args: [fifo], stdout: "piped" }).spawn();
      const through = reader.output();
      try {
        await ok(daemon, ["images", "export", fifo, BUSYBOX]);
        assert((await Deno.lstat(fifo)).isFifo, "the FIFO is still a FIFO");
        assertEquals((await through).stdout.length, (await Deno.stat(file)).size);
      } finally {
        try {
          reader.kill("SIGKILL"); // only if it is still waiting for a writer
        } catch {
          // ended
        }
        await through.catch(() => {});
      }
      // A client that goes away in the middle of an export leaves the daemon serving.
      const slow = join(dir, "slow");
      await run("mkfifo", [slow]);
      const cli = new Deno.Command(TUG, {
        args: ["-a", daemon.address, "images", "export", slow, BUSYBOX],
        stdout: "null",
        stderr: "null",
      }).spawn();
      const partial = await Deno.open(slow, { read: true });
      await partial.read(new Uint8Array(1024));
      await new Promise((r) => setTimeout(r, 200));
      cli.kill("SIGKILL");
      await cli.status;
      partial.close();
      await new Promise((r) => setTimeout(r, 300));
      await ok(daemon, ["version"]);
      // A symbolic link is written through.
      const target = join(dir, "target.tar");
      await Deno.writeTextFile(target, "");
      await Deno.symlink(target, join(dir, "link.tar"));
      await ok(daemon, ["images", "export", join(dir, "link.tar"), BUSYBOX]);
      assert((await Deno.lstat(join(dir, "link.tar"))).isSymlink, "the link is still a link");
      assertEquals((await Deno.stat(target)).size, (await Deno.stat(file)).size);

      await ok(daemon, ["images", "rm", "--sync", BUSYBOX]);
      const imported = await ok(daemon, ["images", "import", file]);
      assertEquals(imported, `${BUSYBOX}: imported ${digest}\n`);
      assertEquals(await names(daemon), [BUSYBOX]);

      const empty = await daemon.tug(["-n", "other", "images", "import", "-"], { stdin: "" });
      assert(empty.code !== 0, "an empty archive is refused");
      const child = new Deno.Command(TUG, {
        args: [
          "-a",
          daemon.address,
          "-n",
          "other",
          "images",
          "import",
          "--name",
          "example.com/renamed:v1",
          "-",
        ],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      await (await Deno.open(file)).readable.pipeTo(child.stdin);
      const out = await child.output();
      assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
      assertEquals(await names(daemon, "other"), ["example.com/renamed:v1"]);
    });
  },
});

Deno.test({
  name: "images prune --all removes unused images and frees their space; usage and system df agree",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    await pushFixture(registry, "single", { repo: "library/busybox" });
    await using daemon = await startDaemon({ registry });
    await ok(daemon, ["images", "pull", "busybox"]);
    const usage = await ok(daemon, ["images", "usage"]);
    assertMatch(usage.split("\n")[0]!, /^REF\s+CONTENT\s+SNAPSHOTS\s+SIZE\s+SHARED\s+UNIQUE$/);
    assertStringIncludes(usage, BUSYBOX);
    const one = JSON.parse(await ok(daemon, ["images", "usage", "--json", "busybox"]));
    assertEquals(one.length, 1);
    assert(one[0].size > 0);
    const df = JSON.parse(await ok(daemon, ["system", "df", "--json"]));
    assertEquals([df.images.count, df.content.count, df.snapshots.count], [1, 3, 1]);
    assertStringIncludes(await ok(daemon, ["system", "df"]), "Images");
    // Two names of one image: its bytes count once, and with no container all are reclaimable.
    await ok(daemon, ["images", "tag", BUSYBOX, "docker.io/library/busybox:copy"]);
    const two = JSON.parse(await ok(daemon, ["system", "df", "--json"]));
    assertEquals(two.images.count, 2);
    assertEquals(two.images.size, two.content.size + two.snapshots.size);
    assertEquals(two.images.reclaimable, two.images.size);
    await ok(daemon, ["images", "rm", "docker.io/library/busybox:copy"]);
    assertEquals((await ok(daemon, ["content", "ls", "-q"])).split("\n").filter(Boolean).length, 3);
    assertStringIncludes(await ok(daemon, ["snapshots", "ls"]), "committed");

    const nothing = await ok(daemon, ["images", "prune"]);
    assertStringIncludes(nothing, "reclaimed 0 B");
    // The same image in another namespace: pruning it there frees its snapshot only (the blobs
    // stay, recorded here), and says so.
    await ok(daemon, ["-n", "other", "images", "pull", "busybox"]);
    const snapshot = JSON.parse(await ok(daemon, ["-n", "other", "snapshots", "usage", "--json"]));
    assertEquals(snapshot.length, 1);
    const there = JSON.parse(
      await ok(daemon, ["-n", "other", "images", "prune", "--all", "--json"]),
    );
    assertEquals([there.gc.blobs, there.gc.snapshots], [0, 1]);
    assertEquals(there.reclaimed, snapshot[0].size);
    const pruned = await ok(daemon, ["images", "prune", "--all"]);
    assertStringIncludes(pruned, `removed ${BUSYBOX}`);
    assertMatch(pruned, /reclaimed [1-9][0-9.]* [KM]iB \(3 blobs, 1 snapshots\)/);
    assertEquals(await names(daemon), []);
    assertEquals(await ok(daemon, ["content", "ls", "-q"]), "");
    assertEquals(JSON.parse(await ok(daemon, ["snapshots", "ls", "--json"])), []);
  },
});

Deno.test({
  name: "namespaces isolate images; a namespace is removed only once empty",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    await pushFixture(registry, "single", { repo: "library/busybox" });
    await using daemon = await startDaemon({ registry });
    await ok(daemon, ["namespaces", "create", "team-a", "owner=ops"]);
    await fails(daemon, ["namespaces", "create", "team-a"], "exists already");
    await fails(daemon, ["namespaces", "create", "bad name"], "Invalid namespace");
    await ok(daemon, ["-n", "team-a", "images", "pull", "busybox"]);
    assertEquals(await names(daemon, "team-a"), [BUSYBOX]);
    assertEquals(await names(daemon, "default"), []);
    const env = await daemon.tug(["images", "ls", "-q"], { env: { TUG_NAMESPACE: "team-a" } });
    assertEquals(env.stdout.trim(), BUSYBOX);
    await fails(daemon, ["images", "rm", BUSYBOX], "not found");

    const ls = await ok(daemon, ["namespaces", "ls"]);
    assertMatch(ls, /^team-a\s+owner=ops$/m);
    await fails(daemon, ["namespaces", "rm", "team-a"], "still holds images");
    await ok(daemon, ["-n", "team-a", "images", "rm", BUSYBOX]);
    // Content and snapshots of the removed image are collected on the way.
    assertEquals(await ok(daemon, ["namespaces", "rm", "team-a"]), "team-a\n");
    assertEquals(
      JSON.parse(await ok(daemon, ["namespaces", "ls", "--json"])).map((n: { name: string }) =>
        n.name
      ),
      [],
    );
    await fails(daemon, ["namespaces", "rm", "team-a"], "not found");
  },
});

Deno.test({
  name: "on a terminal, images pull draws a progress bar per layer",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    await pushFixture(registry, "layers", { repo: "library/busybox" });
    await using daemon = await startDaemon({ registry });
    // util-linux's script gives the command a pseudo-terminal as stdout.
    const r = await new Deno.Command("script", {
      args: ["-qefc", `${TUG} -a ${daemon.address} images pull busybox`, "/dev/null"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(r.stdout);
    assertEquals(r.code, 0, out);
    assertMatch(out, /layer {4}[0-9a-f]{12} {2}\S+ +\[[= >]+\]/);
    assertStringIncludes(out, "\x1b[", "the bars are redrawn in place");
    assertStringIncludes(out, `${BUSYBOX}: pulled sha256:`);
  },
});

Deno.test({
  name:
    "images pull --platform fetches and unpacks that platform's manifest only, --all-platforms fetches every one, an absent platform is named, an image of another platform without an index is refused",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    await pushFixture(registry, "multi", { repo: "library/multi" });
    await using daemon = await startDaemon({ registry });
    const platforms = async () =>
      JSON.parse(await ok(daemon, ["images", "ls", "--json"]))[0].platforms as string[];
    const snapshots = async () =>
      JSON.parse(await ok(daemon, ["snapshots", "ls", "--json"])).length;

    const arm64 = await ok(daemon, ["images", "pull", "--platform", "linux/arm64/v8", "multi"]);
    assertMatch(arm64, /^unpacked 2\/2 layers$/m);
    assertEquals(await platforms(), ["linux/arm64/v8"]);
    assertEquals(await snapshots(), 2, "the shared base layer and arm64's own");

    const all = await ok(daemon, ["images", "pull", "--all-platforms", "multi"]);
    // amd64's and arm/v7's manifests, configs and own layers (amd64's config fetched while
    // planning its unpack counts as fetched too).
    assertMatch(all, /: pulled sha256:[0-9a-f]{64} .*: 6 blobs fetched/);
    assertEquals(await platforms(), ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"]);
    // This machine's manifest is unpacked as well (on arm64 it is the one already there).
    assertEquals(await snapshots(), Deno.build.arch === "aarch64" ? 2 : 3);

    await fails(
      daemon,
      ["images", "pull", "--platform", "linux/s390x", "multi"],
      "has no manifest for platform linux/s390x (available: linux/amd64, linux/arm64/v8, linux/arm/v7)",
    );

    // An image without an index is taken for this machine as it is (as Docker does), but not for
    // a platform asked for that its config does not name.
    await pushFixture(registry, "single", { repo: "library/busybox" });
    const [here, other] = Deno.build.arch === "aarch64"
      ? ["linux/arm64", "linux/amd64"]
      : ["linux/amd64", "linux/arm64"];
    await fails(
      daemon,
      ["images", "pull", "--platform", other, "busybox"],
      `is an image for ${here}, not for ${other}`,
    );
    assertEquals(await names(daemon), ["docker.io/library/multi:latest"]);
    await ok(daemon, ["images", "pull", "--platform", here, "busybox"]);
  },
});

Deno.test({
  name:
    "images pull and push -u user:password reach a registry that wants credentials; without them the error says so",
  ignore,
  async fn() {
    await using registry = await startRegistry({ auth: "htpasswd" });
    const ref = await pushFixture(registry, "single", { repo: "private/app" });
    await using daemon = await startDaemon();
    const creds = registry.credentials!;
    const denied = await daemon.tug(["images", "pull", "--plain-http", ref]);
    assert(denied.code !== 0);
    assertStringIncludes(denied.stderr, "asks for basic credentials and none were given");
    assertEquals(await names(daemon), []);
    await fails(
      daemon,
      ["images", "pull", "--plain-http", "-u", `${creds.username}:wrong`, ref],
      `the credentials of ${creds.username} were refused`,
    );
    await ok(daemon, [
      "images",
      "pull",
      "--plain-http",
      "-u",
      `${creds.username}:${creds.password}`,
      ref,
    ]);
    assertEquals(await names(daemon), [ref]);
    // A push's first requests go out at once, before its client knows the registry wants basic.
    const remote = `${registry.host}/private/copy:v1`;
    const user = `${creds.username}:${creds.password}`;
    await ok(daemon, ["images", "push", "--plain-http", "-u", user, remote, ref]);
    await ok(daemon, ["-n", "other", "images", "pull", "--plain-http", "-u", user, remote]);
  },
});

Deno.test({
  name: "images pull and push -u user: send an empty password, which a registry's account may have",
  ignore,
  async fn() {
    await using registry = await startRegistry({ auth: "htpasswd", users: { nopass: "" } });
    const ref = await pushFixture(registry, "single", { repo: "private/app" });
    await using daemon = await startDaemon();
    await ok(daemon, ["images", "pull", "--plain-http", "-u", "nopass:", ref]);
    assertEquals(await names(daemon), [ref]);
    const remote = `${registry.host}/private/copy:v1`;
    await ok(daemon, ["images", "push", "--plain-http", "-u", "nopass:", remote, ref]);
    await ok(daemon, ["-n", "other", "images", "pull", "--plain-http", "-u", "nopass:", remote]);
    await fails(
      daemon,
      ["images", "pull", "--plain-http", "-u", `${registry.credentials!.username}:`, ref],
      `the credentials of ${registry.credentials!.username} were refused`,
    );
  },
});

Deno.test({
  name: "images push sends a local image to another repository, which pulls back the same digest",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    await pushFixture(registry, "single", { repo: "library/busybox" });
    await using daemon = await startDaemon({ registry });
    await ok(daemon, ["images", "pull", "busybox"]);
    const digest = JSON.parse(await ok(daemon, ["images", "ls", "--json"]))[0].target.digest;
    const remote = `${registry.host}/pushed/copy:v2`;
    const out = await ok(daemon, ["images", "push", "--plain-http", remote, "busybox"]);
    assertStringIncludes(out, `${remote}: pushed ${digest}`);
    await fails(
      daemon,
      ["images", "push", "--plain-http", remote, "docker.io/library/none:latest"],
      "not found",
    );
    await ok(daemon, ["-n", "other", "images", "pull", "--plain-http", remote]);
    assertEquals(
      JSON.parse(await ok(daemon, ["-n", "other", "images", "ls", "--json"]))[0].target.digest,
      digest,
    );
  },
});

Deno.test({
  name:
    "images export and push hold their image: removing it and pruning meanwhile cuts neither short",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    await pushFixture(registry, "large", { repo: "library/big" });
    // The push's blob uploads wait until the image has been removed and pruned.
    let release = Promise.withResolvers<void>();
    await using proxy = startProxy(registry.url, {
      hold: (req) => req.method === "POST" ? release.promise : undefined,
    });
    await using daemon = await startDaemon({ registry });
    const BIG = "docker.io/library/big:latest";
    await ok(daemon, ["images", "pull", "big"]);
    const digest = JSON.parse(await ok(daemon, ["images", "ls", "--json"]))[0].target.digest;
    await withTempDir(async (dir) => {
      // The export is read until it is inside the 50 MiB layer, then left waiting.
      const { cli, stderr, reader, chunks } = await exportUntil(daemon, BIG, 4 << 20);
      await ok(daemon, ["images", "rm", BIG]);
      await ok(daemon, ["images", "prune"]);
      for (;;) {
        const r = await reader.read();
        if (r.done) break;
        chunks.push(r.value);
      }
      const status = await cli.status;
      assertEquals(status.code, 0, await stderr);
      const file = join(dir, "big.tar");
      await Deno.writeFile(file, concat(chunks));
      assertEquals(
        await ok(daemon, ["-n", "other", "images", "import", file]),
        `${BIG}: imported ${digest}\n`,
      );
      // The export's lease went with it: the removed image's content goes at the next prune.
      await ok(daemon, ["images", "prune"]);
      assertEquals(await ok(daemon, ["content", "ls", "-q"]), "");

      // A push, its uploads held until the image is removed and pruned, still sends every blob.
      release = Promise.withResolvers<void>();
      const remote = `${proxy.host}/pushed/big:v1`;
      const push = daemon.tug(["-n", "other", "images", "push", "--plain-http", remote, BIG]);
      while (!proxy.requests.some((r) => r.method === "HEAD" && r.path.includes("/pushed/"))) {
        await new Promise((r) => setTimeout(r, 50));
      }
      await ok(daemon, ["-n", "other", "images", "rm", BIG]);
      await ok(daemon, ["-n", "other", "images", "prune"]);
      release.resolve();
      const pushed = await push;
      assertEquals(pushed.code, 0, pushed.stderr);
      assertStringIncludes(pushed.stdout, `${remote}: pushed ${digest}`);
      await ok(daemon, ["-n", "third", "images", "pull", "--plain-http", remote]);
      await ok(daemon, ["-n", "other", "images", "prune"]);
      assertEquals(await ok(daemon, ["-n", "other", "content", "ls", "-q"]), "");
    });
  },
});

Deno.test({
  name:
    "an export that fails once its archive has begun ends with an error naming the images, and the daemon logs one line naming the blob",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    await pushFixture(registry, "large", { repo: "library/big" });
    await using daemon = await startDaemon({ registry });
    const BIG = "docker.io/library/big:latest";
    await ok(daemon, ["images", "pull", "big"]);
    const target = JSON.parse(await ok(daemon, ["images", "ls", "--json"]))[0].target.digest;
    const blob = (d: string) => join(daemon.dir, "root", "content", "blobs", "sha256", d.slice(7));
    const manifest = JSON.parse(await Deno.readTextFile(blob(target)));
    const last: string = manifest.layers.at(-1).digest;
    const { cli, stderr, reader } = await exportUntil(daemon, BIG, 4 << 20);
    // The disk loses a blob the export has not reached yet (what no lease can prevent).
    await Deno.remove(blob(last));
    while (!(await reader.read()).done) {
      // read to the end
    }
    assertEquals((await cli.status).code, 1);
    assertStringIncludes(await stderr, `Export ${BIG}: the daemon broke off the archive`);
    const line = daemon.log().split("\n").find((l) => l.includes(`msg="export failed"`));
    assert(line, daemon.log());
    assertStringIncludes(line, "level=error");
    assertStringIncludes(line, last);
    assert(!/^\s+at /m.test(daemon.log()), `no stack trace: ${daemon.log()}`);
  },
});

Deno.test({
  name:
    "SIGTERM cancels a pull whose registry stalls: the daemon exits and the client is told it is shutting down",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    await pushFixture(registry, "large", { repo: "library/big" });
    await using proxy = startProxy(registry.url, {
      stallAfter: (req) =>
        req.method === "GET" && new URL(req.url).pathname.includes("/blobs/") ? 1 << 20 : undefined,
    });
    await using daemon = await startDaemon({ registry: proxy });
    const pull = daemon.tug(["images", "pull", "big"]);
    while (!proxy.requests.some((r) => r.path.includes("/blobs/") && r.status === 200)) {
      await new Promise((r) => setTimeout(r, 50));
    }
    // The old behaviour waited for the stalled pull for good.
    assertEquals(
      await stopWithin(daemon),
      0,
      "the daemon exits on SIGTERM with a pull in flight",
    );
    const r = await pull;
    assertEquals(r.code, 1);
    assertStringIncludes(r.stderr, "Pull big: the daemon is shutting down");
    assertStringIncludes(daemon.log(), "the daemon is shutting down");
  },
});

Deno.test({
  name:
    "SIGTERM cancels a pull whose token server stalls: the daemon exits, the client is told it is shutting down, the token request is given up",
  ignore,
  async fn() {
    await using registry = await startRegistry({ auth: "token" });
    const ref = await pushFixture(registry, "single", { repo: "private/app" });
    const asked = Promise.withResolvers<void>();
    const closed = Promise.withResolvers<void>();
    const release = Promise.withResolvers<void>();
    registry.tokenServer!.hold = (req) => {
      req.signal.addEventListener("abort", () => closed.resolve(), { once: true });
      asked.resolve();
      return Promise.race([closed.promise, release.promise]);
    };
    try {
      await using daemon = await startDaemon();
      const creds = registry.credentials!;
      const pull = daemon.tug([
        "images",
        "pull",
        "--plain-http",
        "-u",
        `${creds.username}:${creds.password}`,
        ref,
      ]);
      await asked.promise;
      // The old behaviour waited for the token server for good.
      assertEquals(
        await stopWithin(daemon),
        0,
        "the daemon exits on SIGTERM with a pull waiting for a token",
      );
      const r = await pull;
      assertEquals(r.code, 1);
      assertStringIncludes(r.stderr, `Pull ${ref}: the daemon is shutting down`);
      await closed.promise;
    } finally {
      release.resolve();
    }
  },
});

Deno.test({
  name:
    "clear errors: an empty namespace, an unknown digest, an uppercase path, another platform (nothing unpacked); rm by digest works",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    await pushFixture(registry, "single", { repo: "library/busybox" });
    await using daemon = await startDaemon({ registry });
    await fails(daemon, ["-n", "", "images", "ls"], 'Invalid namespace "": -n/--namespace needs');
    const zero = `sha256:${"0".repeat(64)}`;
    const missing = await daemon.tug(["images", "rm", zero]);
    assertEquals(missing.code, 1);
    assertStringIncludes(missing.stderr, `No such image ${zero}`);
    assert(!missing.stderr.includes("docker.io/library/sha256"), missing.stderr);
    await fails(
      daemon,
      ["images", "pull", "UPPER/Case:tag"],
      'invalid reference format: repository name "UPPER/Case" must be lowercase',
    );

    await ok(daemon, ["images", "pull", "busybox"]);
    const other = await daemon.tug(["images", "pull", "--platform", "linux/arm64", "busybox"]);
    assertEquals(other.code, 1);
    assertStringIncludes(other.stderr, "not for linux/arm64");
    assert(!other.stdout.includes("unpacked"), `nothing unpacked: ${other.stdout}`);

    const digest = JSON.parse(await ok(daemon, ["images", "ls", "--json"]))[0].target.digest;
    await ok(daemon, ["images", "tag", BUSYBOX, "docker.io/library/busybox:copy"]);
    await fails(daemon, ["images", "rm", digest], "has 2 names");
    await ok(daemon, ["images", "rm", "docker.io/library/busybox:copy"]);
    await ok(daemon, ["images", "rm", digest]);
    assertEquals(await names(daemon), []);
  },
});

Deno.test({
  name:
    "a pull whose layer download breaks off mid-way asks again from where it stopped and unpacks the image",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    await pushFixture(registry, "large", { repo: "library/big" });
    // Each blob's download breaks off at 1 MiB, then its resume at 2 MiB (the small ones end
    // first), whichever blobs are asked for first.
    await using proxy = startProxy(registry.url, {
      breakAfter: (req) => {
        if (req.method !== "GET" || !new URL(req.url).pathname.includes("/blobs/")) {
          return undefined;
        }
        const from = Number(/^bytes=(\d+)-/.exec(req.headers.get("range") ?? "")?.[1] ?? 0);
        return from < 2 << 20 ? 1 << 20 : undefined;
      },
    });
    await using daemon = await startDaemon({ registry: proxy });
    const out = await ok(daemon, ["images", "pull", "big"]);
    assertStringIncludes(out, "unpacked into overlayfs");
    assert(proxy.requests.some((r) => r.headers.range), "asked again with Range");
    assert(!daemon.log().includes("pull failed"), daemon.log());
  },
});

async function gone(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return false;
  } catch {
    return true;
  }
}

Deno.test({
  name:
    "images export interrupted by SIGINT or SIGTERM, or refused, leaves no file and names what is wrong",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    await pushFixture(registry, "large", { repo: "library/big" });
    const name = "docker.io/library/big:latest";
    await using daemon = await startDaemon({ registry });
    await ok(daemon, ["images", "pull", "big"]);
    await withTempDir(async (dir) => {
      for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
        const out = join(dir, `${signal}.tar`);
        const cli = new Deno.Command(TUG, {
          args: ["-a", daemon.address, "images", "export", out, name],
          stdout: "null",
          stderr: "null",
        }).spawn();
        await waitForSize(`${out}.tug-partial`, 1 << 20);
        cli.kill(signal);
        assertEquals((await cli.status).code, code, signal);
        assert(await gone(`${out}.tug-partial`), `${signal} left the partial file`);
        assert(await gone(out), `${signal} left the archive`);
      }
      // A platform the image was not pulled for (it has no index: its config says amd64 or arm64).
      const other = Deno.build.arch === "aarch64" ? "linux/amd64" : "linux/arm64";
      const out = join(dir, "p.tar");
      await fails(daemon, ["images", "export", "--platform", other, out, name], other);
      await fails(daemon, ["images", "export", "--platform", other, out, name], name);
      assert(
        await gone(out) && await gone(`${out}.tug-partial`),
        "a refused export leaves no file",
      );
      // A missing directory is named, not the temporary file.
      const r = await daemon.tug(["images", "export", join(dir, "nodir", "x.tar"), name]);
      assert(r.code !== 0);
      assertStringIncludes(r.stderr, `no such directory ${join(dir, "nodir")}`);
      assert(!r.stderr.includes("tug-partial"), r.stderr);
    });
  },
});

async function waitForSize(path: string, size: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    try {
      if ((await Deno.stat(path)).size >= size) return;
    } catch {
      // not yet created
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`${path} never reached ${size} bytes`);
}

Deno.test({
  name:
    "images import of a directory is refused before sending; a daemon lost mid-import is not 'cannot reach'; snapshots usage of an unknown key fails",
  ignore,
  async fn() {
    await using registry = await startRegistry();
    await pushFixture(registry, "single", { repo: "library/busybox" });
    await using daemon = await startDaemon({ registry });
    await ok(daemon, ["images", "pull", "busybox"]);
    await withTempDir(async (dir) => {
      await fails(daemon, ["images", "import", dir], `Open ${dir}: is a directory`);
      // snapshots usage of an unknown key fails naming it; a known one beside it is still shown.
      await fails(daemon, ["snapshots", "usage", "nokey"], "No such snapshot nokey");
      await fails(daemon, ["snapshots", "usage", "--json", "nokey"], "No such snapshot nokey");
      const key = JSON.parse(await ok(daemon, ["snapshots", "usage", "--json"]))[0].name;
      const both = await daemon.tug(["snapshots", "usage", key, "nokey"]);
      assertEquals(both.code, 1);
      assertStringIncludes(both.stdout, key);
      assertStringIncludes(both.stderr, "No such snapshot nokey");
      assertEquals(JSON.parse(await ok(daemon, ["snapshots", "usage", "--json", key])).length, 1);
      const archive = join(dir, "busybox.tar");
      await ok(daemon, ["images", "export", archive, BUSYBOX]);
      const cli = new Deno.Command(TUG, {
        args: ["-a", daemon.address, "-n", "other", "images", "import", "-"],
        stdin: "piped",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const writer = cli.stdin.getWriter();
      await writer.write((await Deno.readFile(archive)).subarray(0, 64 << 10));
      await new Promise((r) => setTimeout(r, 500));
      await daemon.kill9();
      await writer.close().catch(() => {});
      const out = await cli.output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert(out.code !== 0);
      assertStringIncludes(stderr, "Lost the connection to the tug daemon");
      assertStringIncludes(stderr, "/images/import");
      assert(!stderr.includes("Cannot reach"), stderr);
    });
  },
});
