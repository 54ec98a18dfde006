import { join } from "node:path";
import { assertEquals } from "../../tests/assert.ts";
import { digestOf } from "../content/digest.ts";
import { LocalContentStore } from "../content/local.ts";
import { openNativeSnapshotter } from "../snapshots/native.ts";
import { type ContentStore, type Descriptor, MEDIA_TYPES } from "../types.ts";
import { diskUsage, GC_LABELS, MetadataStore } from "./mod.ts";

const enc = new TextEncoder();

async function put(store: ContentStore, data: string, mediaType: string): Promise<Descriptor> {
  const bytes = enc.encode(data);
  const digest = digestOf(bytes);
  try {
    const w = await store.writer(`ref-${digest}`, { expected: digest });
    await w.write(bytes);
    await w.commit(bytes.length, digest);
  } catch (err) {
    if (!(err instanceof Error && err.name === "AlreadyExists")) throw err;
  }
  return { mediaType, digest, size: bytes.length };
}

async function manifest(
  store: ContentStore,
  config: Descriptor,
  layers: Descriptor[],
): Promise<Descriptor> {
  return await put(
    store,
    JSON.stringify({ schemaVersion: 2, config, layers }),
    MEDIA_TYPES.ociManifest,
  );
}

Deno.test("diskUsage() counts each image's blobs and snapshots, and shared bytes once in the total", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tug-usage-" });
  const db = MetadataStore.open(join(dir, "meta.db"));
  const backend = await LocalContentStore.open(join(dir, "content"), { sync: false });
  const native = await openNativeSnapshotter(join(dir, "native"));
  try {
    const ns = db.contentStore("default", backend);
    const sn = db.snapshotter("default", native);
    const shared = await put(ns, "S".repeat(1000), MEDIA_TYPES.ociLayerGzip);
    const onlyA = await put(ns, "A".repeat(200), MEDIA_TYPES.ociLayerGzip);
    const configA = await put(ns, '{"a":1}', MEDIA_TYPES.ociConfig);
    const configB = await put(ns, '{"b":2}', MEDIA_TYPES.ociConfig);
    const mA = await manifest(ns, configA, [shared, onlyA]);
    const mB = await manifest(ns, configB, [shared]);
    const junk = await put(ns, "J".repeat(50), "application/octet-stream");
    // Image b is unpacked: one snapshot with a 4000-byte file.
    const mounts = await sn.prepare("extract");
    await Deno.writeFile(join(mounts[0]!.source, "data"), new Uint8Array(4000));
    await sn.commit("sha256:chain-b", "extract");
    await ns.update(configB.digest, { [`${GC_LABELS.refSnapshotPrefix}native`]: "sha256:chain-b" });
    db.images.create("default", { name: "a:1", target: mA });
    db.images.create("default", { name: "b:1", target: mB });
    db.images.create("default", { name: "b:alias", target: mB });
    // Another namespace's records do not count here.
    await put(db.contentStore("other", backend), "other namespace", "application/octet-stream");

    const usage = await diskUsage(db, "default", { content: backend, snapshotters: [native] });
    const snap = (await native.usage((await backendKeys(native))[0]!)).size;
    const a = usage.images.find((i) => i.name === "a:1")!;
    const b = usage.images.find((i) => i.name === "b:1")!;
    assertEquals(a.content, mA.size + configA.size + shared.size + onlyA.size);
    assertEquals(a.snapshots, 0);
    assertEquals(a.shared, shared.size);
    assertEquals(a.unique, mA.size + configA.size + onlyA.size);
    assertEquals(b.content, mB.size + configB.size + shared.size);
    assertEquals(b.snapshots, snap);
    // b:1 and b:alias share everything.
    assertEquals(b.shared, b.size);
    assertEquals(b.unique, 0);
    const allContent = [shared, onlyA, configA, configB, mA, mB, junk].reduce(
      (n, d) => n + d.size,
      0,
    );
    assertEquals(usage.content, { count: 7, size: allContent });
    assertEquals(usage.snapshots, { count: 1, size: snap });
    assertEquals(usage.ingests, { count: 0, size: 0 });
    // All images together: shared bytes once; with no container, removing them all frees it all.
    const images = allContent - junk.size + snap;
    assertEquals(usage.imagesSize, images);
    assertEquals(usage.unusedImagesSize, images);
    // A container made from b:1 keeps what b uses (the shared layer too); a's own blobs go.
    db.containers.create("default", {
      id: "c1",
      image: "b:1",
      spec: { ociVersion: "1.1.0" },
      runtime: { name: "io.tug.runtime.v1" },
    });
    const withContainer = await diskUsage(db, "default", {
      content: backend,
      snapshotters: [native],
    });
    assertEquals(withContainer.imagesSize, images);
    assertEquals(withContainer.unusedImagesSize, mA.size + configA.size + onlyA.size);
    assertEquals(usage.size, allContent + snap);
    assertEquals(usage.reclaimable, junk.size);
  } finally {
    await native.close();
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("diskUsage() counts partial downloads, and the stale ones no lease holds as reclaimable", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tug-usage-" });
  const db = MetadataStore.open(join(dir, "meta.db"));
  const backend = await LocalContentStore.open(join(dir, "content"), { sync: false });
  try {
    const ns = db.contentStore("default", backend);
    const w = await ns.writer("layer-1", { total: 10_000 });
    await w.write(new Uint8Array(3000));
    await w.close();
    const lease = db.leases.create("default", { expiresIn: 60_000 });
    const leased = db.contentStore("default", backend, { lease: lease.id });
    const w2 = await leased.writer("layer-2", { total: 10_000 });
    await w2.write(new Uint8Array(500));
    await w2.close();
    // Another namespace's ingest does not count here.
    const o = await db.contentStore("other", backend).writer("layer-1");
    await o.write(new Uint8Array(7));
    await o.close();

    const now = await diskUsage(db, "default", { content: backend });
    assertEquals(now.ingests, { count: 2, size: 3500 });
    assertEquals(now.size, 3500);
    assertEquals(now.reclaimable, 0, "both are recent");
    const later = await diskUsage(db, "default", { content: backend, ingestGracePeriod: 0 });
    assertEquals(later.reclaimable, 3000, "the leased one stays");
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

async function backendKeys(
  sn: { walk(fn: (i: { name: string }) => void): Promise<void> },
): Promise<string[]> {
  const out: string[] = [];
  await sn.walk((i) => {
    out.push(i.name);
  });
  return out;
}
