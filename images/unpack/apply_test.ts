import { createHash } from "node:crypto";
import { join } from "node:path";
import { InvalidArgument, NotFound } from "../../errors.ts";
import { S_IFCHR, S_IFMT } from "../../ffi/constants.ts";
import { libcSyscall } from "../../ffi/libc.ts";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "../../tests/assert.ts";
import { requires, withTempDir } from "../../tests/harness.ts";
import { mountAll, unmountAll } from "../snapshots/mount.ts";
import { applyLayer, normalizeName } from "./apply.ts";
import { CAPS, describeTree, fileChunks, gnuTar, pythonTar, richTree } from "./testing.ts";

const sys = libcSyscall();
const root = requires("root");

function sha256Of(path: string): string {
  return `sha256:${createHash("sha256").update(Deno.readFileSync(path)).digest("hex")}`;
}

for (const format of ["posix", "gnu"] as const) {
  Deno.test({
    name: `applyLayer() unpacks a GNU tar (${format} format) exactly as GNU tar does`,
    ignore: root,
    fn: () =>
      withTempDir(async (dir) => {
        const src = join(dir, "src"), ours = join(dir, "ours"), theirs = join(dir, "theirs");
        for (const d of [src, ours, theirs]) await Deno.mkdir(d);
        await richTree(src);
        const tar = join(dir, "layer.tar");
        const xattrs = format === "posix" ? ["--xattrs", "--xattrs-include=*"] : []; // GNU format has no xattrs
        await gnuTar(...xattrs, `--format=${format}`, "-cf", tar, "-C", src, ".");
        const result = await applyLayer(ours, fileChunks(tar, 65536));
        await gnuTar("--xattrs", "--xattrs-include=*", "-xpf", tar, "-C", theirs);
        assertEquals(result, { diffId: sha256Of(tar), size: Deno.statSync(tar).size });
        const expected = describeTree(theirs);
        assertEquals(describeTree(ours), expected);
        if (format === "posix") {
          // GNU tar keeps xattrs only in PAX records: the capability must have survived byte for byte.
          assertEquals(sys.lgetxattr(join(ours, "capped"), "security.capability"), CAPS);
          assertEquals(
            sys.lgetxattr(join(ours, "etc/hello"), "user.note"),
            new Uint8Array([0x62, 0, 0xff, 0x0a, 0x80]),
          );
          assertEquals(sys.stat(join(ours, "etc/hello")).mtimeNs, 981_173_106_789_000_000n);
        }
        assertEquals(sys.stat(join(ours, "owned")).uid, 3_000_000);
        assertEquals(sys.stat(join(ours, "setuid")).mode & 0o7777, 0o4755);
        assertEquals(sys.stat(join(ours, "bin/sh")).ino, sys.stat(join(ours, "bin/busybox")).ino);
      }),
  });
}

Deno.test({
  name:
    "applyLayer() reads Python tarfile's PAX records: binary xattrs, large ids, fractional times, long links",
  ignore: root,
  fn: () =>
    withTempDir(async (dir) => {
      const tar = await pythonTar(join(dir, "layer.tar"), [
        { name: "usr/", type: "dir" },
        {
          name: `usr/${"c".repeat(150)}`,
          data: "data",
          uid: 5_000_000,
          gid: 6_000_000,
          mtime: 1234567890.5,
          xattrs: { "security.capability": CAPS, "user.x": "plain" },
        },
        { name: "usr/hard", type: "link", linkname: `usr/${"c".repeat(150)}` },
        { name: "usr/soft", type: "symlink", linkname: "s".repeat(120) },
      ]);
      const out = join(dir, "out");
      await Deno.mkdir(out);
      await applyLayer(out, fileChunks(tar, 7));
      const file = join(out, "usr", "c".repeat(150));
      const st = sys.stat(file);
      assertEquals([st.uid, st.gid, st.mtimeNs, st.nlink], [
        5_000_000,
        6_000_000,
        1_234_567_890_500_000_000n,
        2,
      ]);
      assertEquals(sys.lgetxattr(file, "security.capability"), CAPS);
      assertEquals(new TextDecoder().decode(sys.lgetxattr(file, "user.x")), "plain");
      assertEquals(Deno.readLinkSync(join(out, "usr/soft")), "s".repeat(120));
    }),
});

