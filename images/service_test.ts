import { join } from "node:path";
import { AlreadyExists, InvalidArgument, NotFound } from "../errors.ts";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "../tests/assert.ts";
import { HOSTILE_KINDS, inspectRaw, LAYERS_TREE, pushFixture } from "../tests/fixtures/mod.ts";
import { mountsUnder, requires, run } from "../tests/harness.ts";
import { startProxy, type TestRegistry, withRegistry } from "../tests/registry.ts";
import { digestOf } from "./content/digest.ts";
import { ImageService, LEASE_PURPOSE_LABEL, type PullProgress } from "./mod.ts";
import { mountAll, unmountAll } from "./snapshots/mount.ts";
import type { Mount, Snapshotter } from "./types.ts";

const ignore = requires("root", "overlayfs", "registry", "skopeo", "umoci", "busybox");

interface Env {
  images: ImageService;
  root: string;
  registry: TestRegistry;
}

/** A fresh image service (its own root) and a fresh registry; both go afterwards. */
function test(name: string, fn: (env: Env) => Promise<void>): void {
  Deno.test({
    name,
    ignore,
    fn: async () => {
      const root = await Deno.makeTempDir({ prefix: "tug-images-" });
      try {
        await withRegistry({}, async (registry) => {
          const images = await ImageService.open(join(root, "state"), { sync: false });
          try {
            await fn({ images, root, registry });
          } finally {
            await images.close();
          }
        });
      } finally {
        for (const m of mountsUnder(root).reverse()) {
          await run("umount", ["-l", m]);
        }
        await Deno.remove(root, { recursive: true });
      }
    },
  });
}

