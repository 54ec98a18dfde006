/**
 * Pulling from a real registry (Debian's docker-registry on 127.0.0.1) into
 * the local content store: every fixture kind, with and without auth,
 * platform selection, errors, a tampered blob, streaming to a consumer.
 */
import { join } from "node:path";
import { InvalidArgument, NotFound, Unauthenticated, Unavailable } from "../errors.ts";
import { digestOf } from "../images/content/digest.ts";
import { LocalContentStore } from "../images/content/local.ts";
import { RegistryClient } from "../images/registry/client.ts";
import { compressionOf, decompressChunks, decompressLayer } from "../images/registry/decompress.ts";
import { type FetchedImage, fetchImage } from "../images/registry/fetch.ts";
import { formatPlatform } from "../images/registry/platforms.ts";
import { parseReference } from "../images/registry/reference.ts";
import type { TransferProgress } from "../images/registry/progress.ts";
import { type Descriptor, MEDIA_TYPES } from "../images/types.ts";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "./assert.ts";
import { type FixtureName, LARGE_FILE_SIZE, pushFixture } from "./fixtures/mod.ts";
import { requires } from "./harness.ts";
import { type ProxyOptions, startProxy, startRegistry, type TestRegistry } from "./registry.ts";

const ignore = requires("registry", "skopeo", "umoci", "busybox");