Deno.test({
  name: "applyLayer() gives the same tree and diff ID whatever the stream's chunk sizes",
  ignore: root,
  fn: () =>
    withTempDir(async (dir) => {
      const entries = [];
      for (let i = 0; i < 20; i++) {
        entries.push({ name: `f${i}`, data: "x".repeat(i * 97), xattrs: { "user.i": String(i) } });
      }
      const tar = await pythonTar(join(dir, "layer.tar"), entries);
      const trees: string[][] = [];
      for (const chunk of [3, 511, 4096, 1 << 20]) {
        const out = join(dir, `out-${chunk}`);
        await Deno.mkdir(out);
        assertEquals((await applyLayer(out, fileChunks(tar, chunk))).diffId, sha256Of(tar));
        trees.push(describeTree(out));
      }
      for (const t of trees) assertEquals(t, trees[0]);
    }),
});

/** `bytes` in chunks of `size` from one buffer, overwritten once each chunk has been used. */
async function* reused(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  const buffer = new Uint8Array(size);
  for (let at = 0; at < bytes.length; at += size) {
    const n = Math.min(size, bytes.length - at);
    buffer.set(bytes.subarray(at, at + n));
    yield buffer.subarray(0, n);
    buffer.fill(0x55);
  }
}

Deno.test({
  name:
    "applyLayer() copes with a source that reuses its buffer, over many entries, long names and xattrs",
  ignore: root,
  fn: () =>
    withTempDir(async (dir) => {
      const entries = [];
      for (let i = 0; i < 300; i++) {
        entries.push({
          name: `d${i % 7}/${"n".repeat(i % 150)}f${i}`,
          data: String.fromCharCode(65 + (i % 26)).repeat((i * 7919) % 70_000),
          ...(i % 3 === 0 ? { xattrs: { "user.i": String(i) } } : {}),
        });
      }
      const tar = await pythonTar(join(dir, "layer.tar"), entries);
      const bytes = Deno.readFileSync(tar);
      const reference = join(dir, "reference");
      await Deno.mkdir(reference);
      await applyLayer(reference, fileChunks(tar, 1 << 20));
      for (const size of [1000, 65536, 3 << 20]) {
        const out = join(dir, `out-${size}`);
        await Deno.mkdir(out);
        assertEquals((await applyLayer(out, reused(bytes, size))).diffId, sha256Of(tar));
        assertEquals(describeTree(out), describeTree(reference), `${size}`);
      }
    }),
});

Deno.test({
  name: "applyLayer() replaces what is in the way and merges directories",
  ignore: root,
  fn: () =>
    withTempDir(async (dir) => {
      const out = join(dir, "out");
      await Deno.mkdir(join(out, "d/keep"), { recursive: true });
      await Deno.writeTextFile(join(out, "d/keep/old"), "old");
      await Deno.mkdir(join(out, "was-dir/sub"), { recursive: true });
      await Deno.writeTextFile(join(out, "was-file"), "file");
      await Deno.symlink("/etc", join(out, "was-link"));
      const tar = await pythonTar(join(dir, "layer.tar"), [
        { name: "d/", type: "dir", mode: 0o750, uid: 7 },
        { name: "d/new", data: "new" },
        { name: "was-dir", data: "now a file" },
        { name: "was-file/", type: "dir" },
        { name: "was-link", data: "no longer a link" },
        { name: "twice", data: "first" },
        { name: "twice", data: "second" },
      ]);
      await applyLayer(out, fileChunks(tar));
      assertEquals(await Deno.readTextFile(join(out, "d/keep/old")), "old");
      assertEquals(await Deno.readTextFile(join(out, "d/new")), "new");
      const d = sys.stat(join(out, "d"));
      assertEquals([d.mode & 0o7777, d.uid], [0o750, 7]);
      assertEquals(await Deno.readTextFile(join(out, "was-dir")), "now a file");
      assert(Deno.lstatSync(join(out, "was-file")).isDirectory);
      assertEquals(await Deno.readTextFile(join(out, "was-link")), "no longer a link");
      assertEquals(await Deno.readTextFile(join(out, "twice")), "second");
      assertEquals(await Deno.readTextFile("/etc/hostname").then(() => "untouched"), "untouched");
    }),
});

