import { join } from "node:path";
import { NotFound } from "../../errors.ts";
import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import { digestOf } from "../content/digest.ts";
import { LocalContentStore } from "../content/local.ts";
import { openNativeSnapshotter } from "../snapshots/native.ts";
import { openOverlaySnapshotter } from "../snapshots/overlay.ts";
import { type ContentStore, type Descriptor, MEDIA_TYPES, type Snapshotter } from "../types.ts";
import { collectGarbage, GC_LABELS, MetadataStore } from "./mod.ts";

interface Env {
  db: MetadataStore;
  backend: LocalContentStore;
  clock: { t: number };
}

async function withEnv(fn: (env: Env) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tug-gc-" });
  const clock = { t: Date.parse("2024-06-01T00:00:00Z") };
  const db = MetadataStore.open(join(dir, "meta.db"), { now: () => new Date(clock.t) });
  try {
    await fn({
      db,
      backend: await LocalContentStore.open(join(dir, "content"), { sync: false }),
      clock,
    });
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const enc = new TextEncoder();

async function putBlob(
  store: ContentStore,
  data: Uint8Array | string,
  mediaType: string,
  labels?: Record<string, string>,
): Promise<Descriptor> {
  const bytes = typeof data === "string" ? enc.encode(data) : data;
  const digest = digestOf(bytes);
  try {
    const w = await store.writer(`ref-${digest}`, { expected: digest, total: bytes.length });
    await w.write(bytes);
    await w.commit(bytes.length, digest, labels ? { labels } : {});
  } catch (err) {
    if (!(err instanceof Error && err.name === "AlreadyExists")) throw err;
  }
  return { mediaType, digest, size: bytes.length };
}

interface TestImage {
  index: Descriptor;
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
  /** A second platform's manifest that was never fetched. */
  missing: Descriptor;
}

/** Writes an index → manifest → config + 2 layers, without any gc.ref labels. */
async function putImage(store: ContentStore, seed: string): Promise<TestImage> {
  const layers = [
    await putBlob(store, `layer 1 of ${seed}`, MEDIA_TYPES.ociLayerGzip),
    await putBlob(store, `layer 2 of ${seed}`, MEDIA_TYPES.ociLayerGzip),
  ];
  const config = await putBlob(store, JSON.stringify({ seed }), MEDIA_TYPES.ociConfig);
  const manifest = await putBlob(
    store,
    JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config, layers }),
    MEDIA_TYPES.ociManifest,
  );
  const missing = {
    mediaType: MEDIA_TYPES.ociManifest,
    digest: digestOf(`absent ${seed}`),
    size: 5,
  };
  const index = await putBlob(
    store,
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociIndex,
      manifests: [manifest, missing],
    }),
    MEDIA_TYPES.ociIndex,
  );
  return { index, manifest, config, layers, missing };
}

async function blobs(store: ContentStore): Promise<string[]> {
  const out: string[] = [];
  for await (const info of store.list()) out.push(info.digest);
  return out.sort();
}

function digests(img: TestImage): string[] {
  return [img.index, img.manifest, img.config, ...img.layers].map((d) => d.digest).sort();
}

Deno.test("collectGarbage() keeps an image's index, manifest, config and layers by reading the blobs", async () => {
  await withEnv(async ({ db, backend }) => {
    const ns = db.contentStore("default", backend);
    const img = await putImage(ns, "a");
    const junk = await putBlob(ns, "unreferenced", "application/octet-stream");
    db.images.create("default", { name: "example.com/a:1", target: img.index });
    const result = await collectGarbage(db, { content: backend });
    assertEquals(result.content, [{ namespace: "default", digest: junk.digest }]);
    assertEquals(result.blobs, [junk.digest]);
    assertEquals(await blobs(backend), digests(img));
    assertEquals(await blobs(ns), digests(img));
  });
});

Deno.test("collectGarbage() removes an image's content once the image record is gone", async () => {
  await withEnv(async ({ db, backend }) => {
    const ns = db.contentStore("default", backend);
    const img = await putImage(ns, "a");
    db.images.create("default", { name: "example.com/a:1", target: img.index });
    await collectGarbage(db, { content: backend });
    assertEquals((await blobs(backend)).length, 5);
    db.images.delete("default", "example.com/a:1");
    const result = await collectGarbage(db, { content: backend });
    assertEquals(result.blobs.sort(), digests(img));
    assertEquals(await blobs(backend), []);
  });
});

