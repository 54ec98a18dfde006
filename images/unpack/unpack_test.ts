import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { join } from "node:path";
import { FailedPrecondition, InvalidArgument, NotImplemented } from "../../errors.ts";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "../../tests/assert.ts";
import { type Feature, mountsUnder, requires, run, withTempDir } from "../../tests/harness.ts";
import { mountAll, unmountAll } from "../snapshots/mount.ts";
import { openNativeSnapshotter } from "../snapshots/native.ts";
import { openOverlaySnapshotter } from "../snapshots/overlay.ts";
import type { Snapshotter } from "../types.ts";
import { applyLayerToMounts, chainIds, unpackLayer } from "./unpack.ts";
import {
  describeTree,
  fileChunks,
  gnuTar,
  ociLayout,
  pythonTar,
  richTree,
  type TarEntry,
} from "./testing.ts";

const SNAPSHOTTERS: {
  name: string;
  open: (root: string) => Promise<Snapshotter>;
  needs: Feature[];
}[] = [
  { name: "overlayfs", open: (root) => openOverlaySnapshotter(root), needs: ["root", "overlayfs"] },
  { name: "native", open: (root) => openNativeSnapshotter(root), needs: ["root"] },
];

/** `bytes` as a stream of 64 KiB chunks. */
async function* chunks(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  for (let i = 0; i < bytes.length; i += 65536) {
    yield await Promise.resolve(bytes.subarray(i, i + 65536));
  }
}

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

async function umoci(...args: string[]): Promise<void> {
  const r = await run("umoci", args);
  if (r.code !== 0) throw new Error(`umoci ${args.join(" ")} failed: ${r.stderr}`);
}

/** Unpacks layer tars in order into `sn`; returns the chain ID of the top one. */
async function unpackAll(sn: Snapshotter, tars: string[]): Promise<string> {
  const diffIds = tars.map((t) => sha256(Deno.readFileSync(t)));
  const ids = chainIds(diffIds);
  for (const [i, tar] of tars.entries()) {
    const result = await unpackLayer(sn, ids[i]!, fileChunks(tar), {
      ...(i > 0 ? { parent: ids[i - 1]! } : {}),
      expectedDiffId: diffIds[i]!,
    });
    assertEquals(result.diffId, diffIds[i]);
  }
  return ids[ids.length - 1]!;
}

/** Mounts a read-only view of `parent`, passes the tree to `fn`, and cleans up. */
async function withView<T>(
  sn: Snapshotter,
  parent: string,
  dir: string,
  fn: (tree: string) => Promise<T>,
): Promise<T> {
  const target = join(dir, "view");
  await Deno.mkdir(target);
  mountAll(await sn.view("view", parent), target);
  try {
    return await fn(target);
  } finally {
    unmountAll(target);
    await sn.remove("view");
  }
}

/** Snapshot directories present under a snapshotter's root. */
function snapshotDirs(root: string): string[] {
  return [...Deno.readDirSync(join(root, "snapshots"))].map((e) => e.name).sort();
}

/** Three layers with deletions, opaque directories and replaced nodes, made by GNU tar and Python's tarfile. */
async function threeLayers(dir: string): Promise<string[]> {
  const src = join(dir, "l1-src");
  await Deno.mkdir(src);
  await richTree(src);
  const l1 = join(dir, "l1.tar");
  await gnuTar("--xattrs", "--xattrs-include=*", "--format=posix", "-cf", l1, "-C", src, ".");
  const l2 = await pythonTar(join(dir, "l2.tar"), [
    { name: ".wh.null" },
    { name: "etc/", type: "dir" },
    { name: "etc/hello", data: "changed\n", mtime: 1600000000 },
    { name: "etc/.wh.absolute-link" },
    { name: "home/", type: "dir" },
    { name: "home/.wh..wh..opq" },
    { name: "home/other/", type: "dir", uid: 1001, gid: 1001, mode: 0o750 },
    { name: "home/other/file", data: "other", uid: 1001 },
    { name: ".wh.owned" },
    { name: "owned/", type: "dir", mode: 0o700 },
    { name: "owned/inside", data: "inside" },
    { name: "bin/", type: "dir" },
    { name: "bin/ls", data: "#!/bin/sh\nexec busybox ls\n", mode: 0o755 },
    { name: "tmp/newdir/", type: "dir", uid: 1000 },
  ]);
  const l3 = await pythonTar(join(dir, "l3.tar"), [
    { name: "home/other/.wh.file" },
    { name: "etc/new/sub/file", data: "implicit parents" },
    { name: ".wh.tmp" },
    { name: ".wh.fifo" },
    { name: "fifo/", type: "dir" },
    { name: "fifo/now-a-dir", data: "" },
    { name: "owned/.wh..wh..opq" },
    { name: "owned/second", data: "second" },
    {
      name: "capped",
      data: "capped again",
      xattrs: {
        "security.capability": new Uint8Array([
          1,
          0,
          0,
          2,
          0,
          4,
          0,
          0,
          0,
          0,
          0,
          0,
          0,
          0,
          0,
          0,
          0,
          0,
          0,
          0,
        ]),
      },
    },
  ]);
  return [l1, l2, l3];
}

