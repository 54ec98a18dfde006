import { join } from "node:path";
import { AlreadyExists, NotFound } from "../../errors.ts";
import { assertEquals, assertRejects } from "../../tests/assert.ts";
import { contentStoreConformance } from "../content/conformance.ts";
import { digestOf } from "../content/digest.ts";
import { LocalContentStore } from "../content/local.ts";
import type { ContentStore } from "../types.ts";
import { MetadataStore } from "./mod.ts";

contentStoreConformance("NamespacedContentStore over LocalContentStore", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tug-meta-content-" });
  const db = MetadataStore.open(join(dir, "meta.db"));
  const backend = await LocalContentStore.open(join(dir, "content"), { sync: false });
  return {
    store: db.contentStore("conformance", backend),
    cleanup: async () => {
      db.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
});

interface Env {
  db: MetadataStore;
  backend: LocalContentStore;
}

async function withEnv(fn: (env: Env) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tug-meta-content-" });
  const db = MetadataStore.open(join(dir, "meta.db"));
  try {
    await fn({ db, backend: await LocalContentStore.open(join(dir, "content"), { sync: false }) });
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const enc = new TextEncoder();

async function put(
  store: ContentStore,
  text: string,
  labels?: Record<string, string>,
): Promise<string> {
  const data = enc.encode(text);
  const digest = digestOf(data);
  const w = await store.writer(`ref-${digest}`, { expected: digest, total: data.length });
  await w.write(data);
  await w.commit(data.length, digest, labels ? { labels } : {});
  return digest;
}

async function digests(store: ContentStore): Promise<string[]> {
  const out: string[] = [];
  for await (const info of store.list()) out.push(info.digest);
  return out;
}

Deno.test("a blob committed in one namespace is invisible in another", async () => {
  await withEnv(async ({ db, backend }) => {
    const a = db.contentStore("a", backend);
    const b = db.contentStore("b", backend);
    const d = await put(a, "only in a");
    assertEquals(await digests(a), [d]);
    assertEquals(await digests(b), []);
    await assertRejects(() => b.info(d), NotFound, "namespace b");
    await assertRejects(() => b.readBytes(d), NotFound);
    await assertRejects(() => b.delete(d), NotFound);
  });
});

Deno.test("identical blobs are stored once and writing them again moves no bytes", async () => {
  await withEnv(async ({ db, backend }) => {
    const a = db.contentStore("a", backend);
    const b = db.contentStore("b", backend);
    const d = await put(a, "shared layer");
    const err = await assertRejects(
      () => b.writer("pull-b", { expected: d, total: 12 }),
      AlreadyExists,
    );
    assertEquals(err.message.includes(d), true);
    assertEquals(await digests(b), [d]);
    assertEquals(await b.listIngests(), []);
    assertEquals((await backend.listIngests()).length, 0);
    const all: string[] = [];
    for await (const info of backend.list()) all.push(info.digest);
    assertEquals(all, [d]);
  });
});

Deno.test("labels are kept per namespace", async () => {
  await withEnv(async ({ db, backend }) => {
    const a = db.contentStore("a", backend);
    const b = db.contentStore("b", backend);
    const d = await put(a, "labelled", { owner: "a" });
    await b.writer("x", { expected: d }).catch(() => {});
    await b.update(d, { owner: "b" });
    assertEquals((await a.info(d)).labels, { owner: "a" });
    assertEquals((await b.info(d)).labels, { owner: "b" });
    assertEquals((await backend.info(d)).labels, {});
  });
});

Deno.test("delete() keeps the bytes while another namespace records them", async () => {
  await withEnv(async ({ db, backend }) => {
    const a = db.contentStore("a", backend);
    const b = db.contentStore("b", backend);
    const d = await put(a, "twice recorded");
    await b.writer("x", { expected: d }).catch(() => {});
    await a.delete(d);
    assertEquals(await b.readBytes(d), enc.encode("twice recorded"));
    await b.delete(d);
    await assertRejects(() => backend.info(d), NotFound);
  });
});

Deno.test("ingests are per namespace", async () => {
  await withEnv(async ({ db, backend }) => {
    const a = db.contentStore("a", backend);
    const b = db.contentStore("b", backend);
    const wa = await a.writer("layer");
    await wa.write(enc.encode("partial"));
    await wa.close();
    const wb = await b.writer("layer");
    assertEquals(wb.offset, 0);
    await wb.close();
    assertEquals((await a.listIngests()).map((i) => [i.ref, i.offset]), [["layer", 7]]);
    assertEquals((await b.listIngests()).map((i) => [i.ref, i.offset]), [["layer", 0]]);
    await b.abort("layer");
    assertEquals((await a.listIngests()).length, 1);
    await assertRejects(() => b.abort("layer"), NotFound);
    const again = await a.writer("layer");
    assertEquals(again.offset, 7);
    await again.close();
  });
});

Deno.test("a lease holds what is written through the view", async () => {
  await withEnv(async ({ db, backend }) => {
    const lease = db.leases.create("a", { id: "pull" });
    const a = db.contentStore("a", backend, { lease: lease.id });
    const d = await put(a, "leased");
    const w = await a.writer("open-ingest");
    await w.close();
    assertEquals(db.leases.listResources("a", "pull"), [
      { type: "content", digest: d },
      { type: "ingest", ref: "open-ingest" },
    ]);
    await assertRejects(
      () => Promise.resolve().then(() => db.contentStore("a", backend, { lease: "missing" })),
      NotFound,
      "lease missing",
    );
  });
});
