/**
 * Push round trips against a real registry, checked with skopeo (which
 * reads the manifests back and verifies every blob it copies).
 */
import { join } from "node:path";
import { InvalidArgument, NotFound, Unauthenticated } from "../errors.ts";
import { LocalContentStore } from "../images/content/local.ts";
import { RegistryClient } from "../images/registry/client.ts";
import { type FetchedImage, fetchImage } from "../images/registry/fetch.ts";
import { pushImage } from "../images/registry/push.ts";
import { parseReference } from "../images/registry/reference.ts";
import { MEDIA_TYPES } from "../images/types.ts";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "./assert.ts";
import { copyToLayout, inspectRaw, pushFixture } from "./fixtures/mod.ts";
import { requires, withTempDir } from "./harness.ts";
import { startProxy, startRegistry, type TestRegistry } from "./registry.ts";

const ignore = requires("registry", "skopeo", "umoci", "busybox");

function client(reg: TestRegistry): RegistryClient {
  const creds = reg.credentials;
  return new RegistryClient({ plainHttp: true, ...(creds ? { credentials: () => creds } : {}) });
}

/**
 * Runs `fn` with a new content store in a temporary directory, `source`
 * fetched into it by a client of `reg`; closes the client and removes the
 * directory afterwards.
 */
async function withFetched(
  reg: TestRegistry,
  source: string,
  fn: (
    env: { dir: string; store: LocalContentStore; c: RegistryClient; image: FetchedImage },
  ) => Promise<void>,
): Promise<void> {
  await withTempDir(async (dir) => {
    const store = await LocalContentStore.open(join(dir, "content"));
    const c = client(reg);
    try {
      await fn({ dir, store, c, image: await fetchImage(c, source, { store }) });
    } finally {
      c.close();
    }
  });
}

async function manifestBytes(store: LocalContentStore, digest: string): Promise<string> {
  return new TextDecoder().decode(await store.readBytes(digest));
}

Deno.test({
  name: "pushImage() uploads an image that skopeo reads back byte for byte, then skips what exists",
  ignore,
  async fn() {
    await using reg = await startRegistry();
    const source = await pushFixture(reg, "layers");
    await withFetched(reg, source, async ({ dir, store, c, image }) => {
      const pushed = await pushImage(c, `${reg.host}/pushed:v1`, image.target, {
        store,
        tags: ["v2"],
        mount: false,
      });
      assertEquals([pushed.uploaded, pushed.existing, pushed.mounted], [5, 0, 0]);
      assertEquals(pushed.manifests, 2);
      const want = await manifestBytes(store, image.target.digest);
      assertEquals(await inspectRaw(reg, `${reg.host}/pushed:v1`), want);
      assertEquals(await inspectRaw(reg, `${reg.host}/pushed:v2`), want);
      await copyToLayout(reg, `${reg.host}/pushed:v1`, join(dir, "copied"));

      // Pushed again: every blob is there already.
      const before = reg.requests().length;
      const again = await pushImage(c, `${reg.host}/pushed:v1`, image.target, { store });
      assertEquals([again.uploaded, again.existing, again.mounted], [0, 5, 0]);
      const methods = reg.requests().slice(before).map((r) => r.method);
      assert(!methods.includes("POST") && !methods.includes("PATCH"), methods.join(" "));
    });
  },
});