Deno.test("collectGarbage() follows containerd.io/gc.ref.content labels", async () => {
  await withEnv(async ({ db, backend }) => {
    const ns = db.contentStore("default", backend);
    const child = await putBlob(ns, "child", "application/octet-stream");
    const grandchild = await putBlob(ns, "grandchild", "application/octet-stream");
    await ns.update(child.digest, { [`${GC_LABELS.refContent}.x`]: grandchild.digest });
    const parent = await putBlob(ns, "not a manifest", "application/octet-stream", {
      [`${GC_LABELS.refContent}.l.0`]: child.digest,
    });
    await putBlob(ns, "other", "application/octet-stream");
    db.images.create("default", {
      name: "x:1",
      target: { ...parent, mediaType: "application/x-custom" },
    });
    await collectGarbage(db, { content: backend });
    assertEquals(await blobs(backend), [parent.digest, child.digest, grandchild.digest].sort());
  });
});

Deno.test("collectGarbage() keeps what a live lease holds and drops an expired lease", async () => {
  await withEnv(async ({ db, backend, clock }) => {
    db.leases.create("default", { id: "live", expiresIn: 3600_000 });
    db.leases.create("default", { id: "old", expiresIn: 1000 });
    const live = db.contentStore("default", backend, { lease: "live" });
    const old = db.contentStore("default", backend, { lease: "old" });
    const img = await putImage(live, "held");
    const gone = await putBlob(old, "held by an expired lease", "application/octet-stream");
    clock.t += 2000;
    const result = await collectGarbage(db, { content: backend, now: new Date(clock.t) });
    assertEquals(result.leases, [{ namespace: "default", id: "old" }]);
    assertEquals(result.blobs, [gone.digest]);
    assertEquals(await blobs(backend), digests(img));
    assertEquals(db.leases.list("default").map((l) => l.id), ["live"]);
  });
});

Deno.test("collectGarbage() protects only the direct resources of a flat lease", async () => {
  await withEnv(async ({ db, backend }) => {
    const ns = db.contentStore("default", backend);
    const img = await putImage(ns, "flat");
    db.leases.create("default", { id: "flat", labels: { [GC_LABELS.flat]: "" } });
    db.leases.addResource("default", {
      lease: "flat",
      resource: { type: "content", digest: img.index.digest },
    });
    await collectGarbage(db, { content: backend });
    assertEquals(await blobs(backend), [img.index.digest]);
  });
});

Deno.test("collectGarbage() keeps content labelled containerd.io/gc.root", async () => {
  await withEnv(async ({ db, backend }) => {
    const ns = db.contentStore("default", backend);
    const root = await putBlob(ns, "root", "application/octet-stream", {
      [GC_LABELS.root]: "always",
    });
    await putBlob(ns, "not root", "application/octet-stream");
    await collectGarbage(db, { content: backend });
    assertEquals(await blobs(backend), [root.digest]);
  });
});

Deno.test("collectGarbage() keeps a blob while any namespace references it", async () => {
  await withEnv(async ({ db, backend }) => {
    const a = db.contentStore("a", backend);
    const b = db.contentStore("b", backend);
    const imgA = await putImage(a, "same");
    const imgB = await putImage(b, "same");
    assertEquals(imgA, imgB);
    db.images.create("a", { name: "x:1", target: imgA.index });
    db.images.create("b", { name: "x:1", target: imgB.index });
    db.images.delete("a", "x:1");
    const result = await collectGarbage(db, { content: backend });
    assertEquals(result.content.length, 5);
    assert(result.content.every((c) => c.namespace === "a"));
    assertEquals(result.blobs, []);
    assertEquals(await blobs(backend), digests(imgA));
    assertEquals(await blobs(a), []);
    assertEquals(await blobs(b), digests(imgB));
  });
});

Deno.test("collectGarbage() deletes blobs no namespace recorded", async () => {
  await withEnv(async ({ db, backend }) => {
    const stray = await putBlob(
      backend,
      "written behind the metadata's back",
      "application/octet-stream",
    );
    const result = await collectGarbage(db, { content: backend });
    assertEquals(result.blobs, [stray.digest]);
    await assertRejects(() => backend.info(stray.digest), NotFound);
  });
});

