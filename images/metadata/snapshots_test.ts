import { join } from "node:path";
import { AlreadyExists, FailedPrecondition, NotFound } from "../../errors.ts";
import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import { requires } from "../../tests/harness.ts";
import { snapshotterConformance } from "../snapshots/conformance.ts";
import { openNativeSnapshotter } from "../snapshots/native.ts";
import { openOverlaySnapshotter } from "../snapshots/overlay.ts";
import type { Snapshotter } from "../types.ts";
import { MetadataStore } from "./mod.ts";

const BACKENDS: Record<string, (root: string) => Promise<Snapshotter>> = {
  native: (root) => openNativeSnapshotter(root),
  overlayfs: (root) => openOverlaySnapshotter(root),
};

/** The namespaced view as a Snapshotter that owns its database and backing snapshotter (closing closes them). */
function owning(db: MetadataStore, backend: Snapshotter): Snapshotter {
  const view = db.snapshotter("conformance", backend);
  return {
    name: view.name,
    stat: (key) => view.stat(key),
    update: (info) => view.update(info),
    usage: (key) => view.usage(key),
    mounts: (key) => view.mounts(key),
    prepare: (key, parent, options) => view.prepare(key, parent, options),
    view: (key, parent, options) => view.view(key, parent, options),
    commit: (name, key, options) => view.commit(name, key, options),
    remove: (key) => view.remove(key),
    walk: (fn) => view.walk(fn),
    close: async () => {
      await backend.close();
      db.close();
    },
  };
}

for (const [name, open] of Object.entries(BACKENDS)) {
  snapshotterConformance(`NamespacedSnapshotter over ${name}`, async (root) => {
    const db = MetadataStore.open(join(root, "meta.db"));
    return owning(db, await open(join(root, name)));
  }, {
    ignore: requires("root", ...(name === "overlayfs" ? ["overlayfs" as const] : [])),
    bookkeeping: /(^|\/)(metadata|meta)\.db(-wal|-shm)?$/,
  });
}

interface Env {
  db: MetadataStore;
  backend: Snapshotter;
}

function each(what: string, fn: (env: Env) => Promise<void>): void {
  for (const [name, open] of Object.entries(BACKENDS)) {
    Deno.test(`NamespacedSnapshotter over ${name}: ${what}`, async () => {
      const dir = await Deno.makeTempDir({ prefix: "tug-meta-snap-" });
      const db = MetadataStore.open(join(dir, "meta.db"));
      const backend = await open(join(dir, name));
      try {
        await fn({ db, backend });
      } finally {
        await backend.close();
        db.close();
        await Deno.remove(dir, { recursive: true });
      }
    });
  }
}

async function keys(sn: Snapshotter): Promise<string[]> {
  const out: string[] = [];
  await sn.walk((i) => {
    out.push(i.name);
  });
  return out.sort();
}

each("prepare, commit and view work in namespace keys and parents", async ({ db, backend }) => {
  const sn = db.snapshotter("default", backend);
  const mounts = await sn.prepare("extract-1", undefined, { labels: { a: "1" } });
  assertEquals(mounts.length, 1);
  assert(mounts[0]!.source.startsWith("/"));
  await Deno.writeTextFile(join(mounts[0]!.source, "f"), "x");
  await sn.commit("sha256:layer1", "extract-1", { labels: { committed: "yes" } });
  await assertRejects(() => sn.stat("extract-1"), NotFound);
  const info = await sn.stat("sha256:layer1");
  assertEquals([info.name, info.kind, info.parent, info.labels], [
    "sha256:layer1",
    "committed",
    undefined,
    {
      a: "1",
      committed: "yes",
    },
  ]);
  await sn.prepare("container-1", "sha256:layer1");
  await sn.view("view-1", "sha256:layer1");
  assertEquals((await sn.stat("container-1")).parent, "sha256:layer1");
  assertEquals((await sn.stat("view-1")).kind, "view");
  assertEquals(await keys(sn), ["container-1", "sha256:layer1", "view-1"]);
  assert((await sn.usage("sha256:layer1")).size >= 1);
  assertEquals((await sn.mounts("container-1")).length, 1);
});

each(
  "one namespace never sees another's snapshots, and keys do not collide",
  async ({ db, backend }) => {
    const a = db.snapshotter("a", backend);
    const b = db.snapshotter("b", backend);
    await a.prepare("k");
    await assertRejects(() => b.stat("k"), NotFound, "namespace b");
    await b.prepare("k");
    assertEquals(await keys(a), ["k"]);
    assertEquals(await keys(b), ["k"]);
    assertEquals((await keys(backend)).length, 2);
    await a.remove("k");
    assertEquals(await keys(b), ["k"]);
    assertEquals((await keys(backend)).length, 1);
  },
);

each("errors follow the snapshotter's rules", async ({ db, backend }) => {
  const sn = db.snapshotter("default", backend);
  await sn.prepare("active");
  await assertRejects(() => sn.prepare("active"), AlreadyExists);
  await assertRejects(() => sn.prepare("child", "active"), FailedPrecondition, "not committed");
  await assertRejects(() => sn.prepare("child", "missing"), NotFound, "missing");
  await sn.commit("base", "active");
  await sn.prepare("active-2", "base");
  await assertRejects(() => sn.commit("base", "active-2"), AlreadyExists);
  await sn.view("v", "base");
  await assertRejects(() => sn.commit("from-view", "v"), FailedPrecondition, "view");
  await assertRejects(() => sn.remove("base"), FailedPrecondition, "based on it");
  await sn.remove("v");
  await sn.remove("active-2");
  await sn.remove("base");
  assertEquals(await keys(sn), []);
  assertEquals(await keys(backend), []);
});

each("labels live in the metadata and update() replaces them", async ({ db, backend }) => {
  const sn = db.snapshotter("default", backend);
  await sn.prepare("k", undefined, { labels: { a: "1", "containerd.io/snapshot/x": "passed" } });
  const updated = await sn.update({ name: "k", labels: { b: "2" } });
  assertEquals(updated.labels, { b: "2" });
  assertEquals((await sn.stat("k")).labels, { b: "2" });
  const [backendKey] = await keys(backend);
  assertEquals((await backend.stat(backendKey!)).labels, { "containerd.io/snapshot/x": "passed" });
});

each("a lease holds the snapshots made through the view", async ({ db, backend }) => {
  db.leases.create("default", { id: "unpack" });
  const sn = db.snapshotter("default", backend, { lease: "unpack" });
  await sn.prepare("extract");
  await sn.commit("sha256:chain", "extract");
  assertEquals(db.leases.listResources("default", "unpack"), [
    { type: "snapshot", snapshotter: backend.name, key: "extract" },
    { type: "snapshot", snapshotter: backend.name, key: "sha256:chain" },
  ]);
});

each("a failure in the backing snapshotter leaves no record", async ({ db, backend }) => {
  const sn = db.snapshotter("default", backend);
  await backend.close();
  await assertRejects(() => sn.prepare("k"), FailedPrecondition, "closed");
  await assertRejects(() => sn.stat("k"), NotFound);
});