Deno.test({
  name: "pushImage() uploads in chunks and mounts blobs across repositories",
  ignore,
  async fn() {
    await using reg = await startRegistry();
    const source = await pushFixture(reg, "single");
    await withFetched(reg, source, async ({ dir, store, c, image }) => {
      const layer = image.manifests[0]!.layers[0]!;

      const before = reg.requests().length;
      const chunked = await pushImage(c, `${reg.host}/chunked:latest`, image.target, {
        store,
        chunkSize: 64 << 10,
        mount: false,
      });
      assertEquals(chunked.uploaded, 2);
      const patches = reg.requests().slice(before).filter((r) => r.method === "PATCH");
      assertEquals(patches.length, Math.ceil(layer.size / (64 << 10)));
      assertEquals(
        await inspectRaw(reg, `${reg.host}/chunked:latest`),
        await manifestBytes(store, image.target.digest),
      );
      await copyToLayout(reg, `${reg.host}/chunked:latest`, join(dir, "copied"));

      // The blobs carry their source repository: pushing elsewhere on the same registry mounts them.
      const mounted = await pushImage(c, `${reg.host}/elsewhere:latest`, image.target, { store });
      assertEquals([mounted.uploaded, mounted.mounted], [0, 2]);
      await copyToLayout(reg, `${reg.host}/elsewhere:latest`, join(dir, "copied2"));
    });
  },
});

Deno.test({
  name:
    "pushImage() sends blobs up to 4 MiB with their Content-Length and streams larger ones; the User-Agent is tug/<version>",
  ignore,
  async fn() {
    await using reg = await startRegistry();
    const source = await pushFixture(reg, "large");
    await using proxy = startProxy(reg.url);
    await withFetched(reg, source, async ({ store, c, image }) => {
      const pushed = await pushImage(c, `${proxy.host}/copy:latest`, image.target, {
        store,
        mount: false,
      });
      const blobs = [image.manifests[0]!.config, ...image.manifests[0]!.layers];
      assertEquals(pushed.uploaded, blobs.length);
      const puts = proxy.requests.filter((r) => r.method === "PUT" && r.path.includes("/blobs/"));
      assertEquals(puts.length, blobs.length);
      for (const blob of blobs) {
        const put = puts.find((r) => r.path.includes(`digest=${encodeURIComponent(blob.digest)}`));
        assert(put, `a PUT of ${blob.digest}`);
        if (blob.size <= 4 << 20) {
          assertEquals(put.headers["content-length"], String(blob.size), blob.digest);
          assertEquals(put.headers["transfer-encoding"], undefined, blob.digest);
        } else {
          assertEquals(put.headers["transfer-encoding"], "chunked", blob.digest);
        }
      }
      assert(blobs.some((b) => b.size > 4 << 20), "the fixture has a layer over 4 MiB");
      for (const r of proxy.requests) assertStringIncludes(r.headers["user-agent"] ?? "", "tug/");
      assertEquals(
        await inspectRaw(reg, `${reg.host}/copy:latest`),
        await manifestBytes(store, image.target.digest),
      );
    });
  },
});

Deno.test({
  name: "pushImage() pushes a multi-platform index and a Docker schema 2 image unchanged",
  ignore,
  async fn() {
    await using reg = await startRegistry();
    const multi = await pushFixture(reg, "multi");
    const docker = await pushFixture(reg, "single", { format: "v2s2", repo: "docker" });
    await withTempDir(async (dir) => {
      const store = await LocalContentStore.open(join(dir, "content"));
      const c = client(reg);
      const all = await fetchImage(c, multi, { store, platform: "all" });
      const pushed = await pushImage(c, `${reg.host}/multi-copy:latest`, all.target, {
        store,
        mount: false,
      });
      assertEquals(pushed.manifests, 4);
      assertEquals(
        await inspectRaw(reg, `${reg.host}/multi-copy:latest`),
        await manifestBytes(store, all.target.digest),
      );
      await copyToLayout(reg, `${reg.host}/multi-copy:latest`, join(dir, "copied"), { all: true });

      const d = await fetchImage(c, docker, { store });
      await pushImage(c, `${reg.host}/docker-copy:1`, d.target, { store });
      const raw = await inspectRaw(reg, `${reg.host}/docker-copy:1`);
      assertEquals(JSON.parse(raw).mediaType, MEDIA_TYPES.dockerManifest);
      assertEquals(raw, await manifestBytes(store, d.target.digest));

      // An index whose other platforms were not pulled cannot be pushed whole.
      const one = await LocalContentStore.open(join(dir, "one"));
      const single = await fetchImage(c, multi, { store: one });
      const err = await assertRejects(
        () => pushImage(c, `${reg.host}/partial:latest`, single.target, { store: one }),
        NotFound,
      );
      assertStringIncludes(err.message, "not in the content store");
      c.close();
    });
  },
});