for (const s of SNAPSHOTTERS) {
  Deno.test({
    name:
      `unpackLayer() stacks three layers with whiteouts and opaque directories as umoci does (${s.name})`,
    ignore: requires(...s.needs, "umoci"),
    fn: () =>
      withTempDir(async (dir) => {
        const tars = await threeLayers(dir);
        const layout = join(dir, "layout");
        await ociLayout(layout, tars, "three");
        await umoci("unpack", "--image", `${layout}:three`, join(dir, "bundle"));
        const expected = describeTree(join(dir, "bundle", "rootfs"));

        const sn = await s.open(join(dir, "root"));
        try {
          const top = await unpackAll(sn, tars);
          await withView(sn, top, dir, (tree) => {
            assertEquals(describeTree(tree), expected);
            return Promise.resolve();
          });
          // Only the committed layers stay: no active snapshot, no leftover directory.
          const names: string[] = [];
          await sn.walk((i) => {
            names.push(`${i.kind}`);
          });
          assertEquals(names, ["committed", "committed", "committed"]);
          assertEquals(snapshotDirs(join(dir, "root")).length, 3);
        } finally {
          await sn.close();
        }
        assertEquals(mountsUnder(dir), []);
      }),
  });
}

Deno.test({
  name: "unpackLayer() applies busybox layers made by umoci like umoci unpack does",
  ignore: requires("root", "overlayfs", "umoci", "busybox"),
  fn: () =>
    withTempDir(async (dir) => {
      const layout = join(dir, "layout");
      const bundle = join(dir, "bundle");
      await umoci("init", "--layout", layout);
      await umoci("new", "--image", `${layout}:bb`);
      // Layer 1: busybox and its links; layer 2: deletions and changes, whiteouts written by umoci.
      await umoci("unpack", "--image", `${layout}:bb`, bundle);
      const rootfs = join(bundle, "rootfs");
      for (const d of ["bin", "etc/conf.d", "var/lib/app"]) {
        await Deno.mkdir(join(rootfs, d), { recursive: true });
      }
      await Deno.copyFile("/bin/busybox", join(rootfs, "bin/busybox"));
      for (const applet of ["sh", "ls", "cat"]) {
        await Deno.link(join(rootfs, "bin/busybox"), join(rootfs, `bin/${applet}`));
      }
      await Deno.symlink("/bin/busybox", join(rootfs, "bin/vi"));
      await Deno.writeTextFile(join(rootfs, "etc/conf.d/a"), "a");
      await Deno.writeTextFile(join(rootfs, "etc/conf.d/b"), "b");
      await Deno.writeTextFile(join(rootfs, "var/lib/app/state"), "state");
      await umoci("repack", "--refresh-bundle", "--image", `${layout}:bb`, bundle);
      await Deno.remove(join(rootfs, "etc/conf.d/a"));
      await Deno.remove(join(rootfs, "var/lib/app"), { recursive: true });
      await Deno.remove(join(rootfs, "bin/cat"));
      await Deno.writeTextFile(join(rootfs, "etc/conf.d/b"), "b2");
      await umoci("repack", "--image", `${layout}:bb`, bundle);

      const reference = join(dir, "reference");
      await umoci("unpack", "--image", `${layout}:bb`, reference);
      const expected = describeTree(join(reference, "rootfs"));

      const index = JSON.parse(await Deno.readTextFile(join(layout, "index.json")));
      const blob = (digest: string) =>
        Deno.readFileSync(join(layout, "blobs", ...digest.split(":")));
      const manifest = JSON.parse(new TextDecoder().decode(blob(index.manifests[0].digest)));
      const config = JSON.parse(new TextDecoder().decode(blob(manifest.config.digest)));
      const diffIds: string[] = config.rootfs.diff_ids;
      assertEquals(diffIds.length, 2);
      const ids = chainIds(diffIds);
      const sn = await openOverlaySnapshotter(join(dir, "root"));
      try {
        for (const [i, layer] of (manifest.layers as { digest: string }[]).entries()) {
          const tar = gunzipSync(blob(layer.digest));
          const result = await unpackLayer(sn, ids[i]!, chunks(tar), {
            ...(i > 0 ? { parent: ids[i - 1]! } : {}),
            expectedDiffId: diffIds[i]!,
          });
          assertEquals(result.size, tar.length);
        }
        await withView(sn, ids[1]!, dir, (tree) => {
          assertEquals(describeTree(tree), expected);
          return Promise.resolve();
        });
      } finally {
        await sn.close();
      }
    }),
});

