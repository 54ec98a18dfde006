import { join } from "node:path";
import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import { AlreadyExists, Conflict, InvalidArgument } from "../../errors.ts";
import { contentStoreConformance } from "./conformance.ts";
import { digestOf } from "./digest.ts";
import { LocalContentStore } from "./local.ts";

contentStoreConformance("LocalContentStore", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tug-content-" });
  return {
    store: await LocalContentStore.open(join(dir, "content")),
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
});

async function withStore(
  fn: (store: LocalContentStore, dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tug-content-" });
  try {
    await fn(await LocalContentStore.open(join(dir, "content")), dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("LocalContentStore keeps committed blobs read-only under blobs/sha256/<hex>", async () => {
  await withStore(async (store, dir) => {
    const data = new TextEncoder().encode("layout");
    const digest = digestOf(data);
    const w = await store.writer("layout", { expected: digest });
    await w.write(data);
    await w.commit(data.length, digest);
    const path = join(dir, "content", "blobs", "sha256", digest.slice(7));
    assertEquals(await Deno.readFile(path), data);
    assertEquals((await Deno.stat(path)).mode! & 0o777, 0o444);
    assertEquals([...Deno.readDirSync(join(dir, "content", "ingest"))], []);
  });
});

Deno.test("LocalContentStore verifies sha512 digests", async () => {
  await withStore(async (store) => {
    const data = new TextEncoder().encode("sha512 blob");
    const digest = digestOf(data, "sha512");
    const w = await store.writer("sha512");
    await w.write(data);
    await w.commit(data.length, digest);
    assertEquals(await store.readBytes(digest), data);
    assertEquals((await store.info(digest)).size, data.length);
    const w2 = await store.writer("sha512-bad");
    await w2.write(data);
    await assertRejects(
      () => w2.commit(data.length, digestOf(new Uint8Array(1), "sha512")),
      InvalidArgument,
    );
  });
});

Deno.test("LocalContentStore resumes an ingest left by a killed process", async () => {
  await withStore(async (store) => {
    const data = new Uint8Array(3 << 20);
    for (let i = 0; i < data.length; i += 65536) {
      crypto.getRandomValues(data.subarray(i, i + 65536));
    }
    const digest = digestOf(data);
    const half = 1_234_567;
    // A child process writes the first part and kills itself before it can close anything.
    const script = `
      import { LocalContentStore } from ${
      JSON.stringify(new URL("./local.ts", import.meta.url).href)
    };
      const store = await LocalContentStore.open(Deno.args[0]);
      const data = await Deno.readFile(Deno.args[1]);
      const w = await store.writer("killed", { expected: Deno.args[2], total: data.length });
      await w.write(data.subarray(0, Number(Deno.args[3])));
      Deno.kill(Deno.pid, "SIGKILL");
    `;
    const tmp = await Deno.makeTempDir({ prefix: "tug-content-child-" });
    try {
      await Deno.writeFile(join(tmp, "data"), data);
      await Deno.writeTextFile(join(tmp, "child.ts"), script);
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--no-config",
          join(tmp, "child.ts"),
          store.dir,
          join(tmp, "data"),
          digest,
          String(half),
        ],
        stdout: "null",
        stderr: "piped",
      }).output();
      assertEquals(out.signal, "SIGKILL", new TextDecoder().decode(out.stderr));
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
    const [status] = await store.listIngests();
    assertEquals(status?.offset, half);
    assertEquals(status?.expected, digest);
    const w = await store.writer("killed", { expected: digest, total: data.length });
    assertEquals(w.offset, half);
    await w.write(data.subarray(half));
    await w.commit(data.length, digest);
    assertEquals(digestOf(await store.readBytes(digest)), digest);
  });
});

Deno.test("LocalContentStore refuses to resume an ingest that expects another digest", async () => {
  await withStore(async (store) => {
    const a = digestOf("a");
    const w = await store.writer("mixed", { expected: a, total: 1 });
    await w.close();
    await assertRejects(() => store.writer("mixed", { expected: digestOf("b") }), InvalidArgument);
    await assertRejects(() => store.writer("mixed", { total: 2 }), InvalidArgument);
    const again = await store.writer("mixed", { expected: a });
    await again.write(new TextEncoder().encode("a"));
    await again.commit(1, a);
    await assertRejects(() => store.writer("other", { expected: a }), AlreadyExists);
  });
});

Deno.test("LocalContentStore ignores an ingest directory left half-made", async () => {
  await withStore(async (store) => {
    const dir = store.ingestDir("broken");
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(join(dir, "data"), "junk");
    assertEquals(await store.listIngests(), []);
    const w = await store.writer("broken");
    assertEquals(w.offset, 0);
    await w.close();
    assert((await store.listIngests()).length === 1);
  });
});

Deno.test("LocalContentStore keeps an ingest locked until its commit has removed it", async () => {
  await withStore(async (store) => {
    for (let round = 0; round < 40; round++) {
      const data = new TextEncoder().encode(`blob ${round}`);
      const digest = digestOf(data);
      const a = await store.writer("same-ref", { expected: digest });
      await a.write(data);
      const committing = a.commit(data.length, digest);
      // A second writer of the same ref, trying as fast as it can while the commit runs: it is
      // refused (Conflict) until the blob exists, then told so; it never opens the ingest halfway.
      for (;;) {
        try {
          const b = await store.writer("same-ref", { expected: digest });
          await b.close();
          throw new Error(`round ${round}: a second writer opened the ingest during the commit`);
        } catch (err) {
          if (err instanceof AlreadyExists) break;
          if (!(err instanceof Conflict)) throw err;
        }
      }
      await committing;
    }
    assertEquals(await store.listIngests(), []);
  });
});
