import { join } from "node:path";
import { InvalidArgument } from "../../errors.ts";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "../../tests/assert.ts";
import { requires, run } from "../../tests/harness.ts";
import { LocalContentStore } from "../content/local.ts";
import { type ContentStore, type Descriptor, MEDIA_TYPES } from "../types.ts";
import {
  buildFixtures,
  type Fixtures,
  layoutEntries,
  type RawEntry,
  writeTar,
} from "./_test_fixtures.ts";
import { importArchive, type ImportResult } from "./mod.ts";

const ignore = requires("umoci", "skopeo", "busybox");

let fixtures: Promise<Fixtures> | undefined;
function getFixtures(): Promise<Fixtures> {
  fixtures ??= buildFixtures();
  return fixtures;
}
globalThis.addEventListener("unload", () => {
  fixtures?.then((f) => Deno.removeSync(f.dir, { recursive: true })).catch(() => {});
});

async function withStore(
  fn: (store: LocalContentStore, dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tug-import-" });
  try {
    await fn(await LocalContentStore.open(join(dir, "content"), { sync: false }), dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function importFile(path: string, store: ContentStore, name?: string): Promise<ImportResult> {
  const file = await Deno.open(path);
  return await importArchive(file.readable, { content: store, ...(name ? { name } : {}) });
}

async function blobs(store: ContentStore): Promise<string[]> {
  const out: string[] = [];
  for await (const info of store.list()) out.push(info.digest);
  return out.sort();
}

async function layoutTarget(layout: string): Promise<Descriptor> {
  const index = JSON.parse(await Deno.readTextFile(join(layout, "index.json")));
  return index.manifests[0];
}

async function readJson(store: ContentStore, digest: string) {
  return JSON.parse(new TextDecoder().decode(await store.readBytes(digest)));
}

Deno.test({
  name:
    "importArchive() reads skopeo's oci-archive and names the image from its ref name annotation",
  ignore,
  fn: () =>
    withStore(async (store) => {
      const f = await getFixtures();
      const result = await importFile(f.ociArchive, store);
      const target = await layoutTarget(f.layout);
      assertEquals(result.format, "oci");
      assertEquals(result.images.map((i) => i.name), ["docker.io/library/busybox:latest"]);
      assertEquals(result.images[0]!.target.digest, target.digest);
      const manifest = await readJson(store, target.digest);
      assertEquals(
        await blobs(store),
        [target.digest, manifest.config.digest, ...manifest.layers.map((l: Descriptor) => l.digest)]
          .sort(),
      );
      assertEquals(result.added, await blobs(store));
      const labels = (await store.info(target.digest)).labels;
      assertEquals(labels["containerd.io/gc.ref.content.config"], manifest.config.digest);
      assertEquals(labels["containerd.io/gc.ref.content.l.1"], manifest.layers[1].digest);
    }),
});

Deno.test({
  name:
    "importArchive() turns skopeo's docker-archive into an OCI manifest of uncompressed layers checked against the diff IDs",
  ignore,
  fn: () =>
    withStore(async (store) => {
      const f = await getFixtures();
      const result = await importFile(f.dockerArchive, store);
      assertEquals(result.format, "docker");
      assertEquals(result.images.map((i) => i.name), ["docker.io/library/busybox:latest"]);
      const target = result.images[0]!.target;
      assertEquals(target.mediaType, MEDIA_TYPES.ociManifest);
      const manifest = await readJson(store, target.digest);
      const config = await readJson(store, manifest.config.digest);
      assertEquals(manifest.layers.length, 2);
      assertEquals(manifest.layers.map((l: Descriptor) => l.mediaType), [
        MEDIA_TYPES.ociLayer,
        MEDIA_TYPES.ociLayer,
      ]);
      assertEquals(manifest.layers.map((l: Descriptor) => l.digest), config.rootfs.diff_ids);
      // The original (compressed) config is the same blob: the image is the same image.
      const original = await readJson(store, manifest.config.digest);
      assertEquals(original.config.Cmd, ["/bin/busybox", "true"]);
    }),
});

Deno.test({
  name: "importArchive() reads gzip- and zstd-compressed archives",
  ignore,
  fn: () =>
    withStore(async (store) => {
      const f = await getFixtures();
      const gz = await importFile(f.dockerArchiveGz, store);
      assertEquals(gz.format, "docker");
      const zst = await importFile(f.ociArchiveZst, store);
      assertEquals(zst.format, "oci");
      assertEquals(zst.images[0]!.target.digest, (await layoutTarget(f.layout)).digest);
    }),
});

Deno.test({
  name: "importArchive() needs a name for a layout that only names a tag, and takes the caller's",
  ignore,
  fn: () =>
    withStore(async (store) => {
      const f = await getFixtures();
      await assertRejects(
        () => importFile(f.ociTar, store),
        InvalidArgument,
        "has no name in the archive",
      );
      assertEquals(await blobs(store), []);
      const result = await importFile(f.ociTar, store, "example.com/team/busybox:1.36");
      assertEquals(result.images.map((i) => i.name), ["example.com/team/busybox:1.36"]);
    }),
});

Deno.test({
  name: "importArchive() adds nothing for blobs that are in the store already",
  ignore,
  fn: () =>
    withStore(async (store) => {
      const f = await getFixtures();
      await importFile(f.ociArchive, store);
      const before = await blobs(store);
      const again = await importFile(f.ociArchiveZst, store);
      assertEquals(again.added, []);
      assertEquals(await blobs(store), before);
    }),
});

/** Imports a hand-made tar and checks the error and that nothing stayed behind. */
async function rejects(entries: RawEntry[], includes: string): Promise<void> {
  await withStore(async (store, dir) => {
    const path = join(dir, "broken.tar");
    await writeTar(path, entries);
    const err = await assertRejects(
      () => importFile(path, store, "example.com/x:1"),
      InvalidArgument,
    );
    assertStringIncludes(err.message, includes);
    assert(err.message.startsWith("Import archive: "), err.message);
    assertEquals(await blobs(store), []);
    assertEquals(await store.listIngests(), []);
  });
}

Deno.test({
  name: "importArchive() refuses an archive without index.json or manifest.json",
  ignore,
  fn: async () => {
    const f = await getFixtures();
    const entries = (await layoutEntries(f.layout)).filter((e) => e.name !== "index.json");
    await rejects(entries, "neither index.json");
  },
});

Deno.test({
  name: "importArchive() names a file that is not valid JSON",
  ignore,
  fn: async () => {
    const f = await getFixtures();
    const entries = (await layoutEntries(f.layout)).map((e) =>
      e.name === "index.json" ? { ...e, data: "{not json" } : e
    );
    await rejects(entries, "index.json is not valid JSON");
  },
});

Deno.test({
  name: "importArchive() refuses a blob whose content does not match its name, small or streamed",
  ignore,
  fn: async () => {
    const f = await getFixtures();
    const entries = await layoutEntries(f.layout);
    const big = entries.find((e) =>
      e.name.startsWith("blobs/") && (e.data as Uint8Array).length > 1 << 20
    )!;
    const small = entries.find((e) =>
      e.name.startsWith("blobs/") && (e.data as Uint8Array).length < 1000
    )!;
    for (const victim of [big, small]) {
      const tampered = entries.map((e) => {
        if (e !== victim) return e;
        const data = new Uint8Array(e.data as Uint8Array);
        data[data.length - 1]! ^= 0xff;
        return { ...e, data };
      });
      await rejects(tampered, `digest mismatch in ${victim.name}`);
    }
  },
});

Deno.test({
  name: "importArchive() refuses hostile paths and links out of the archive",
  ignore,
  fn: async () => {
    const f = await getFixtures();
    const entries = await layoutEntries(f.layout);
    await rejects(
      [{ name: "../evil", data: "x" }, ...entries],
      `entry "../evil" has a hostile path`,
    );
    await rejects([{ name: "blobs/../../evil", data: "x" }, ...entries], "hostile path");
    await rejects([{ name: "/etc/passwd", data: "x" }, ...entries], "hostile path (absolute)");
    await rejects([...entries, {
      name: "x/layer.tar",
      type: "symlink",
      linkname: "../../etc/shadow",
    }], "points outside");
    await rejects([...entries, { name: "dev", type: "character-device" }], "character-device");
  },
});

Deno.test({
  name: "importArchive() refuses a manifest whose layer is missing",
  ignore,
  fn: async () => {
    const f = await getFixtures();
    const target = await layoutTarget(f.layout);
    const manifest = JSON.parse(
      await Deno.readTextFile(join(f.layout, "blobs", "sha256", target.digest.slice(7))),
    );
    const layer = manifest.layers[0].digest.slice(7);
    const entries = (await layoutEntries(f.layout)).filter((e) =>
      e.name !== `blobs/sha256/${layer}`
    );
    await rejects(
      entries,
      `refers to sha256:${layer}, which is neither in the archive nor in the store`,
    );
  },
});

Deno.test({
  name: "importArchive() refuses a docker archive whose layer does not match the config's diff ID",
  ignore,
  fn: async () => {
    const f = await getFixtures();
    const dir = await Deno.makeTempDir();
    try {
      await run("tar", ["-C", dir, "-xf", f.dockerArchive]);
      const manifest = JSON.parse(await Deno.readTextFile(join(dir, "manifest.json")));
      const entries: RawEntry[] = [{ name: "manifest.json", data: JSON.stringify(manifest) }];
      entries.push({
        name: manifest[0].Config,
        data: await Deno.readFile(join(dir, manifest[0].Config)),
      });
      for (const [i, l] of (manifest[0].Layers as string[]).entries()) {
        const data = await Deno.readFile(join(dir, l));
        entries.push({ name: l, data: i === 1 ? data.slice(0, data.length - 1024) : data });
      }
      await rejects(entries, "says its diff ID is");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "importArchive() refuses a truncated archive",
  ignore,
  fn: () =>
    withStore(async (store, dir) => {
      const f = await getFixtures();
      const data = await Deno.readFile(f.ociArchive);
      const path = join(dir, "truncated.tar");
      await Deno.writeFile(path, data.slice(0, Math.floor(data.length / 2) + 100));
      const err = await assertRejects(() => importFile(path, store), InvalidArgument);
      assertStringIncludes(err.message, "Import archive");
      assertEquals(await blobs(store), []);
      assertEquals(await store.listIngests(), []);
    }),
});

Deno.test({
  name: "importArchive() refuses what is not a tar at all",
  ignore,
  fn: () =>
    withStore(async (store, dir) => {
      const path = join(dir, "junk.tar");
      await Deno.writeFile(
        path,
        new TextEncoder().encode("this is not a tar archive, just some text ".repeat(40)),
      );
      await assertRejects(() => importFile(path, store), InvalidArgument, "not a readable tar");
    }),
});
