/**
 * The conformance suite of the {@link ContentStore} interface. Every
 * implementation (the local store, later the daemon's HTTP client) runs it:
 *
 * ```ts
 * import { contentStoreConformance } from "./conformance.ts";
 * contentStoreConformance("local", async () => {
 *   const dir = await Deno.makeTempDir();
 *   return { store: await LocalContentStore.open(dir), cleanup: () => Deno.remove(dir, { recursive: true }) };
 * });
 * ```
 *
 * Each case gets a fresh, empty store from the factory and cleans it up
 * afterwards, even on failure.
 *
 * @module
 */

import { AlreadyExists, Conflict, InvalidArgument, NotFound } from "../../errors.ts";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "../../tests/assert.ts";
import type { ContentInfo, ContentStore, Digest } from "../types.ts";
import { digestOf } from "./digest.ts";
import { concat } from "../../util/bytes.ts";

/** A store under test and how to dispose of it. */
export interface ContentStoreFixture {
  store: ContentStore;
  cleanup(): Promise<void>;
}

/** Makes a fresh, empty store for one test case. */
export type ContentStoreFactory = () => Promise<ContentStoreFixture>;

/** Options for {@link contentStoreConformance}. */
export interface ContentStoreConformanceOptions {
  /** Skip every case (with Deno's `ignore`), e.g. when the implementation needs something missing. */
  ignore?: boolean;
  /** Size of the blob the streaming case writes (default 8 MiB). */
  largeSize?: number;
}

const enc = new TextEncoder();

function bytes(text: string): Uint8Array {
  return enc.encode(text);
}

function randomBytes(size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) {
    crypto.getRandomValues(out.subarray(i, Math.min(size, i + 65536)));
  }
  return out;
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const chunk of stream) parts.push(chunk);
  return concat(parts);
}

async function put(
  store: ContentStore,
  ref: string,
  data: Uint8Array,
  labels?: Record<string, string>,
): Promise<Digest> {
  const digest = digestOf(data);
  const w = await store.writer(ref, { expected: digest, total: data.length });
  await w.write(data);
  await w.commit(data.length, digest, labels ? { labels } : {});
  return digest;
}

async function listAll(store: ContentStore): Promise<ContentInfo[]> {
  const out: ContentInfo[] = [];
  for await (const info of store.list()) out.push(info);
  return out;
}

/**
 * Registers the content store conformance cases with `Deno.test`, each named
 * `<name>: <what it checks>`, run against stores made by `factory`.
 */