Deno.test({
  name: "applyLayer() writes overlay whiteouts and opaque directories above lower layers",
  ignore: requires("root", "overlayfs"),
  fn: () =>
    withTempDir(async (dir) => {
      const lower = join(dir, "lower"),
        upper = join(dir, "upper"),
        work = join(dir, "work"),
        merged = join(dir, "merged");
      for (const d of [lower, upper, work, merged]) await Deno.mkdir(d);
      await Deno.mkdir(join(lower, "opq/sub"), { recursive: true });
      await Deno.writeTextFile(join(lower, "opq/x"), "x");
      await Deno.writeTextFile(join(lower, "opq/sub/y"), "y");
      await Deno.writeTextFile(join(lower, "gone"), "gone");
      await Deno.mkdir(join(lower, "replaced"));
      await Deno.writeTextFile(join(lower, "replaced/old"), "old");
      await Deno.mkdir(join(lower, "implicit"));
      await Deno.chown(join(lower, "implicit"), 5, 6);
      await Deno.chmod(join(lower, "implicit"), 0o710);
      await Deno.writeTextFile(join(lower, "target"), "shared");
      const tar = await pythonTar(join(dir, "layer.tar"), [
        { name: ".wh.gone" },
        { name: "opq/", type: "dir" },
        { name: "opq/.wh..wh..opq" },
        { name: "opq/new", data: "new" },
        { name: ".wh.replaced" },
        { name: "replaced/", type: "dir" },
        { name: "replaced/fresh", data: "fresh" },
        { name: "implicit/child", data: "child" },
        { name: "link-to-lower", type: "link", linkname: "target" },
      ]);
      await applyLayer(upper, fileChunks(tar), { parents: [lower] });
      const gone = sys.stat(join(upper, "gone"), false);
      assertEquals([gone.mode & S_IFMT, gone.rdevMajor, gone.rdevMinor], [S_IFCHR, 0, 0]);
      const y = new TextEncoder().encode("y");
      assertEquals(sys.lgetxattr(join(upper, "opq"), "trusted.overlay.opaque"), y);
      assertEquals(sys.lgetxattr(join(upper, "replaced"), "trusted.overlay.opaque"), y);
      const implicit = sys.stat(join(upper, "implicit"));
      assertEquals([implicit.uid, implicit.gid, implicit.mode & 0o7777], [5, 6, 0o710]);
      await assertRejects(() =>
        Promise.resolve(sys.lgetxattr(join(upper, "implicit"), "trusted.overlay.opaque"))
      );
      assertEquals(sys.stat(join(upper, "target")).ino, sys.stat(join(upper, "link-to-lower")).ino);
      assertEquals(await Deno.readTextFile(join(lower, "target")), "shared");

      mountAll([{
        type: "overlay",
        source: "overlay",
        options: [`lowerdir=${lower}`, `upperdir=${upper}`, `workdir=${work}`],
      }], merged);
      try {
        const tree = describeTree(merged, { mtimes: false }).map((l) => l.split(" ")[0]);
        assertEquals(tree, [
          "implicit",
          "implicit/child",
          "link-to-lower",
          "opq",
          "opq/new",
          "replaced",
          "replaced/fresh",
          "target",
        ]);
      } finally {
        unmountAll(merged);
      }
    }),
});

Deno.test({
  name: "applyLayer() deletes what whiteouts name when the directory holds the whole tree",
  ignore: root,
  fn: () =>
    withTempDir(async (dir) => {
      const out = join(dir, "out");
      await Deno.mkdir(join(out, "opq/sub"), { recursive: true });
      await Deno.writeTextFile(join(out, "opq/x"), "x");
      await Deno.writeTextFile(join(out, "opq/sub/y"), "y");
      await Deno.writeTextFile(join(out, "gone"), "gone");
      await Deno.mkdir(join(out, "gone-dir/deep"), { recursive: true });
      const tar = await pythonTar(join(dir, "layer.tar"), [
        { name: ".wh.gone" },
        { name: ".wh.gone-dir" },
        { name: ".wh.never-existed" },
        { name: "opq/sub/kept", data: "written before the marker" },
        { name: "opq/.wh..wh..opq" },
        { name: "opq/new", data: "new" },
        { name: ".wh..wh.plnk/123", data: "aufs metadata" },
      ]);
      await applyLayer(out, fileChunks(tar));
      assertEquals(describeTree(out, { mtimes: false }).map((l) => l.split(" ")[0]), [
        "opq",
        "opq/new",
        "opq/sub",
        "opq/sub/kept",
      ]);
    }),
});