Deno.test({
  name: "pushImage() authenticates with basic credentials and is refused without them",
  ignore,
  async fn() {
    await using reg = await startRegistry({ auth: "htpasswd" });
    const source = await pushFixture(reg, "single");
    await withFetched(reg, source, async ({ store, c, image }) => {
      const anonymous = new RegistryClient({ plainHttp: true });
      const err = await assertRejects(
        () => pushImage(anonymous, `${reg.host}/mine:1`, image.target, { store }),
        Unauthenticated,
      );
      assertStringIncludes(err.message, reg.host);
      anonymous.close();
      await pushImage(c, `${reg.host}/mine:1`, image.target, { store });
      assertEquals(
        await inspectRaw(reg, `${reg.host}/mine:1`),
        await manifestBytes(store, image.target.digest),
      );
    });
  },
});

Deno.test({
  name:
    "pushImage() with basic credentials through a new client: the blobs' first requests, sent before it knows the scheme, are retried with them",
  ignore,
  async fn() {
    await using reg = await startRegistry({ auth: "htpasswd" });
    const source = await pushFixture(reg, "layers");
    await withFetched(reg, source, async ({ store, image }) => {
      // A client that has sent nothing yet: the push's concurrent HEADs all go out anonymously.
      const fresh = client(reg);
      try {
        const pushed = await pushImage(fresh, `${reg.host}/fresh:1`, image.target, {
          store,
          mount: false,
        });
        assertEquals(pushed.uploaded, 5);
      } finally {
        fresh.close();
      }
      assertEquals(
        await inspectRaw(reg, `${reg.host}/fresh:1`),
        await manifestBytes(store, image.target.digest),
      );
    });
  },
});

Deno.test({
  name:
    "a manifest naming a blob the registry lacks is refused as such (400 MANIFEST_BLOB_UNKNOWN), not reported as not found",
  ignore,
  async fn() {
    await using reg = await startRegistry();
    const c = client(reg);
    const missing = `sha256:${"0".repeat(64)}`;
    const manifest = new TextEncoder().encode(JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      config: { mediaType: MEDIA_TYPES.ociConfig, digest: missing, size: 2 },
      layers: [],
    }));
    const err = await assertRejects(
      () =>
        c.putManifest(parseReference(`${reg.host}/broken:1`), "1", {
          mediaType: MEDIA_TYPES.ociManifest,
          bytes: manifest,
        }),
      InvalidArgument,
    );
    assertStringIncludes(err.message, "400");
    assertStringIncludes(err.message, "MANIFEST_BLOB_UNKNOWN");
    c.close();
  },
});

Deno.test({
  name:
    "two pushes of one image to one repository at once through one client upload or mount each blob once, and both succeed",
  ignore,
  async fn() {
    await using reg = await startRegistry();
    const source = await pushFixture(reg, "layers");
    await withFetched(reg, source, async ({ store, c, image }) => {
      for (let round = 0; round < 5; round++) {
        const target = `${reg.host}/twice-${round}:latest`;
        const before = reg.requests().length;
        const results = await Promise.all([
          pushImage(c, target, image.target, { store }),
          pushImage(c, target, image.target, { store }),
        ]);
        for (const r of results) assertEquals(r.target, image.target);
        const starts = reg.requests().slice(before).filter((r) =>
          r.method === "POST" && r.uri.includes(`/twice-${round}/blobs/uploads/`)
        );
        const blobs = image.manifests[0]!.layers.length + 1;
        assertEquals(starts.length, blobs, `round ${round}: one mount or upload per blob`);
        assertEquals(
          await inspectRaw(reg, target),
          await manifestBytes(store, image.target.digest),
        );
      }
    });
  },
});