export function contentStoreConformance(
  name: string,
  factory: ContentStoreFactory,
  options: ContentStoreConformanceOptions = {},
): void {
  const test = (what: string, fn: (store: ContentStore) => Promise<void>) => {
    Deno.test({
      name: `${name}: ${what}`,
      ignore: options.ignore ?? false,
      async fn() {
        const fixture = await factory();
        try {
          await fn(fixture.store);
        } finally {
          await fixture.cleanup();
        }
      },
    });
  };

  test("a committed blob can be read back by digest", async (store) => {
    const data = bytes("hello, content store");
    const digest = await put(store, "ref-1", data);
    assertEquals(await store.readBytes(digest), data);
    assertEquals(await collect(await store.read(digest)), data);
    const info = await store.info(digest);
    assertEquals(info.digest, digest);
    assertEquals(info.size, data.length);
    assertEquals(info.labels, {});
    assert(info.createdAt instanceof Date && info.updatedAt instanceof Date);
    assertEquals((await listAll(store)).map((i) => i.digest), [digest]);
    assertEquals(await store.listIngests(), []);
  });

  test("an empty blob can be committed", async (store) => {
    const digest = await put(store, "empty", new Uint8Array());
    assertEquals((await store.info(digest)).size, 0);
    assertEquals((await store.readBytes(digest)).length, 0);
  });

  test("read() starts at the given offset", async (store) => {
    const data = bytes("0123456789");
    const digest = await put(store, "offset", data);
    assertEquals(
      new TextDecoder().decode(await collect(await store.read(digest, { offset: 4 }))),
      "456789",
    );
    assertEquals((await collect(await store.read(digest, { offset: 10 }))).length, 0);
    await assertRejects(() => store.read(digest, { offset: 11 }), InvalidArgument);
  });

  test("an uncommitted write is invisible but listed as an ingest", async (store) => {
    const data = bytes("not yet");
    const digest = digestOf(data);
    const w = await store.writer("pending", { expected: digest, total: 100 });
    await w.write(data);
    await assertRejects(() => store.info(digest), NotFound);
    await assertRejects(() => store.readBytes(digest), NotFound);
    await assertRejects(() => store.read(digest), NotFound);
    assertEquals(await listAll(store), []);
    const ingests = await store.listIngests();
    assertEquals(ingests.length, 1);
    assertEquals(ingests[0]!.ref, "pending");
    assertEquals(ingests[0]!.offset, data.length);
    assertEquals(ingests[0]!.total, 100);
    assertEquals(ingests[0]!.expected, digest);
    assert(ingests[0]!.startedAt instanceof Date);
    await w.close();
  });

  test("a digest mismatch fails the commit, names both digests and keeps nothing", async (store) => {
    const data = bytes("the real bytes");
    const claimed = digestOf(bytes("other bytes"));
    const w = await store.writer("bad-digest");
    await w.write(data);
    const err = await assertRejects(() => w.commit(data.length, claimed), InvalidArgument);
    assertStringIncludes(err.message, claimed);
    assertStringIncludes(err.message, digestOf(data));
    await assertRejects(() => store.info(claimed), NotFound);
    await assertRejects(() => store.info(digestOf(data)), NotFound);
    assertEquals(await store.listIngests(), []);
    assertEquals(await listAll(store), []);
  });

  test("a size mismatch fails the commit and keeps nothing", async (store) => {
    const data = bytes("twelve bytes");
    const w = await store.writer("bad-size");
    await w.write(data);
    const err = await assertRejects(
      () => w.commit(data.length + 1, digestOf(data)),
      InvalidArgument,
    );
    assertStringIncludes(err.message, String(data.length + 1));
    assertEquals(await store.listIngests(), []);
    assertEquals(await listAll(store), []);
  });

  test("a closed writer resumes at its offset and commits the whole blob", async (store) => {
    const data = randomBytes(300_000);
    const digest = digestOf(data);
    const w1 = await store.writer("resume", { expected: digest, total: data.length });
    assertEquals(w1.offset, 0);
    await w1.write(data.subarray(0, 123_457));
    await w1.close();
    const w2 = await store.writer("resume", { expected: digest, total: data.length });
    assertEquals(w2.offset, 123_457);
    await w2.write(data.subarray(123_457));
    assertEquals(w2.offset, data.length);
    await w2.commit(data.length, digest);
    assertEquals(await store.readBytes(digest), data);
    assertEquals(await store.listIngests(), []);
  });

  test("writer() refuses a ref that another writer holds", async (store) => {
    const w = await store.writer("busy");
    await assertRejects(() => store.writer("busy"), Conflict);
    await w.close();
    const again = await store.writer("busy");
    await again.close();
    await store.abort("busy");
  });

  test("writer() refuses an expected digest that is committed already", async (store) => {
    const digest = await put(store, "first", bytes("same"));
    const err = await assertRejects(
      () => store.writer("second", { expected: digest }),
      AlreadyExists,
    );
    assertStringIncludes(err.message, digest);
    assertEquals(await store.listIngests(), []);
  });

  test("committing a blob that exists already fails with AlreadyExists and leaves it intact", async (store) => {
    const data = bytes("twice");
    const digest = digestOf(data);
    const a = await store.writer("a");
    const b = await store.writer("b");
    await a.write(data);
    await b.write(data);
    await a.commit(data.length, digest);
    await assertRejects(() => b.commit(data.length, digest), AlreadyExists);
    assertEquals(await store.readBytes(digest), data);
    assertEquals(await store.listIngests(), []);
  });

  test("abort() removes an ingest; an unknown ref is NotFound", async (store) => {
    const w = await store.writer("to-abort");
    await w.write(bytes("partial"));
    await w.close();
    await store.abort("to-abort");
    assertEquals(await store.listIngests(), []);
    await assertRejects(() => store.abort("to-abort"), NotFound);
    const fresh = await store.writer("to-abort");
    assertEquals(fresh.offset, 0);
    await fresh.close();
  });

  test("labels given at commit are stored and update() merges and removes them", async (store) => {
    const digest = await put(store, "labelled", bytes("labelled"), {
      "containerd.io/gc.ref.content.l.0": "sha256:abc",
    });
    assertEquals((await store.info(digest)).labels, {
      "containerd.io/gc.ref.content.l.0": "sha256:abc",
    });
    const updated = await store.update(digest, {
      "containerd.io/distribution.source.docker.io": "library/busybox",
      "containerd.io/gc.ref.content.l.0": "",
    });
    assertEquals(updated.labels, {
      "containerd.io/distribution.source.docker.io": "library/busybox",
    });
    assertEquals((await store.info(digest)).labels, updated.labels);
    await assertRejects(() => store.update(digestOf(bytes("absent")), { a: "b" }), NotFound);
    await assertRejects(() => store.update(digest, { "": "x" }), InvalidArgument);
  });

  test("delete() removes a blob and its labels; an unknown digest is NotFound", async (store) => {
    const digest = await put(store, "doomed", bytes("doomed"), { keep: "no" });
    await store.delete(digest);
    await assertRejects(() => store.info(digest), NotFound);
    await assertRejects(() => store.readBytes(digest), NotFound);
    assertEquals(await listAll(store), []);
    await assertRejects(() => store.delete(digest), NotFound);
    const again = await put(store, "doomed-again", bytes("doomed"));
    assertEquals((await store.info(again)).labels, {});
  });

  test("malformed digests are refused with InvalidArgument", async (store) => {
    for (
      const bad of [
        "",
        "sha256",
        "sha256:xyz",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "SHA256:" + "a".repeat(64),
        "sha256:" + "A".repeat(64),
      ]
    ) {
      await assertRejects(() => store.info(bad), InvalidArgument);
      await assertRejects(() => store.readBytes(bad), InvalidArgument);
    }
    const w = await store.writer("bad");
    await w.write(bytes("x"));
    await assertRejects(() => w.commit(1, "sha256:nothex"), InvalidArgument);
    await w.close();
  });

  test("a large blob streams in and out unchanged", async (store) => {
    const size = options.largeSize ?? 8 << 20;
    const data = randomBytes(size);
    const digest = digestOf(data);
    const w = await store.writer("large", { expected: digest, total: size });
    for (let at = 0; at < size; at += 100_000) {
      await w.write(data.subarray(at, Math.min(size, at + 100_000)));
    }
    await w.commit(size, digest);
    const back = await collect(await store.read(digest));
    assertEquals(back.length, size);
    assertEquals(digestOf(back), digest);
  });

  test("several blobs are listed, each once", async (store) => {
    const digests = [];
    for (let i = 0; i < 5; i++) digests.push(await put(store, `many-${i}`, bytes(`blob ${i}`)));
    const listed = (await listAll(store)).map((i) => i.digest).sort();
    assertEquals(listed, digests.sort());
  });
}