async function withStore<T>(fn: (store: LocalContentStore) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "tug-pull-" });
  try {
    return await fn(await LocalContentStore.open(join(dir, "content")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function clientFor(
  registry: TestRegistry,
  options: { credentials?: boolean } = {},
): RegistryClient {
  const creds = registry.credentials;
  return new RegistryClient({
    plainHttp: true,
    ...(creds && options.credentials !== false ? { credentials: () => creds } : {}),
  });
}

async function text(stream: ReadableStream<Uint8Array>): Promise<string> {
  // latin1 keeps every byte: tar headers are ASCII.
  const parts: string[] = [];
  const d = new TextDecoder("latin1");
  for await (const c of stream) parts.push(d.decode(c, { stream: true }));
  return parts.join("");
}

/** Every blob of the image is in the store and verifies against its descriptor. */
async function assertComplete(store: LocalContentStore, image: FetchedImage): Promise<void> {
  const all: Descriptor[] = [image.target];
  for (const m of image.manifests) all.push(m.descriptor, m.config, ...m.layers);
  for (const d of all) {
    const bytes = await store.readBytes(d.digest);
    assertEquals(bytes.length, d.size, d.digest);
    assertEquals(digestOf(bytes), d.digest);
  }
  assertEquals(await store.listIngests(), []);
}

/** The decompressed bytes of each layer of the first manifest, as latin1 text. */
async function layerTexts(store: LocalContentStore, image: FetchedImage): Promise<string[]> {
  const out: string[] = [];
  for (const l of image.manifests[0]!.layers) {
    out.push(await text(decompressLayer(l.mediaType, await store.read(l.digest))));
  }
  return out;
}

let shared: { plain: TestRegistry; basic: TestRegistry; refs: Map<string, string> } | undefined;

/** One registry without auth and one with basic auth, with the fixtures pushed, shared by the tests of this file. */
async function registries(): Promise<NonNullable<typeof shared>> {
  if (shared) return shared;
  const plain = await startRegistry();
  const basic = await startRegistry({ auth: "htpasswd" });
  const refs = new Map<string, string>();
  const push = async (reg: TestRegistry, key: string, name: FixtureName, options = {}) => {
    refs.set(`${reg === plain ? "plain" : "basic"}:${key}`, await pushFixture(reg, name, options));
  };
  for (const reg of [plain, basic]) {
    for (const name of ["single", "layers", "multi", "zstd"] as const) await push(reg, name, name);
    await push(reg, "v2s2", "single", { format: "v2s2", repo: "single-v2s2" });
    await push(reg, "multi-v2s2", "multi", { format: "v2s2", repo: "multi-v2s2" });
  }
  shared = { plain, basic, refs };
  globalThis.addEventListener("unload", () => {
    for (const r of [plain, basic]) {
      try {
        Deno.kill(r.pid, "SIGKILL");
      } catch {
        // gone
      }
      try {
        Deno.removeSync(r.dir, { recursive: true });
      } catch {
        // gone
      }
    }
  });
  return shared;
}

function ref(kind: "plain" | "basic", key: string): string {
  return shared!.refs.get(`${kind}:${key}`)!;
}

for (const kind of ["plain", "basic"] as const) {
  const auth = kind === "plain" ? "without auth" : "with basic auth";

  Deno.test({
    name: `fetchImage() pulls an OCI single-layer image ${auth}`,
    ignore,
    async fn() {
      const { plain, basic } = await registries();
      const reg = kind === "plain" ? plain : basic;
      await withStore(async (store) => {
        const client = clientFor(reg);
        const image = await fetchImage(client, ref(kind, "single"), { store });
        assertEquals(image.target.mediaType, MEDIA_TYPES.ociManifest);
        assertEquals(image.name, `${reg.host}/single:latest`);
        assertEquals(image.manifests.length, 1);
        assertEquals(image.manifests[0]!.layers.length, 1);
        assertEquals(image.manifests[0]!.layers[0]!.mediaType, MEDIA_TYPES.ociLayerGzip);
        await assertComplete(store, image);
        const [layer] = await layerTexts(store, image);
        assertStringIncludes(layer!, "bin/busybox");
        const config = JSON.parse(
          new TextDecoder().decode(await store.readBytes(image.manifests[0]!.config.digest)),
        );
        assertEquals(config.config.Cmd, ["/bin/sh"]);
        assertEquals(image.stats.fetched, 3);
        // Content labels: the source, and containerd's GC references on the manifest.
        const manifestInfo = await store.info(image.target.digest);
        assertEquals(
          manifestInfo.labels[`containerd.io/distribution.source.${reg.host}`],
          "single",
        );
        assertEquals(
          manifestInfo.labels["containerd.io/gc.ref.content.config"],
          image.manifests[0]!.config.digest,
        );
        assertEquals(
          manifestInfo.labels["containerd.io/gc.ref.content.l.0"],
          image.manifests[0]!.layers[0]!.digest,
        );
        client.close();
      });
    },
  });

  Deno.test({
    name: `fetchImage() pulls a multi-layer image with whiteouts and an opaque directory ${auth}`,
    ignore,
    async fn() {
      const { plain, basic } = await registries();
      await withStore(async (store) => {
        const client = clientFor(kind === "plain" ? plain : basic);
        const image = await fetchImage(client, ref(kind, "layers"), { store });
        assertEquals(image.manifests[0]!.layers.length, 4);
        await assertComplete(store, image);
        const texts = await layerTexts(store, image);
        assertStringIncludes(texts[1]!, "etc/dir1/a");
        assertStringIncludes(texts[2]!, "etc/.wh.dir1");
        assertStringIncludes(texts[2]!, "etc/.wh.gone");
        assertStringIncludes(texts[3]!, "opq/.wh..wh..opq");
        client.close();
      });
    },
  });

  Deno.test({
    name: `fetchImage() pulls zstd layers and a Docker schema 2 image ${auth}`,
    ignore,
    async fn() {
      const { plain, basic } = await registries();
      await withStore(async (store) => {
        const client = clientFor(kind === "plain" ? plain : basic);
        const zstd = await fetchImage(client, ref(kind, "zstd"), { store });
        assertEquals(zstd.manifests[0]!.layers[0]!.mediaType, MEDIA_TYPES.ociLayerZstd);
        await assertComplete(store, zstd);
        assertStringIncludes((await layerTexts(store, zstd))[0]!, "bin/busybox");
        const docker = await fetchImage(client, ref(kind, "v2s2"), { store });
        assertEquals(docker.target.mediaType, MEDIA_TYPES.dockerManifest);
        assertEquals(docker.manifests[0]!.config.mediaType, MEDIA_TYPES.dockerConfig);
        assertEquals(docker.manifests[0]!.layers[0]!.mediaType, MEDIA_TYPES.dockerLayerGzip);
        await assertComplete(store, docker);
        assertStringIncludes((await layerTexts(store, docker))[0]!, "bin/busybox");
        client.close();
      });
    },
  });

  Deno.test({
    name: `fetchImage() chooses platforms from an OCI index and a Docker manifest list ${auth}`,
    ignore,
    async fn() {
      const { plain, basic } = await registries();
      await withStore(async (store) => {
        const client = clientFor(kind === "plain" ? plain : basic);
        for (const key of ["multi", "multi-v2s2"]) {
          const platformOf = async (image: FetchedImage) => {
            const texts = await layerTexts(store, image);
            return /(linux\/[a-z0-9]+(?:\/v\d)?)\n/.exec(texts[texts.length - 1]!)?.[1];
          };
          const native = await fetchImage(client, ref(kind, key), { store });
          assertEquals(
            native.target.mediaType,
            key === "multi" ? MEDIA_TYPES.ociIndex : MEDIA_TYPES.dockerManifestList,
          );
          assertEquals(native.manifests.length, 1);
          const want = Deno.build.arch === "aarch64" ? "linux/arm64/v8" : "linux/amd64";
          assertEquals(formatPlatform(native.manifests[0]!.platform!), want);
          assertEquals(await platformOf(native), want);
          await assertComplete(store, native);
          const indexLabels = (await store.info(native.target.digest)).labels;
          assertEquals(
            indexLabels["containerd.io/gc.ref.content.m.0"],
            native.manifests[0]!.descriptor.digest,
          );

          const arm = await fetchImage(client, ref(kind, key), {
            store,
            platform: { os: "linux", architecture: "arm", variant: "v7" },
          });
          assertEquals(await platformOf(arm), "linux/arm/v7");
          const arm64 = await fetchImage(client, ref(kind, key), {
            store,
            platform: { os: "linux", architecture: "arm64" },
          });
          assertEquals(await platformOf(arm64), "linux/arm64/v8");
          const all = await fetchImage(client, ref(kind, key), { store, platform: "all" });
          assertEquals(all.manifests.map((m) => formatPlatform(m.platform!)), [
            "linux/amd64",
            "linux/arm64/v8",
            "linux/arm/v7",
          ]);
          await assertComplete(store, all);
          const err = await assertRejects(
            () =>
              fetchImage(client, ref(kind, key), {
                store,
                platform: { os: "linux", architecture: "s390x" },
              }),
            NotFound,
            "linux/s390x",
          );
          assertStringIncludes(err.message, "linux/arm64/v8");
          // arm/v6 cannot run arm/v7.
          await assertRejects(
            () =>
              fetchImage(client, ref(kind, key), {
                store,
                platform: { os: "linux", architecture: "arm", variant: "v6" },
              }),
            NotFound,
          );
        }
        client.close();
      });
    },
  });
}

Deno.test({
  name: "fetchImage() refuses missing or wrong credentials and names the registry",
  ignore,
  async fn() {
    const { basic } = await registries();
    await withStore(async (store) => {
      const anonymous = clientFor(basic, { credentials: false });
      const err = await assertRejects(
        () => fetchImage(anonymous, ref("basic", "single"), { store }),
        Unauthenticated,
      );
      assertStringIncludes(err.message, basic.host);
      const wrong = new RegistryClient({
        plainHttp: true,
        credentials: () => ({ username: "tester", password: "wrong" }),
      });
      const err2 = await assertRejects(
        () => fetchImage(wrong, ref("basic", "single"), { store }),
        Unauthenticated,
      );
      assertStringIncludes(err2.message, basic.host);
      assertEquals([...await Array.fromAsync(store.list())], []);
    });
  },
});

Deno.test({
  name: "resolve() uses HEAD and needs no manifest GET for a tag",
  ignore,
  async fn() {
    const { plain } = await registries();
    const client = clientFor(plain);
    const before = plain.requests().length;
    const resolved = await client.resolve(ref("plain", "single"));
    const seen = plain.requests().slice(before).filter((r) => r.uri.includes("/manifests/"));
    assertEquals(seen.map((r) => r.method), ["HEAD"]);
    assertEquals(resolved.descriptor.mediaType, MEDIA_TYPES.ociManifest);
    assert(resolved.manifest === undefined);
    // By digest: the same descriptor.
    const pinned = await client.resolve(`${plain.host}/single@${resolved.descriptor.digest}`);
    assertEquals(pinned.descriptor, resolved.descriptor);
    client.close();
  },
});

Deno.test({
  name:
    "resolve() falls back to GET when HEAD is refused (405) or answers without a digest, and gets the same descriptor",
  ignore,
  async fn() {
    const { plain } = await registries();
    const client = clientFor(plain);
    const direct = await client.resolve(ref("plain", "single"));
    const isManifest = (req: Request) => new URL(req.url).pathname.includes("/manifests/");
    const cases: Array<[string, ProxyOptions]> = [
      ["405", { refuse: (req) => req.method === "HEAD" && isManifest(req) ? 405 : undefined }],
      ["no digest", {
        dropHeaders: (req) =>
          req.method === "HEAD" && isManifest(req) ? ["docker-content-digest"] : [],
      }],
    ];
    for (const [what, options] of cases) {
      await using proxy = startProxy(plain.url, options);
      const resolved = await client.resolve(`${proxy.host}/single:latest`);
      assertEquals(resolved.descriptor, direct.descriptor, what);
      // Without a digest in the answer the manifest is read and kept (after a 405 the GET's
      // headers suffice, as a HEAD's would).
      if (what === "no digest") {
        assert(resolved.manifest !== undefined, "the GET's manifest is kept");
      }
      const seen = proxy.requests.filter((r) => r.path.includes("/manifests/"));
      assertEquals(seen.map((r) => r.method), ["HEAD", "GET"], what);
    }
    client.close();
  },
});

Deno.test({
  name: "fetchImage() downloads as many layers at once as its concurrency allows",
  ignore,
  async fn() {
    const { plain } = await registries();
    const reader = clientFor(plain);
    const reference = parseReference(ref("plain", "layers"));
    const { descriptor } = await reader.resolve(reference);
    const manifest = JSON.parse(
      new TextDecoder().decode(await reader.fetchManifest(reference, descriptor)),
    );
    reader.close();
    const layers = new Set<string>(manifest.layers.map((l: Descriptor) => l.digest));
    assert(layers.size >= 4, "the layers fixture has four layers");
    const isLayer = (req: Request) => layers.has(new URL(req.url).pathname.split("/").pop()!);
    for (const concurrency of [1, 3]) {
      // Every layer's answer stops after one byte and stays open: the pull holds as many
      // downloads as it may run at once, and starts no other.
      await using proxy = startProxy(plain.url, {
        stallAfter: (req) => req.method === "GET" && isLayer(req) ? 1 : undefined,
      });
      await withStore(async (store) => {
        const client = clientFor(plain);
        const abort = new AbortController();
        const pull = fetchImage(client, `${proxy.host}/layers:latest`, {
          store,
          concurrency,
          signal: abort.signal,
        });
        const started = () => proxy.requests.filter((r) => layers.has(r.path.split("/").pop()!));
        const deadline = Date.now() + 10_000;
        while (started().length < concurrency && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 20));
        }
        await new Promise((r) => setTimeout(r, 300)); // time for a download too many to start
        assertEquals(
          started().length,
          concurrency,
          `layers downloading at concurrency ${concurrency}`,
        );
        abort.abort(new Error("test over"));
        await pull.catch(() => {});
        client.close();
      });
    }
  },
});

Deno.test({
  name: "fetchImage() pulls by digest, and a tag plus digest resolves by the digest",
  ignore,
  async fn() {
    const { plain } = await registries();
    await withStore(async (store) => {
      const client = clientFor(plain);
      const { descriptor } = await client.resolve(ref("plain", "layers"));
      const image = await fetchImage(client, `${plain.host}/layers@${descriptor.digest}`, {
        store,
      });
      assertEquals(image.target, descriptor);
      const both = await fetchImage(
        client,
        `${plain.host}/layers:nonexistent-tag@${descriptor.digest}`,
        { store },
      );
      assertEquals(both.target.digest, descriptor.digest);
      assertEquals(both.stats.fetched, 0);
      const missing = "sha256:" + "0".repeat(64);
      await assertRejects(
        () => fetchImage(client, `${plain.host}/layers@${missing}`, { store }),
        NotFound,
        missing,
      );
      client.close();
    });
  },
});

Deno.test({
  name: "fetchImage() names unknown repositories and tags, and unreachable registries",
  ignore,
  async fn() {
    const { plain } = await registries();
    await withStore(async (store) => {
      const client = clientFor(plain);
      const e1 = await assertRejects(
        () => fetchImage(client, `${plain.host}/no/such/repo`, { store }),
        NotFound,
      );
      assertStringIncludes(e1.message, `${plain.host}/no/such/repo:latest`);
      const e2 = await assertRejects(
        () => fetchImage(client, `${plain.host}/single:no-such-tag`, { store }),
        NotFound,
      );
      assertStringIncludes(e2.message, "single:no-such-tag");
      // A port nothing listens on.
      const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (l.addr as Deno.NetAddr).port;
      l.close();
      const e3 = await assertRejects(
        () => fetchImage(client, `127.0.0.1:${port}/x`, { store }),
        Unavailable,
      );
      assertStringIncludes(e3.message, `127.0.0.1:${port}`);
      client.close();
    });
  },
});

Deno.test({
  name: "fetchImage() streams each layer to onLayer while it downloads, and reports progress",
  ignore,
  async fn() {
    const { plain } = await registries();
    await withStore(async (store) => {
      const client = clientFor(plain);
      const consumed = new Map<string, Promise<string>>();
      const reports: TransferProgress[] = [];
      const image = await fetchImage(client, ref("plain", "layers"), {
        store,
        concurrency: 2,
        teeBufferBytes: 4096,
        onLayer: (layer, stream) =>
          consumed.set(layer.digest, text(decompressLayer(layer.mediaType, stream))),
        onProgress: (p) => reports.push(p),
      });
      const layers = image.manifests[0]!.layers;
      assertEquals([...consumed.keys()].sort(), layers.map((l) => l.digest).sort());
      const stored = await layerTexts(store, image);
      for (const [i, l] of layers.entries()) assertEquals(await consumed.get(l.digest), stored[i]);
      const last = reports[reports.length - 1]!;
      assert(last.finished);
      assertEquals(last.total, layers.reduce((s, l) => s + l.size, 0));
      assertEquals(last.done, last.total);
      assert(last.blobs.every((b) => b.status === "done"));
      assert(reports.some((r) => r.blobs.some((b) => b.status === "downloading")));

      // Pulled again: nothing is fetched, layers come from the store.
      const again = new Map<string, Promise<string>>();
      const second = await fetchImage(client, ref("plain", "layers"), {
        store,
        onLayer: (layer, stream) =>
          again.set(layer.digest, text(decompressLayer(layer.mediaType, stream))),
      });
      assertEquals(second.stats.fetched, 0);
      assertEquals(second.stats.bytes, 0);
      for (const [i, l] of layers.entries()) assertEquals(await again.get(l.digest), stored[i]);
      client.close();
    });
  },
});

Deno.test({
  name:
    "fetchImage() hands each layer to onLayerChunks in its own reused buffers, ending once it is committed",
  ignore,
  async fn() {
    const { plain } = await registries();
    await withStore(async (store) => {
      const client = clientFor(plain);
      const consumed = new Map<string, Promise<string>>();
      const read = async (layer: Descriptor, chunks: AsyncIterable<Uint8Array>) => {
        const parts: string[] = [];
        const d = new TextDecoder("latin1");
        for await (const c of decompressChunks(chunks, compressionOf(layer.mediaType))) {
          parts.push(d.decode(c, { stream: true }));
          await new Promise((r) => setTimeout(r, 0)); // a slow consumer: the download waits
        }
        // The stream ends only once the blob is verified and committed.
        assertEquals((await store.info(layer.digest)).size, layer.size);
        return parts.join("");
      };
      const image = await fetchImage(client, ref("plain", "layers"), {
        store,
        concurrency: 2,
        teeBufferBytes: 4096,
        onLayerChunks: (layer, chunks) => consumed.set(layer.digest, read(layer, chunks)),
      });
      const layers = image.manifests[0]!.layers;
      assertEquals([...consumed.keys()].sort(), layers.map((l) => l.digest).sort());
      const stored = await layerTexts(store, image);
      for (const [i, l] of layers.entries()) assertEquals(await consumed.get(l.digest), stored[i]);

      // Let go at once: the downloads go on into the store. Pulled again: read from the store.
      await withStore(async (other) => {
        await fetchImage(client, ref("plain", "layers"), {
          store: other,
          onLayerChunks: (_, chunks) => chunks.cancel(),
        });
        await assertComplete(other, image);
      });
      const again = new Map<string, Promise<string>>();
      await fetchImage(client, ref("plain", "layers"), {
        store,
        onLayerChunks: (layer, chunks) => again.set(layer.digest, read(layer, chunks)),
      });
      for (const [i, l] of layers.entries()) assertEquals(await again.get(l.digest), stored[i]);
      client.close();
    });
  },
});

Deno.test({
  name:
    "fetchImage() fails with a digest error on a blob tampered with in the registry and commits nothing of it",
  ignore,
  async fn() {
    await using reg = await startRegistry();
    const reference = await pushFixture(reg, "layers", { repo: "tampered" });
    await withStore(async (store) => {
      const client = clientFor(reg);
      const { descriptor } = await client.resolve(reference);
      const manifest = JSON.parse(
        await (await fetch(`${reg.url}/v2/tampered/manifests/${descriptor.digest}`, {
          headers: { accept: descriptor.mediaType },
        })).text(),
      );
      const victim = manifest.layers[1] as Descriptor;
      // Same size, one byte changed.
      const path = reg.blobPath(victim.digest);
      const data = await Deno.readFile(path);
      data[data.length >> 1] = data[data.length >> 1]! ^ 0xff;
      await Deno.writeFile(path, data);
      const err = await assertRejects(
        () => fetchImage(client, reference, { store }),
        InvalidArgument,
        "digest mismatch",
      );
      assertStringIncludes(err.message, victim.digest);
      assertStringIncludes(err.message, digestOf(data));
      await assertRejects(() => store.info(victim.digest), NotFound);
      await assertRejects(() => store.info(descriptor.digest), NotFound);
      assertEquals((await store.listIngests()).filter((i) => i.expected === victim.digest), []);
      client.close();
    });
  },
});

Deno.test({
  name: "fetchImage() pulls a large layer and verifies it",
  ignore,
  async fn() {
    await using reg = await startRegistry();
    const reference = await pushFixture(reg, "large");
    await withStore(async (store) => {
      const client = clientFor(reg);
      const image = await fetchImage(client, reference, { store });
      await assertComplete(store, image);
      const sizes = image.manifests[0]!.layers.map((l) => l.size);
      assert(
        sizes.some((s) => s > LARGE_FILE_SIZE),
        `a layer over ${LARGE_FILE_SIZE} bytes: ${sizes}`,
      );
      client.close();
    });
  },
});

Deno.test({
  name: "the shared registries of this file stop",
  ignore,
  async fn() {
    if (!shared) return;
    await shared.plain.stop();
    await shared.basic.stop();
    shared = undefined;
  },
});

Deno.test({
  name:
    "fetchImage(): an abort ends the downloads of layers whose onLayerChunks consumer has stopped reading",
  ignore,
  async fn() {
    await using reg = await startRegistry();
    const reference = await pushFixture(reg, "large", { repo: "held" });
    await withStore(async (store) => {
      const client = clientFor(reg);
      const abort = new AbortController();
      const held: AsyncIterable<Uint8Array>[] = [];
      let progress: TransferProgress | undefined;
      const pull = fetchImage(client, reference, {
        store,
        teeBufferBytes: 4096,
        // Taken and never read: each download fills its buffers and waits for the consumer.
        onLayerChunks: (_, chunks) => void held.push(chunks),
        onProgress: (p) => progress = p,
        signal: abort.signal,
      });
      const large = () => progress?.blobs.find((b) => b.total >= LARGE_FILE_SIZE);
      while (!large() || large()!.done === 0) await new Promise((r) => setTimeout(r, 20));
      const waited = large()!.done;
      await new Promise((r) => setTimeout(r, 300));
      assertEquals(large()!.done, waited, "the download waits for its consumer");
      const reason = new Error("given up");
      abort.abort(reason);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const outcome = await Promise.race([
        pull.then(() => "fetched", (err) => err),
        new Promise((r) => timer = setTimeout(() => r("hung"), 30_000)),
      ]);
      clearTimeout(timer);
      assertEquals(outcome, reason, "the fetch ends with the abort's reason");
      client.close();
    });
  },
});
