import { join } from "node:path";
import { InvalidArgument, NotFound } from "../../errors.ts";
import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import { requires, run } from "../../tests/harness.ts";
import { digestOf } from "../content/digest.ts";
import { LocalContentStore } from "../content/local.ts";
import { defaultPlatform, formatPlatform, platformMatcher } from "../registry/platforms.ts";
import { type ContentStore, type Descriptor, MEDIA_TYPES } from "../types.ts";
import { buildFixtures, type Fixtures } from "./_test_fixtures.ts";
import { exportArchive, type ExportImage, importArchive } from "./mod.ts";

const ignore = requires("umoci", "skopeo", "busybox");

let fixtures: Promise<Fixtures> | undefined;
function getFixtures(): Promise<Fixtures> {
  fixtures ??= buildFixtures();
  return fixtures;
}
globalThis.addEventListener("unload", () => {
  fixtures?.then((f) => Deno.removeSync(f.dir, { recursive: true })).catch(() => {});
});

interface Env {
  store: LocalContentStore;
  dir: string;
  /** busybox:latest imported from the OCI archive. */
  image: ExportImage;
}

async function withImage(fn: (env: Env) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tug-export-" });
  try {
    const f = await getFixtures();
    const store = await LocalContentStore.open(join(dir, "content"), { sync: false });
    const file = await Deno.open(f.ociArchive);
    const { images } = await importArchive(file.readable, { content: store });
    await fn({ store, dir, image: images[0]! });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function exportTo(path: string, images: ExportImage[], store: ContentStore): Promise<void> {
  const stream = await exportArchive(images, { content: store });
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  await stream.pipeTo(file.writable);
}

async function must(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

async function tarJson(archive: string, member: string) {
  return JSON.parse(await must("tar", ["-xOf", archive, member]));
}

Deno.test({
  name: "exportArchive() writes an OCI layout that skopeo inspects and copies",
  ignore,
  fn: () =>
    withImage(async ({ store, dir, image }) => {
      const path = join(dir, "out.tar");
      await exportTo(path, [image], store);
      const inspect = JSON.parse(await must("skopeo", ["inspect", `oci-archive:${path}`]));
      assertEquals(inspect.Digest, image.target.digest);
      assertEquals(inspect.Layers.length, 2);
      await must("skopeo", ["copy", "-q", `oci-archive:${path}`, `dir:${join(dir, "copy")}`]);
      const manifest = JSON.parse(await Deno.readTextFile(join(dir, "copy", "manifest.json")));
      for (const l of manifest.layers) await Deno.stat(join(dir, "copy", l.digest.slice(7)));
      const index = await tarJson(path, "index.json");
      assertEquals(index.manifests[0].annotations, {
        "io.containerd.image.name": "docker.io/library/busybox:latest",
        "org.opencontainers.image.ref.name": "latest",
      });
      assertEquals(await tarJson(path, "oci-layout"), { imageLayoutVersion: "1.0.0" });
    }),
});

Deno.test({
  name: "exportArchive() writes a layout that umoci lists and unpacks",
  ignore,
  fn: () =>
    withImage(async ({ store, dir, image }) => {
      const path = join(dir, "out.tar");
      await exportTo(path, [image], store);
      const layout = join(dir, "layout");
      await Deno.mkdir(layout);
      await must("tar", ["-C", layout, "-xf", path]);
      assertEquals((await must("umoci", ["ls", "--layout", layout])).trim(), "latest");
      const bundle = join(dir, "bundle");
      await must("umoci", ["unpack", "--image", `${layout}:latest`, bundle]);
      assert((await Deno.stat(join(bundle, "rootfs", "bin", "busybox"))).isFile);
      assertEquals(
        await Deno.readTextFile(join(bundle, "rootfs", "etc", "extra", "hello.txt")),
        "hello from the second layer\n",
      );
    }),
});

Deno.test({
  name: "exportArchive() writes docker's manifest.json, which docker-archive readers follow",
  ignore,
  fn: () =>
    withImage(async ({ store, dir, image }) => {
      const path = join(dir, "out.tar");
      const second = { ...image, name: "example.com/team/bb:v1" };
      await exportTo(path, [image, second], store);
      const manifest = JSON.parse(
        await Deno.readTextFile(
          join(
            await getFixtures().then((f) => f.layout),
            "blobs",
            "sha256",
            image.target.digest.slice(7),
          ),
        ),
      );
      assertEquals(await tarJson(path, "manifest.json"), [{
        Config: `blobs/sha256/${manifest.config.digest.slice(7)}`,
        RepoTags: ["busybox:latest", "example.com/team/bb:v1"],
        Layers: manifest.layers.map((l: Descriptor) => `blobs/sha256/${l.digest.slice(7)}`),
      }]);
      const out = join(dir, "docker-copy");
      await must("skopeo", [
        "copy",
        "-q",
        `docker-archive:${path}:example.com/team/bb:v1`,
        `dir:${out}`,
      ]);
      const copied = JSON.parse(await Deno.readTextFile(join(out, "manifest.json")));
      assertEquals(copied.layers.length, 2);
      assertEquals((await tarJson(path, "index.json")).manifests.length, 2);
    }),
});

Deno.test({
  name: "exportArchive() output imports back to the same images",
  ignore,
  fn: () =>
    withImage(async ({ store, dir, image }) => {
      const path = join(dir, "out.tar");
      const second = { ...image, name: "example.com/team/bb:v1" };
      await exportTo(path, [image, second], store);
      const fresh = await LocalContentStore.open(join(dir, "fresh"), { sync: false });
      const result = await importArchive((await Deno.open(path)).readable, { content: fresh });
      assertEquals(result.images.map((i) => [i.name, i.target.digest]), [
        ["docker.io/library/busybox:latest", image.target.digest],
        ["example.com/team/bb:v1", image.target.digest],
      ]);
    }),
});

/** Writes `value` as JSON into the store; returns its descriptor. */
async function putJson(
  store: ContentStore,
  mediaType: string,
  value: unknown,
): Promise<Descriptor> {
  const data = new TextEncoder().encode(JSON.stringify(value));
  const digest = digestOf(data);
  const w = await store.writer(`put-${digest}`, { expected: digest });
  await w.write(data);
  await w.commit(data.length, digest);
  return { mediaType, digest, size: data.length };
}

Deno.test({
  name:
    "exportArchive() of two different images: docker-archive readers and the import find each by its name",
  ignore,
  fn: () =>
    withImage(async ({ store, dir, image }) => {
      // A second image: the same layers under a config of its own.
      const manifest = JSON.parse(
        new TextDecoder().decode(await store.readBytes(image.target.digest)),
      );
      const config = JSON.parse(
        new TextDecoder().decode(await store.readBytes(manifest.config.digest)),
      );
      config.config = { ...config.config, Env: ["SECOND=1"] };
      const configDesc = await putJson(store, manifest.config.mediaType, config);
      const other: ExportImage = {
        name: "example.com/team/other:v2",
        target: await putJson(store, MEDIA_TYPES.ociManifest, { ...manifest, config: configDesc }),
      };
      const path = join(dir, "two.tar");
      await exportTo(path, [image, other], store);
      const entries = await tarJson(path, "manifest.json");
      assertEquals(entries.map((e: { RepoTags: string[] }) => e.RepoTags), [
        ["busybox:latest"],
        ["example.com/team/other:v2"],
      ]);
      assertEquals(entries[1].Config, `blobs/sha256/${configDesc.digest.slice(7)}`);
      for (
        const [name, env] of [["busybox:latest", undefined], [
          "example.com/team/other:v2",
          "SECOND=1",
        ]]
      ) {
        const inspect = JSON.parse(
          await must("skopeo", ["inspect", "--config", `docker-archive:${path}:${name}`]),
        );
        assertEquals(inspect.config.Env?.[0], env, name);
      }
      const fresh = await LocalContentStore.open(join(dir, "fresh"), { sync: false });
      const result = await importArchive((await Deno.open(path)).readable, { content: fresh });
      assertEquals(result.images.map((i) => [i.name, i.target.digest]), [
        ["docker.io/library/busybox:latest", image.target.digest],
        ["example.com/team/other:v2", other.target.digest],
      ]);
    }),
});

Deno.test({
  name:
    "exportArchive() exports the manifests of an index that are in the store and skips the others",
  ignore,
  fn: () =>
    withImage(async ({ store, dir, image }) => {
      const here = defaultPlatform();
      const absent: Descriptor = {
        mediaType: MEDIA_TYPES.ociManifest,
        digest: digestOf("never pulled"),
        size: 12,
        platform: { os: "linux", architecture: here.architecture === "arm64" ? "amd64" : "arm64" },
      };
      const data = new TextEncoder().encode(JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA_TYPES.ociIndex,
        manifests: [absent, { ...image.target, platform: here }],
      }));
      const digest = digestOf(data);
      const w = await store.writer("index", { expected: digest });
      await w.write(data);
      await w.commit(data.length, digest);
      const index: ExportImage = {
        name: "example.com/multi:1",
        target: { mediaType: MEDIA_TYPES.ociIndex, digest, size: data.length },
      };
      const path = join(dir, "multi.tar");
      await exportTo(path, [index], store);
      const members = (await must("tar", ["-tf", path])).trim().split("\n");
      assert(members.includes(`blobs/sha256/${digest.slice(7)}`));
      assert(members.includes(`blobs/sha256/${image.target.digest.slice(7)}`));
      assert(!members.includes(`blobs/sha256/${absent.digest.slice(7)}`));
      // skopeo reports the index's digest and the layers of this platform's manifest.
      const inspect = JSON.parse(await must("skopeo", ["inspect", `oci-archive:${path}`]));
      assertEquals(inspect.Digest, digest);
      assertEquals(inspect.Layers.length, 2);
      assertEquals((await tarJson(path, "manifest.json"))[0].RepoTags, ["example.com/multi:1"]);
    }),
});

Deno.test({
  name:
    "exportArchive() with platforms refuses an image with no manifest for them, naming the image and the platform",
  ignore,
  fn: () =>
    withImage(async ({ store, image }) => {
      const manifest = JSON.parse(
        new TextDecoder().decode(await store.readBytes(image.target.digest)),
      );
      const config = JSON.parse(
        new TextDecoder().decode(await store.readBytes(manifest.config.digest)),
      );
      const own = { os: config.os, architecture: config.architecture };
      const elsewhere = {
        os: "linux",
        architecture: own.architecture === "arm64" ? "amd64" : "arm64",
      };
      const absent: Descriptor = {
        mediaType: MEDIA_TYPES.ociManifest,
        digest: digestOf("never pulled"),
        size: 12,
        platform: elsewhere,
      };
      const index: ExportImage = {
        name: "example.com/multi:1",
        target: await putJson(store, MEDIA_TYPES.ociIndex, {
          schemaVersion: 2,
          mediaType: MEDIA_TYPES.ociIndex,
          manifests: [absent, { ...image.target, platform: own }],
        }),
      };
      const platforms = platformMatcher(elsewhere);
      for (
        const [img, says] of [
          [index, `image example.com/multi:1 has no manifest for ${formatPlatform(elsewhere)}`],
          [image, `is an image for ${formatPlatform(own)}, not for ${formatPlatform(elsewhere)}`],
        ] as const
      ) {
        const err = await assertRejects(
          () => exportArchive([img], { content: store, platforms }),
          NotFound,
        );
        assert(err.message.includes(says), err.message);
        assert(err.message.includes(img.name), err.message);
      }
      // The platform that is there still exports.
      await exportArchive([index, image], { content: store, platforms: platformMatcher(own) })
        .then((tar) => tar.cancel());
    }),
});

Deno.test({
  name: "exportArchive() names a blob missing from the store before writing anything",
  ignore,
  fn: () =>
    withImage(async ({ store, image }) => {
      const manifest = JSON.parse(
        new TextDecoder().decode(await store.readBytes(image.target.digest)),
      );
      await store.delete(manifest.layers[1].digest);
      await assertRejects(
        () => exportArchive([image], { content: store }),
        NotFound,
        `layer 1 of image docker.io/library/busybox:latest ${
          manifest.layers[1].digest
        } is not in the content store`,
      );
      await assertRejects(() => exportArchive([], { content: store }), InvalidArgument, "no image");
    }),
});