Deno.test("collectGarbage() aborts stale ingests no lease holds and keeps the others", async () => {
  await withEnv(async ({ db, backend }) => {
    db.leases.create("default", { id: "pull" });
    const leased = db.contentStore("default", backend, { lease: "pull" });
    const plain = db.contentStore("default", backend);
    for (const [store, ref] of [[leased, "leased"], [plain, "unleased"]] as const) {
      const w = await store.writer(ref);
      await w.write(enc.encode("partial"));
      await w.close();
    }
    // Fresh ingests survive the default grace period.
    await collectGarbage(db, { content: backend });
    assertEquals((await plain.listIngests()).map((i) => i.ref), ["leased", "unleased"]);
    // Past the grace period, only the leased one survives.
    const result = await collectGarbage(db, { content: backend, ingestGracePeriod: 0 });
    assertEquals(result.ingests, ["default/unleased"]);
    assertEquals((await plain.listIngests()).map((i) => i.ref), ["leased"]);
    const w = await leased.writer("leased");
    assertEquals(w.offset, 7);
    await w.close();
  });
});

Deno.test("collectGarbage() aborts an import's ingest no lease holds at once, a pull's after the grace period", async () => {
  await withEnv(async ({ db, backend }) => {
    db.leases.create("default", { id: "import" });
    const leased = db.contentStore("default", backend, { lease: "import" });
    const plain = db.contentStore("default", backend);
    for (
      const [store, ref] of [[leased, "import-live"], [plain, "import-dead"], [
        plain,
        "layer-sha256:1",
      ]] as const
    ) {
      const w = await store.writer(ref);
      await w.write(enc.encode("partial"));
      await w.close();
    }
    // An import ingest written outside the metadata store (its record lost) goes too.
    const orphan = await backend.writer("default/import-orphan");
    await orphan.write(enc.encode("partial"));
    await orphan.close();
    const result = await collectGarbage(db, { content: backend });
    assertEquals(result.ingests.sort(), ["default/import-dead", "default/import-orphan"]);
    assertEquals((await plain.listIngests()).map((i) => i.ref).sort(), [
      "import-live",
      "layer-sha256:1",
    ]);
  });
});

Deno.test("collectGarbage() does not remove a blob committed while it runs under a lease", async () => {
  await withEnv(async ({ db, backend }) => {
    db.leases.create("default", { id: "pull" });
    const ns = db.contentStore("default", backend, { lease: "pull" });
    const data = enc.encode("racing");
    const digest = digestOf(data);
    const w = await ns.writer("race", { expected: digest });
    await w.write(data);
    const [gc] = await Promise.all([
      collectGarbage(db, { content: backend }),
      w.commit(data.length, digest),
    ]);
    assertEquals(gc.blobs, []);
    assertEquals(await ns.readBytes(digest), data);
  });
});

// ---------------------------------------------------------------------------
// Snapshots, with the real snapshotters.

const SNAPSHOTTERS: Record<string, (root: string) => Promise<Snapshotter>> = {
  native: (root) => openNativeSnapshotter(root),
  overlayfs: (root) => openOverlaySnapshotter(root),
};

interface SnapEnv extends Env {
  backendSn: Snapshotter;
}

function eachSnapshotter(what: string, fn: (env: SnapEnv) => Promise<void>): void {
  for (const [name, open] of Object.entries(SNAPSHOTTERS)) {
    Deno.test(`collectGarbage() with ${name}: ${what}`, async () => {
      await withEnv(async (env) => {
        const root = await Deno.makeTempDir({ prefix: "tug-gc-sn-" });
        const backendSn = await open(join(root, name));
        try {
          await fn({ ...env, backendSn });
        } finally {
          await backendSn.close();
          await Deno.remove(root, { recursive: true });
        }
      });
    });
  }
}

/** Commits a chain of snapshots named `names` (each the parent of the next). */
async function chain(sn: Snapshotter, names: string[]): Promise<void> {
  let parent: string | undefined;
  for (const name of names) {
    const mounts = await sn.prepare(`extract-${name}`, parent);
    if (mounts[0]!.type === "bind") {
      await Deno.writeTextFile(join(mounts[0]!.source, `${name}.txt`), name);
    }
    await sn.commit(name, `extract-${name}`);
    parent = name;
  }
}