Deno.test({
  name: "unpackLayer() refuses a layer whose diff ID is not the config's and commits nothing",
  ignore: requires("root", "overlayfs"),
  fn: () =>
    withTempDir(async (dir) => {
      const tar = await pythonTar(join(dir, "l.tar"), [{ name: "f", data: "x" }]);
      const sn = await openOverlaySnapshotter(join(dir, "root"));
      try {
        const wrong = `sha256:${"0".repeat(64)}`;
        await assertRejects(
          () => unpackLayer(sn, "sha256:chain", fileChunks(tar), { expectedDiffId: wrong }),
          InvalidArgument,
          wrong,
        );
        let count = 0;
        await sn.walk(() => {
          count++;
        });
        assertEquals(count, 0);
        assertEquals(snapshotDirs(join(dir, "root")), []);
        // The same layer unpacked twice: the second finds it committed and leaves nothing behind.
        const diffId = sha256(Deno.readFileSync(tar));
        await unpackLayer(sn, diffId, fileChunks(tar), { expectedDiffId: diffId });
        await unpackLayer(sn, diffId, fileChunks(tar), { expectedDiffId: diffId });
        assertEquals(snapshotDirs(join(dir, "root")).length, 1);
      } finally {
        await sn.close();
      }
    }),
});

Deno.test("applyLayerToMounts() refuses mounts it cannot write into without mounting", async () => {
  const empty = chunks(new Uint8Array(1024));
  await assertRejects(
    () => applyLayerToMounts([{ type: "bind", source: "/x", options: ["ro", "rbind"] }], empty),
    FailedPrecondition,
    "read-only",
  );
  await assertRejects(
    () =>
      applyLayerToMounts(
        [{ type: "overlay", source: "overlay", options: ["lowerdir=/a:/b"] }],
        empty,
      ),
    FailedPrecondition,
    "upper directory",
  );
  await assertRejects(
    () => applyLayerToMounts([{ type: "tmpfs", source: "tmpfs", options: [] }], empty),
    NotImplemented,
    "tmpfs",
  );
  await assertRejects(() => applyLayerToMounts([], empty), NotImplemented, "0 mounts");
});

Deno.test("chainIds() chains diff IDs as the OCI image spec says", async () => {
  const a = `sha256:${"a".repeat(64)}`,
    b = `sha256:${"b".repeat(64)}`,
    c = `sha256:${"c".repeat(64)}`;
  const shell = async (text: string) => {
    const r = await run("sh", ["-c", `printf '%s' "$1" | sha256sum`, "sh", text]);
    return `sha256:${r.stdout.split(" ")[0]}`;
  };
  const ab = await shell(`${a} ${b}`);
  assertEquals(chainIds([a, b, c]), [a, ab, await shell(`${ab} ${c}`)]);
  assertEquals(chainIds([]), []);
});

// ---------------------------------------------------------------------------
// Hostile layers: one test per kind and snapshotter. Each checks that the error
// is an InvalidArgument naming the entry, that nothing outside the snapshot
// changed, and that the half-applied snapshot is gone.

interface Hostile {
  kind: string;
  /** A committed layer below the hostile one (optional). */
  below?: (outside: string) => TarEntry[];
  entries: (outside: string) => TarEntry[];
  /** The entry the error must name. */
  names: string;
  maxSize?: number;
  /** Makes the layer with GNU tar instead (returns its path). */
  gnu?: (dir: string) => Promise<string>;
}