/** Mounts `mounts` on a new directory under `root`, runs `fn` on it, unmounts. */
async function withMounted<T>(
  root: string,
  mounts: Mount[],
  fn: (dir: string) => Promise<T>,
): Promise<T> {
  const dir = await Deno.makeTempDir({ dir: root, prefix: "mnt-" });
  mountAll(mounts, dir);
  try {
    return await fn(dir);
  } finally {
    unmountAll(dir, { detach: true });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

async function backendKeys(sn: Snapshotter): Promise<string[]> {
  const out: string[] = [];
  await sn.walk((i) => {
    out.push(i.name);
  });
  return out;
}

async function blobs(images: ImageService): Promise<string[]> {
  const out: string[] = [];
  for await (const info of images.content.list()) out.push(info.digest);
  return out.sort();
}

test("pull() fetches, unpacks by chain ID and records an image whose rootfs shows its files", async ({ images, root, registry }) => {
  const ref = await pushFixture(registry, "layers");
  const reports: PullProgress[] = [];
  const result = await images.pull(ref, { onProgress: (p) => reports.push(p) });
  assertEquals(result.image.name, `${registry.host}/layers:latest`);
  assertEquals(result.unpacked?.snapshotter, "overlayfs");
  assertEquals(result.unpacked?.unpackedLayers, 4);
  // The manifest, the config (fetched while planning the unpack) and four layers, into an empty store.
  assertEquals(
    { fetched: result.stats.fetched, existing: result.stats.existing },
    { fetched: 6, existing: 0 },
  );
  const last = reports[reports.length - 1]!;
  assertEquals(last.unpack, { done: 4, total: 4 });
  assert(reports.some((r) => r.transfer?.finished));
  assertEquals(images.list().map((i) => i.name), [`${registry.host}/layers:latest`]);
  // The committed snapshots are named by the chain IDs of the config's diff IDs (OCI image spec).
  const json = async (digest: string) =>
    JSON.parse(new TextDecoder().decode(await images.content.readBytes(digest)));
  const config = await json((await json(result.image.target.digest)).config.digest);
  const chain: string[] = [];
  for (const diff of config.rootfs.diff_ids as string[]) {
    chain.push(chain.length === 0 ? diff : digestOf(`${chain[chain.length - 1]} ${diff}`));
  }
  const keys = await backendKeys(images.snapshotter("overlayfs")); // "<namespace>/<n>/<name>"
  assertEquals(keys.map((k) => k.replace(/^default\/\d+\//, "")).sort(), chain.sort());
  const mounts = await images.prepareRootfs(result.image.name, "container-1");
  await withMounted(root, mounts, async (dir) => {
    for (const p of LAYERS_TREE.present) assert(await exists(join(dir, p)), `${p} is present`);
    for (const p of LAYERS_TREE.absent) assert(!(await exists(join(dir, p))), `${p} is absent`);
    await Deno.writeTextFile(join(dir, "written-by-container"), "x");
  });
  assertEquals(images.db.leases.list("default"), []);
});

test("pull() into the native snapshotter gives the same tree", async ({ images, root, registry }) => {
  const ref = await pushFixture(registry, "layers");
  const { image } = await images.pull(ref, { snapshotter: "native" });
  const mounts = await images.prepareRootfs(image.name, "c", {
    snapshotter: "native",
    readonly: true,
  });
  await withMounted(root, mounts, async (dir) => {
    for (const p of LAYERS_TREE.present) assert(await exists(join(dir, p)), `${p} is present`);
    for (const p of LAYERS_TREE.absent) assert(!(await exists(join(dir, p))), `${p} is absent`);
  });
});

test("pull() again fetches nothing and unpacks nothing", async ({ images, registry }) => {
  const ref = await pushFixture(registry, "single");
  await images.pull(ref);
  const again = await images.pull(ref);
  assertEquals(again.stats.fetched, 0);
  assertEquals(again.stats.bytes, 0);
  assertEquals(again.unpacked?.unpackedLayers, 0);
});

test("pull() of an index unpacks this machine's manifest, and all platforms on request", async ({ images, root, registry }) => {
  const ref = await pushFixture(registry, "multi");
  const { image } = await images.pull(ref);
  assertEquals(image.target.mediaType, "application/vnd.oci.image.index.v1+json");
  const mounts = await images.prepareRootfs(image.name, "c1");
  const arch = Deno.build.arch === "x86_64" ? "amd64" : "arm64";
  await withMounted(root, mounts, async (dir) => {
    assertStringIncludes(await Deno.readTextFile(join(dir, "platform")), arch);
  });
  const all = await images.pull(ref, { platform: "all", namespace: "all" });
  assertEquals(all.unpacked?.snapshotter, "overlayfs");
  assert((all.unpacked?.unpackedLayers ?? 0) > 0);
  const index = JSON.parse(
    new TextDecoder().decode(await images.content.readBytes(image.target.digest)),
  );
  for (const m of index.manifests) await images.content.info(m.digest);
});

test("pull() of a zstd image and of a docker schema 2 image works", async ({ images, registry }) => {
  const zstd = await pushFixture(registry, "zstd");
  assertEquals((await images.pull(zstd)).unpacked?.unpackedLayers, 1);
  const v2s2 = await pushFixture(registry, "single", { repo: "docker-format", format: "v2s2" });
  const { image } = await images.pull(v2s2);
  assertEquals(image.target.mediaType, "application/vnd.docker.distribution.manifest.v2+json");
});

/** The entry each hostile fixture's refusal names (see tests/fixtures_test.ts). */
const REFUSED: Record<(typeof HOSTILE_KINDS)[number], string> = {
  dotdot: '"../../../../../../tmp/tug-escape-dotdot"',
  absolute: '"/tmp/tug-escape-absolute"',
  symlink: '"evil-link/tug-escape-symlink"',
  hardlink: '"evil-hardlink"',
  huge: '"huge.bin"',
};

test("pull() of each hostile layer fails naming the entry and records nothing, in both snapshotters", async ({ root, registry }) => {
  // A service of its own, with a layer size limit for hostile-huge (512 MiB unpacked).
  const images = await ImageService.open(join(root, "limited"), {
    sync: false,
    maxLayerSize: 64 << 20,
  });
  try {
    for (const kind of HOSTILE_KINDS) {
      const ref = await pushFixture(registry, `hostile-${kind}`);
      for (const snapshotter of ["overlayfs", "native"]) {
        const err = await assertRejects(() => images.pull(ref, { snapshotter }), InvalidArgument);
        assertStringIncludes(err.message, `Refused layer entry ${REFUSED[kind]}`, kind);
        if (kind === "huge") assertStringIncludes(err.message, "limit of 67108864 bytes");
        assertEquals(images.list(), [], kind);
        assertEquals(images.db.leases.list("default"), [], kind);
      }
    }
    await images.gc();
    assertEquals(await blobs(images), []);
    assertEquals(await backendKeys(images.snapshotter("overlayfs")), []);
    assertEquals(await backendKeys(images.snapshotter("native")), []);
  } finally {
    await images.close();
  }
});

test("import() of an archive whose layer is refused records no image", async ({ images, registry }) => {
  const ref = await pushFixture(registry, "hostile-dotdot");
  const { image } = await images.pull(ref, { unpack: false });
  const tar = await images.export([image.name]);
  const err = await assertRejects(
    () => images.import(tar, { namespace: "other" }),
    InvalidArgument,
  );
  assertStringIncludes(err.message, `Refused layer entry ${REFUSED.dotdot}`);
  assertEquals(images.list({ namespace: "other" }), []);
  assertEquals(images.db.leases.list("other"), []);
  assertEquals(images.list().map((i) => i.name), [image.name], "the source namespace keeps it");
});

test("a name with a digest that is not the image's is refused by tag() and import(), which records nothing", async ({ images, registry }) => {
  const ref = await pushFixture(registry, "single");
  const { image } = await images.pull(ref, { unpack: false });
  const wrong = `${registry.host}/probe/x@sha256:${"a".repeat(64)}`;
  const err = await assertRejects(
    () => Promise.resolve().then(() => images.tag(ref, wrong)),
    InvalidArgument,
  );
  assertStringIncludes(err.message, wrong);
  assertStringIncludes(err.message, image.target.digest);
  const right = images.tag(ref, `${registry.host}/probe/x@${image.target.digest}`);
  assertEquals(right.target, image.target);
  const tar = await images.export([image.name]);
  const imported = assertRejects(
    () => images.import(tar, { namespace: "other", name: wrong }),
    InvalidArgument,
  );
  assertStringIncludes((await imported).message, wrong);
  assertEquals(images.list({ namespace: "other" }), []);
  assertEquals(images.db.leases.list("other"), []);
});

test("pull() of a blob tampered with in the registry fails with a digest error and commits nothing", async ({ images, registry }) => {
  const ref = await pushFixture(registry, "single");
  const manifest = JSON.parse(await inspectRaw(registry, ref));
  const layer = manifest.layers[0].digest as string;
  const path = registry.blobPath(layer);
  const data = await Deno.readFile(path);
  data[data.length - 10]! ^= 0xff;
  await Deno.writeFile(path, data);
  const err = await assertRejects(() => images.pull(ref), InvalidArgument);
  assertStringIncludes(err.message, layer);
  assertStringIncludes(err.message, "mismatch");
  assertEquals(images.list(), []);
  await assertRejects(() => images.content.info(layer), NotFound);
});

test("garbage collection during a pull keeps what the pull holds", async ({ images, registry }) => {
  const ref = await pushFixture(registry, "large");
  const pulling = images.pull(ref);
  const collections: Promise<unknown>[] = [];
  for (let i = 0; i < 5; i++) collections.push(images.gc());
  const { image, unpacked } = await pulling;
  await Promise.all(collections);
  await images.gc();
  assertEquals(unpacked?.unpackedLayers, 3);
  const usage = await images.usage();
  assertEquals(usage.images.map((i) => i.name), [image.name]);
  assert(usage.images[0]!.content > 50 << 20);
  assert(usage.images[0]!.snapshots > 50 << 20);
  assertEquals(usage.reclaimable, 0);
});

test("prepareRootfs() unpacks an image pulled without unpacking, then reuses its snapshot", async ({ images, root, registry }) => {
  const ref = await pushFixture(registry, "single");
  const { image } = await images.pull(ref, { unpack: false });
  assertEquals(await backendKeys(images.snapshotter("overlayfs")), []);
  for (const key of ["c1", "c2"]) {
    const mounts = await images.prepareRootfs(image.name, key);
    await withMounted(root, mounts, async (dir) => {
      assert(await exists(join(dir, "bin/busybox")), "the layer's files are there");
    });
  }
  // One committed snapshot for the layer, one active snapshot per container.
  assertEquals((await backendKeys(images.snapshotter("overlayfs"))).length, 3);
  assertEquals(images.db.leases.list("default"), []);
});

test("remove() with sync frees the image's blobs and snapshots", async ({ images, registry }) => {
  const ref = await pushFixture(registry, "single");
  const { image } = await images.pull(ref);
  await images.prepareRootfs(image.name, "c1");
  await images.remove(ref, { sync: true });
  await assertRejects(() => Promise.resolve().then(() => images.get(ref)), NotFound);
  assertEquals(await blobs(images), []);
  // No container record holds c1, so it goes too.
  assertEquals(await backendKeys(images.snapshotter("overlayfs")), []);
});

test("tag(), get() and list() name the same target; push() puts it back on the registry", async ({ images, registry }) => {
  const ref = await pushFixture(registry, "single");
  const { image } = await images.pull(ref, { unpack: false });
  const tagged = images.tag(ref, `${registry.host}/copies/single:v1`);
  assertEquals(tagged.target, image.target);
  assertRejects(
    () => Promise.resolve().then(() => images.tag(ref, `${registry.host}/copies/single:v1`)),
    AlreadyExists,
  );
  assertEquals(
    images.list().map((i) => i.name).sort(),
    [`${registry.host}/copies/single:v1`, image.name].sort(),
  );
  const pushed = await images.push(tagged.name);
  assertEquals(pushed.target.digest, image.target.digest);
  const raw = await run("skopeo", [
    "inspect",
    "--raw",
    "--tls-verify=false",
    `docker://${tagged.name}`,
  ]);
  assertEquals(raw.code, 0, raw.stderr);
  assertEquals(digestOf(raw.stdout), image.target.digest);
});

test("export() and import() move images between namespaces; blobs are stored once", async ({ images, root, registry }) => {
  const ref = await pushFixture(registry, "layers");
  const { image } = await images.pull(ref);
  const before = await blobs(images);
  const stream = await images.export([image.name]);
  const archive = join(root, "export.tar");
  const file = await Deno.open(archive, { write: true, create: true });
  await stream.pipeTo(file.writable);
  const inspect = await run("skopeo", ["inspect", `oci-archive:${archive}`]);
  assertEquals(inspect.code, 0, inspect.stderr);
  assertEquals(images.list({ namespace: "team-b" }), []);
  const imported = await images.import((await Deno.open(archive)).readable, {
    namespace: "team-b",
  });
  assertEquals(imported.format, "oci");
  assertEquals(imported.images.map((i) => [i.name, i.target.digest]), [[
    image.name,
    image.target.digest,
  ]]);
  assertEquals(await blobs(images), before);
  const mounts = await images.prepareRootfs(image.name, "c", { namespace: "team-b" });
  await withMounted(root, mounts, async (dir) => {
    for (const p of LAYERS_TREE.present) assert(await exists(join(dir, p)), `${p} is present`);
  });
  await images.remove(image.name, { sync: true });
  assertEquals(await blobs(images), before);
});

test("prune() with all removes unused images and frees their space", async ({ images, registry }) => {
  const single = await pushFixture(registry, "single");
  const layers = await pushFixture(registry, "layers");
  await images.pull(single);
  await images.pull(layers);
  images.db.containers.create("default", {
    id: "web",
    image: images.get(layers).name,
    snapshotter: "overlayfs",
    snapshotKey: "web",
    spec: { ociVersion: "1.1.0" },
    runtime: { name: "io.tug.runtime.v1" },
  });
  const result = await images.prune({ all: true });
  assertEquals(result.images, [`${registry.host}/single:latest`]);
  assert(result.reclaimed > 0);
  assertEquals(images.list().map((i) => i.name), [`${registry.host}/layers:latest`]);
});

test("pull() of one image twice at once fetches each layer once; pulls in two namespaces at once both work", async ({ images, registry }) => {
  const ref = await pushFixture(registry, "layers");
  const name = `${registry.host}/layers:latest`;
  const [first, second] = await Promise.all([images.pull(ref), images.pull(ref)]);
  assertEquals(second!.image.target, first!.image.target);
  assertEquals(images.list().map((i) => i.name), [name]);
  const manifest = JSON.parse(
    new TextDecoder().decode(await images.content.readBytes(first!.image.target.digest)),
  );
  for (const layer of manifest.layers as { digest: string }[]) {
    const gets = registry.requests().filter((r) =>
      r.method === "GET" && r.uri.endsWith(`/blobs/${layer.digest}`)
    );
    assertEquals(gets.length, 1, `${layer.digest} fetched ${gets.length} times`);
  }
  // Two more namespaces at once (ingests are per namespace, the blobs stored once).
  await Promise.all(["a", "b"].map((namespace) => images.pull(ref, { namespace })));
  for (const namespace of ["default", "a", "b"]) {
    assertEquals(images.list({ namespace }).map((i) => i.name), [name], namespace);
    const mounts = await images.prepareRootfs(name, `c-${namespace}`, {
      namespace,
      readonly: true,
    });
    assert(mounts.length > 0, namespace);
    assertEquals(images.db.leases.list(namespace), [], namespace);
  }
});

/** Pushes the `large` fixture; its reference, its layers and the digest of the biggest one. */
async function pushLarge(registry: TestRegistry) {
  const ref = await pushFixture(registry, "large");
  const layers = JSON.parse(await inspectRaw(registry, ref)).layers as {
    digest: string;
    size: number;
  }[];
  return { ref, layers, big: layers.reduce((a, b) => a.size > b.size ? a : b).digest };
}

test("a pull holds the blobs and snapshots it finds already there: removing another image that shares them, and collecting, meanwhile takes none", async ({ images, registry }) => {
  await pushFixture(registry, "single");
  await images.pull(`${registry.host}/single:latest`);
  const { ref: large, layers, big } = await pushLarge(registry);
  // The big layer's download waits until the other image is gone and collected.
  const arrived = Promise.withResolvers<void>();
  const release = Promise.withResolvers<void>();
  await using proxy = startProxy(registry.url, {
    hold: (req) => {
      if (!new URL(req.url).pathname.endsWith(`/blobs/${big}`)) return undefined;
      arrived.resolve();
      return release.promise;
    },
  });
  const pulling = images.pull(large.replace(registry.host, proxy.host));
  await arrived.promise;
  await new Promise((r) => setTimeout(r, 300)); // the shared layer is found, stored and unpacked
  await images.remove(`${registry.host}/single:latest`, { sync: true });
  release.resolve();
  const { image } = await pulling;
  for (const layer of layers) await images.content.info(layer.digest);
  const mounts = await images.prepareRootfs(image.name, "c", { readonly: true });
  assert(mounts.length > 0);
});

test("an aborted pull whose registry has stalled ends at once, and a pull of the same image waiting on its download takes over", async ({ images, registry }) => {
  const { ref: large, big } = await pushLarge(registry);
  // The big layer's answer stops after 1 MiB and stays open.
  const arrived = Promise.withResolvers<void>();
  await using proxy = startProxy(registry.url, {
    stallAfter: (req) => {
      if (!new URL(req.url).pathname.endsWith(`/blobs/${big}`)) return undefined;
      arrived.resolve();
      return 1 << 20;
    },
  });
  const abort = new AbortController();
  const first = images.pull(large.replace(registry.host, proxy.host), { signal: abort.signal });
  first.catch(() => {});
  await arrived.promise;
  await new Promise((r) => setTimeout(r, 300));
  const second = images.pull(large); // waits for the first's download of the big layer
  // Garbage enough for V8 to collect everything unreferenced (Deno 2.9 stops delivering a
  // fetch's abort to its body once the Response is collected).
  for (let i = 0; i < 64; i++) new Uint8Array(4 << 20).fill(i);
  await new Promise((r) => setTimeout(r, 100));
  abort.abort(new Error("test abort"));
  const within = <T>(p: Promise<T>, ms: number, what: string) =>
    Promise.race([
      p,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms)
      ),
    ]);
  const err = await within(first.then(() => undefined, (e) => e), 5_000, "the aborted pull");
  assertEquals((err as Error)?.message, "test abort");
  const { image } = await within(second, 30_000, "the waiting pull");
  assertEquals(image.target.digest, (await images.get(image.name)).target.digest);
  await images.prepareRootfs(image.name, "c", { readonly: true });
});

Deno.test("removeStaleLeases() removes the image service's leases in every namespace and no other", async () => {
  const root = await Deno.makeTempDir({ prefix: "tug-images-" });
  try {
    const images = await ImageService.open(root, { sync: false, snapshotters: ["native"] });
    try {
      const db = images.db;
      const pull = db.leases.create("default", {
        expiresIn: 60_000,
        labels: { [LEASE_PURPOSE_LABEL]: "pull docker.io/library/busybox:latest" },
      });
      const imp = db.leases.create("ns2", {
        expiresIn: 60_000,
        labels: { [LEASE_PURPOSE_LABEL]: "import" },
      });
      const other = db.leases.create("default", { labels: { "app": "mine" } });
      const removed = images.removeStaleLeases();
      assertEquals(
        removed.map((l) => [l.namespace, l.id, l.purpose]).sort(),
        [
          ["default", pull.id, "pull docker.io/library/busybox:latest"],
          ["ns2", imp.id, "import"],
        ],
      );
      assertEquals(db.leases.list("default").map((l) => l.id), [other.id]);
      assertEquals(db.leases.list("ns2"), []);
      assertEquals(images.removeStaleLeases(), []);
    } finally {
      await images.close();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