Deno.test({
  name: "applyLayer() reports a truncated tar as InvalidArgument",
  ignore: root,
  fn: () =>
    withTempDir(async (dir) => {
      const tar = await pythonTar(join(dir, "layer.tar"), [{
        name: "big",
        data: "z".repeat(5000),
      }]);
      const bytes = (await Deno.readFile(tar)).subarray(0, 2048);
      const out = join(dir, "out");
      await Deno.mkdir(out);
      await assertRejects(
        () => applyLayer(out, toAsync([bytes])),
        InvalidArgument,
        "Cannot read layer",
      );
      const garbage = new Uint8Array(1024).fill(0x41);
      await assertRejects(
        () => applyLayer(out, toAsync([garbage])),
        InvalidArgument,
        "Cannot read layer",
      );
    }),
});

async function* toAsync(chunks: Uint8Array[]): AsyncIterable<Uint8Array> {
  for (const c of chunks) yield await Promise.resolve(c);
}

Deno.test({
  name: "applyLayer() rethrows the stream's own error and stops on abort",
  ignore: root,
  fn: () =>
    withTempDir(async (dir) => {
      const tar = await pythonTar(join(dir, "layer.tar"), [{ name: "a", data: "a".repeat(3000) }]);
      const bytes = await Deno.readFile(tar);
      const out = join(dir, "out");
      await Deno.mkdir(out);
      class NetworkDown extends Error {}
      async function* failing(): AsyncIterable<Uint8Array> {
        yield bytes.subarray(0, 1024);
        throw new NetworkDown("connection reset");
      }
      await assertRejects(() => applyLayer(out, failing()), NetworkDown, "connection reset");
      const controller = new AbortController();
      let cancelled = false;
      const slow: AsyncIterable<Uint8Array> = {
        [Symbol.asyncIterator]() {
          let i = 0;
          return {
            next() {
              if (i++ === 1) controller.abort(new Error("stop now"));
              return Promise.resolve({ done: false, value: bytes.subarray(0, 512) });
            },
            return() {
              cancelled = true;
              return Promise.resolve({ done: true, value: undefined });
            },
          };
        },
      };
      await assertRejects(
        () => applyLayer(out, slow, { signal: controller.signal }),
        Error,
        "stop now",
      );
      assert(cancelled, "the stream was cancelled");
      await assertRejects(
        () => applyLayer(join(dir, "missing"), toAsync([bytes])),
        NotFound,
        "missing",
      );
    }),
});

Deno.test("normalizeName() cleans names and refuses escapes", () => {
  assertEquals(normalizeName("./etc/passwd"), "etc/passwd");
  assertEquals(normalizeName("etc//x/./y/"), "etc/x/y");
  assertEquals(normalizeName("a/b/../c"), "a/c");
  assertEquals(normalizeName("./"), "");
  for (const bad of ["/etc/passwd", "../x", "a/../../x", "./.."]) {
    let err: unknown;
    try {
      normalizeName(bad);
    } catch (e) {
      err = e;
    }
    assert(err instanceof InvalidArgument, bad);
    assertStringIncludes((err as Error).message, JSON.stringify(bad));
  }
});

Deno.test({
  name: "applyLayer() sets exact modes whatever the umask",
  ignore: root,
  fn: () =>
    withTempDir(async (dir) => {
      const tar = await pythonTar(join(dir, "layer.tar"), [
        { name: "implicit/file", data: "x", mode: 0o644 },
        { name: "listed/", type: "dir", mode: 0o755 },
        { name: "fifo", type: "fifo", mode: 0o666 },
      ]);
      const out = join(dir, "out");
      await Deno.mkdir(out);
      const old = sys.umask(0o077);
      try {
        await applyLayer(out, fileChunks(tar));
      } finally {
        sys.umask(old);
      }
      const mode = (p: string) => sys.stat(join(out, p), false).mode & 0o7777;
      assertEquals([mode("implicit"), mode("implicit/file"), mode("listed"), mode("fifo")], [
        0o755,
        0o644,
        0o755,
        0o666,
      ]);
    }),
});