async function snapKeys(sn: Snapshotter): Promise<string[]> {
  const out: string[] = [];
  await sn.walk((i) => {
    out.push(i.name);
  });
  return out.sort();
}

eachSnapshotter(
  "keeps an unpacked image's chain through its config's label and removes the rest",
  async (env) => {
    const { db, backend, backendSn } = env;
    const ns = db.contentStore("default", backend);
    const sn = db.snapshotter("default", backendSn);
    const img = await putImage(ns, "unpacked");
    await chain(sn, ["sha256:c1", "sha256:c2"]);
    await chain(sn, ["sha256:x1", "sha256:x2", "sha256:x3"]);
    await ns.update(img.config.digest, {
      [`${GC_LABELS.refSnapshotPrefix}${backendSn.name}`]: "sha256:c2",
    });
    db.images.create("default", { name: "x:1", target: img.index });
    const result = await collectGarbage(db, { content: backend, snapshotters: [backendSn] });
    assertEquals(result.snapshots.map((s) => s.key).sort(), [
      "sha256:x1",
      "sha256:x2",
      "sha256:x3",
    ]);
    assertEquals(result.backendSnapshots.length, 3);
    assertEquals(await snapKeys(sn), ["sha256:c1", "sha256:c2"]);
    assertEquals((await snapKeys(backendSn)).length, 2);
    db.images.delete("default", "x:1");
    await collectGarbage(db, { content: backend, snapshotters: [backendSn] });
    assertEquals(await snapKeys(backendSn), []);
  },
);

eachSnapshotter(
  "keeps a container's snapshot and the chain under it",
  async ({ db, backend, backendSn }) => {
    const sn = db.snapshotter("default", backendSn);
    await chain(sn, ["sha256:base"]);
    await sn.prepare("web-1", "sha256:base");
    db.containers.create("default", {
      id: "web-1",
      snapshotter: backendSn.name,
      snapshotKey: "web-1",
      spec: { ociVersion: "1.1.0" },
      runtime: { name: "io.tug.runtime.v1" },
    });
    await collectGarbage(db, { content: backend, snapshotters: [backendSn] });
    assertEquals(await snapKeys(sn), ["sha256:base", "web-1"]);
    db.containers.delete("default", "web-1");
    const result = await collectGarbage(db, { content: backend, snapshotters: [backendSn] });
    assertEquals(result.snapshots.map((s) => s.key), ["web-1", "sha256:base"].sort());
    assertEquals(await snapKeys(backendSn), []);
  },
);

eachSnapshotter(
  "keeps the snapshots of an unpack in progress that a lease holds",
  async ({ db, backend, backendSn }) => {
    db.leases.create("default", { id: "pull" });
    const sn = db.snapshotter("default", backendSn, { lease: "pull" });
    await chain(sn, ["sha256:l1"]);
    await sn.prepare("extract-l2", "sha256:l1");
    await collectGarbage(db, { content: backend, snapshotters: [backendSn] });
    assertEquals(await snapKeys(sn), ["extract-l2", "sha256:l1"]);
    db.leases.delete("default", "pull");
    await collectGarbage(db, { content: backend, snapshotters: [backendSn] });
    assertEquals(await snapKeys(backendSn), []);
  },
);

eachSnapshotter(
  "keeps a snapshot labelled gc.root and removes snapshots no namespace records",
  async ({ db, backend, backendSn }) => {
    const sn = db.snapshotter("default", backendSn);
    await sn.prepare("pinned", undefined, { labels: { [GC_LABELS.root]: "yes" } });
    await backendSn.prepare("orphan-parent-active");
    await backendSn.commit("orphan-parent", "orphan-parent-active");
    await backendSn.prepare("orphan-child", "orphan-parent");
    const result = await collectGarbage(db, { content: backend, snapshotters: [backendSn] });
    assertEquals(result.backendSnapshots.map((s) => s.key), ["orphan-child", "orphan-parent"]);
    assertEquals(await snapKeys(sn), ["pinned"]);
    assertEquals((await snapKeys(backendSn)).length, 1);
  },
);
