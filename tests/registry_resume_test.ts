/**
 * Interrupted pulls resume: a pull killed half-way through a large layer
 * leaves a partial ingest; the next pull fetches only what is missing (with
 * `Range`), never the blobs it committed, and the result verifies. A loopback
 * proxy in front of the registry records the requests and holds the large
 * blob's first download open after some bytes, so the kill lands mid-layer
 * without any timing assumption.
 */
import { join } from "node:path";
import { digestOf } from "../images/content/digest.ts";
import { LocalContentStore } from "../images/content/local.ts";
import { RegistryClient } from "../images/registry/client.ts";
import { fetchImage, ingestRef } from "../images/registry/fetch.ts";
import type { Descriptor } from "../images/types.ts";
import { assert, assertEquals } from "./assert.ts";
import { LARGE_FILE_SIZE, pushFixture } from "./fixtures/mod.ts";
import { requires, withTempDir } from "./harness.ts";
import { startProxy, startRegistry, type TestProxy, type TestRegistry } from "./registry.ts";

const ignore = requires("registry", "skopeo", "umoci", "busybox");
const CHILD = new URL("./registry_resume_child.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;
const STALL_AT = 20 << 20;

/** Pushes the "large" fixture and reads its manifest back: its config, its layers and the large one. */
async function pushLarge(
  reg: TestRegistry,
): Promise<{ config: Descriptor; layers: Descriptor[]; big: Descriptor }> {
  await pushFixture(reg, "large");
  const res = await fetch(`${reg.url}/v2/large/manifests/latest`, {
    headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
  });
  const { config, layers } = await res.json() as { config: Descriptor; layers: Descriptor[] };
  return { config, layers, big: layers.find((l) => l.size > LARGE_FILE_SIZE)! };
}

function blobGets(
  proxy: TestProxy,
  from: number,
): { digest: string; range?: string; status: number }[] {
  return proxy.requests.slice(from)
    .filter((r) => r.method === "GET" && r.path.includes("/blobs/sha256:"))
    .map((r) => ({
      digest: r.path.slice(r.path.indexOf("/blobs/") + 7).split("?")[0]!,
      ...(r.headers.range ? { range: r.headers.range } : {}),
      status: r.status,
    }));
}

async function until(
  what: string,
  check: () => Promise<boolean>,
  child: Deno.ChildProcess,
): Promise<void> {
  const deadline = Date.now() + 60_000;
  let exited = false;
  child.status.then(() => exited = true);
  while (!(await check())) {
    if (exited) throw new Error(`the pulling child exited before ${what}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test({
  name:
    "a pull killed half-way through a large layer resumes with Range and refetches no committed blob",
  ignore,
  async fn() {
    await using reg = await startRegistry();
    const { config, layers, big } = await pushLarge(reg);
    const others = layers.filter((l) => l !== big);
    let stalled = false;
    await using proxy = startProxy(reg.url, {
      stallAfter: (req) => {
        if (stalled || req.method !== "GET" || !req.url.includes(big.digest)) return undefined;
        stalled = true;
        return STALL_AT;
      },
    });
    await withTempDir(async (dir) => {
      const contentDir = join(dir, "content");
      const store = await LocalContentStore.open(contentDir);
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--config",
          CONFIG,
          "--v8-flags=--single-threaded",
          CHILD,
          contentDir,
          `${proxy.host}/large:latest`,
        ],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const output = child.output();
      try {
        await until(
          "the large ingest grows past 20 MiB and the other blobs are committed",
          async () => {
            const ingest = (await store.listIngests()).find((i) => i.ref === ingestRef(big));
            if (!ingest || ingest.offset < STALL_AT) return false;
            for (const d of [config, ...others]) {
              try {
                await store.info(d.digest);
              } catch {
                return false;
              }
            }
            return true;
          },
          child,
        );
      } finally {
        try {
          child.kill("SIGKILL");
        } catch {
          // exited
        }
      }
      const out = await output;
      assertEquals(out.signal, "SIGKILL", new TextDecoder().decode(out.stderr));
      const [partial] = (await store.listIngests()).filter((i) => i.ref === ingestRef(big));
      assertEquals(partial?.offset, STALL_AT);
      assertEquals(blobGets(proxy, 0).filter((g) => g.digest === big.digest).length, 1);

      // The second pull, in this process.
      const from = proxy.requests.length;
      const client = new RegistryClient({ plainHttp: true });
      const image = await fetchImage(client, `${proxy.host}/large:latest`, { store });
      client.close();
      assertEquals(blobGets(proxy, from), [{
        digest: big.digest,
        range: `bytes=${STALL_AT}-`,
        status: 206,
      }]);
      assertEquals(image.stats.resumed, 1);
      assertEquals(image.stats.existing, 1 + others.length);
      assertEquals(image.stats.bytes, big.size - STALL_AT);
      for (const d of [image.target, config, ...layers]) {
        assertEquals(digestOf(await store.readBytes(d.digest)), d.digest);
      }
      assertEquals(await store.listIngests(), []);
    });
  },
});

Deno.test({
  name:
    "a resumed blob restarts from zero when the server ignores Range, and when the partial data was wrong",
  ignore,
  async fn() {
    await using reg = await startRegistry();
    const { big } = await pushLarge(reg);
    const head = new Uint8Array(
      await (await fetch(`${reg.url}/v2/large/blobs/${big.digest}`)).arrayBuffer(),
    ).subarray(0, 1 << 20);
    const partial = async (store: LocalContentStore, bytes: Uint8Array) => {
      const w = await store.writer(ingestRef(big), { expected: big.digest, total: big.size });
      await w.write(bytes);
      await w.close();
    };
    await withTempDir(async (dir) => {
      // A server that answers 200 to a Range request.
      await using strip = startProxy(reg.url, { stripRange: true });
      const store = await LocalContentStore.open(join(dir, "a"));
      await partial(store, head);
      const client = new RegistryClient({ plainHttp: true });
      const image = await fetchImage(client, `${strip.host}/large:latest`, { store });
      const gets = blobGets(strip, 0).filter((g) => g.digest === big.digest);
      assertEquals(gets, [{ digest: big.digest, range: `bytes=${head.length}-`, status: 200 }]);
      assertEquals(image.stats.resumed, 0);
      assertEquals(digestOf(await store.readBytes(big.digest)), big.digest);

      // Partial data that does not match: the resumed blob fails verification, then is fetched again whole.
      await using plain = startProxy(reg.url);
      const store2 = await LocalContentStore.open(join(dir, "b"));
      const wrong = head.slice();
      wrong[100] = wrong[100]! ^ 0xff;
      await partial(store2, wrong);
      const again = await fetchImage(client, `${plain.host}/large:latest`, { store: store2 });
      const gets2 = blobGets(plain, 0).filter((g) => g.digest === big.digest);
      assertEquals(gets2, [
        { digest: big.digest, range: `bytes=${head.length}-`, status: 206 },
        { digest: big.digest, status: 200 },
      ]);
      assert(again.stats.fetched >= 1);
      assertEquals(digestOf(await store2.readBytes(big.digest)), big.digest);
      assertEquals(await store2.listIngests(), []);
      client.close();
    });
  },
});

Deno.test({
  name:
    "a layer whose connection breaks off mid-body is asked again from where it stopped, and a server that keeps breaking off is named",
  ignore,
  async fn() {
    await using reg = await startRegistry();
    const { layers, big } = await pushLarge(reg);
    const isBig = (req: Request) => req.method === "GET" && req.url.includes(big.digest);
    await withTempDir(async (dir) => {
      const client = new RegistryClient({ plainHttp: true });
      try {
        // Broken off twice, each time after 1 MiB more: two more requests, each from the byte reached.
        let breaks = 0;
        await using flaky = startProxy(reg.url, {
          breakAfter: (req) => isBig(req) && breaks++ < 2 ? 1 << 20 : undefined,
        });
        const store = await LocalContentStore.open(join(dir, "a"));
        const image = await fetchImage(client, `${flaky.host}/large:latest`, { store });
        const gets = blobGets(flaky, 0).filter((g) => g.digest === big.digest);
        // Each from the byte the ingest had reached (what was in flight when the proxy broke off is lost).
        const from = gets.map((g) => Number(/^bytes=(\d+)-$/.exec(g.range ?? "bytes=0-")?.[1]));
        assertEquals(from.length, 3, JSON.stringify(gets));
        assert(from[0] === 0 && 0 < from[1]! && from[1]! < from[2]!, JSON.stringify(gets));
        assertEquals(image.stats.fetched + image.stats.resumed, 3 + layers.length - 1);
        assertEquals(digestOf(await store.readBytes(big.digest)), big.digest);
        assertEquals(await store.listIngests(), []);

        // A server that ignores Range when asked again: the bytes the ingest has are dropped.
        let once = 0;
        await using strip = startProxy(reg.url, {
          stripRange: true,
          breakAfter: (req) => isBig(req) && once++ < 1 ? 3 << 20 : undefined,
        });
        const store2 = await LocalContentStore.open(join(dir, "b"));
        await fetchImage(client, `${strip.host}/large:latest`, { store: store2 });
        assertEquals(digestOf(await store2.readBytes(big.digest)), big.digest);

        // Broken off every time with no byte gained: four requests, then an error naming blob and host.
        await using dead = startProxy(reg.url, {
          breakAfter: (req) => isBig(req) ? 0 : undefined,
        });
        const store3 = await LocalContentStore.open(join(dir, "c"));
        const err = await fetchImage(client, `${dead.host}/large:latest`, { store: store3 }).then(
          () => undefined,
          (e: Error) => e,
        );
        assert(err, "the pull fails");
        assertEquals(err.name, "Unavailable", String(err));
        for (const part of [big.digest, dead.host, "broke off at byte 0", "asked 4 times"]) {
          assert(err.message.includes(part), `${part} in: ${err.message}`);
        }
        assertEquals(blobGets(dead, 0).filter((g) => g.digest === big.digest).length, 4);
      } finally {
        client.close();
      }
    });
  },
});