const HOSTILE: Hostile[] = [
  {
    kind: "a name whose .. components escape",
    entries: () => [{ name: "a/../../escape", data: "x" }],
    names: "a/../../escape",
  },
  {
    kind: "a name that starts with ..",
    entries: () => [{ name: "../escape", data: "x" }],
    names: "../escape",
  },
  {
    kind: "an absolute name",
    entries: (o) => [{ name: `${o}/absolute`, data: "x" }],
    names: "/absolute",
  },
  {
    kind: "a write through a symlink the layer planted (to outside)",
    entries: (
      o,
    ) => [{ name: "link", type: "symlink", linkname: o }, { name: "link/evil", data: "x" }],
    names: "link/evil",
  },
  {
    kind: "a write through a symlink the layer planted (to inside)",
    entries: () => [
      { name: "sub/", type: "dir" },
      { name: "inner", type: "symlink", linkname: "sub" },
      { name: "inner/evil", data: "x" },
    ],
    names: "inner/evil",
  },
  {
    kind: "a write through a symlink of a lower layer",
    below: (o) => [{ name: "lib", type: "symlink", linkname: o }],
    entries: () => [{ name: "lib/evil", data: "x" }],
    names: "lib/evil",
  },
  {
    kind: "a hardlink to a path outside with ..",
    entries: () => [{ name: "hl", type: "link", linkname: "../../../../../../etc/passwd" }],
    names: "hl",
  },
  {
    kind: "a hardlink to an absolute path",
    entries: (o) => [{ name: "hl", type: "link", linkname: `${o}/victim` }],
    names: "hl",
  },
  {
    kind: "a hardlink through a symlink",
    entries: (
      o,
    ) => [{ name: "link", type: "symlink", linkname: o }, {
      name: "hl",
      type: "link",
      linkname: "link/victim",
    }],
    names: "hl",
  },
  {
    kind: "a whiteout through a symlink",
    entries: (o) => [{ name: "link", type: "symlink", linkname: o }, { name: "link/.wh.victim" }],
    names: "link/.wh.victim",
  },
  {
    kind: "an opaque marker through a symlink",
    entries: (o) => [{ name: "link", type: "symlink", linkname: o }, { name: "link/.wh..wh..opq" }],
    names: "link/.wh..wh..opq",
  },
  {
    kind: "a layer larger than the size limit",
    entries: () => [{ name: "small", data: "x" }, { name: "big", data: new Uint8Array(1 << 20) }],
    names: "big",
    maxSize: 256 << 10,
  },
  {
    kind: "a GNU sparse file",
    entries: () => [],
    names: "sparse",
    gnu: async (dir) => {
      const src = join(dir, "sparse-src");
      await Deno.mkdir(src);
      using f = await Deno.create(join(src, "sparse"));
      await f.truncate(8 << 20);
      await f.seek(4 << 20, Deno.SeekMode.Start);
      await f.write(new Uint8Array([1]));
      const tar = join(dir, "sparse.tar");
      await gnuTar("--sparse", "--format=posix", "-cf", tar, "-C", src, "sparse");
      return tar;
    },
  },
];

for (const s of SNAPSHOTTERS) {
  for (const h of HOSTILE) {
    Deno.test({
      name: `unpackLayer() refuses ${h.kind} and removes the snapshot (${s.name})`,
      ignore: requires(...s.needs),
      fn: () =>
        withTempDir(async (dir) => {
          const outside = join(dir, "outside");
          await Deno.mkdir(outside);
          await Deno.writeTextFile(join(outside, "victim"), "victim");
          const root = join(dir, "root");
          const sn = await s.open(root);
          try {
            let parent: string | undefined;
            if (h.below) {
              const tar = await pythonTar(join(dir, "below.tar"), h.below(outside));
              parent = sha256(Deno.readFileSync(tar));
              await unpackLayer(sn, parent, fileChunks(tar));
            }
            const before = snapshotDirs(root);
            const outsideBefore = describeTree(outside);
            const tar = h.gnu
              ? await h.gnu(dir)
              : await pythonTar(join(dir, "hostile.tar"), h.entries(outside));
            const err = await assertRejects(
              () =>
                unpackLayer(sn, "sha256:hostile", fileChunks(tar, 64 << 10), {
                  ...(parent ? { parent } : {}),
                  ...(h.maxSize ? { maxSize: h.maxSize } : {}),
                }),
              InvalidArgument,
            );
            assertStringIncludes(err.message, h.names);
            // Nothing outside changed, nothing half-applied stayed.
            assertEquals(describeTree(outside), outsideBefore);
            assertEquals(snapshotDirs(root), before);
            const kinds: string[] = [];
            await sn.walk((i) => {
              kinds.push(i.kind);
            });
            assertEquals(kinds, parent ? ["committed"] : []);
            assert(
              !(await Deno.lstat(join(dir, "escape")).then(() => true, () => false)),
              "nothing escaped",
            );
          } finally {
            await sn.close();
          }
        }),
    });
  }
}
