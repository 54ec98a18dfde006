/**
 * Test-only: image archives made by tools that are not tug. An OCI layout
 * built by `umoci` from Debian's busybox-static (two layers: busybox, then a
 * directory with one file), turned into archives by `skopeo copy` (oci-archive,
 * docker-archive) and by plain `tar`, and compressed by `gzip` and libzstd (node:zlib).
 * Also hand-made broken archives (written with tar-stream, a library
 * independent of the importer's logic).
 *
 * @module
 */

import { join } from "node:path";
import { zstdCompressSync } from "node:zlib";
import tarStream from "tar-stream";
import { BUSYBOX, run } from "../../tests/harness.ts";

/** Paths of the fixture archives. */
export interface Fixtures {
  dir: string;
  /** The OCI layout directory (ref name `base`). */
  layout: string;
  /** `tar -C layout .`: an OCI layout tar whose only name is the tag `base`. */
  ociTar: string;
  /** `skopeo copy oci:… oci-archive:…:busybox:latest`. */
  ociArchive: string;
  /** `skopeo copy oci:… docker-archive:…:busybox:latest`. */
  dockerArchive: string;
  /** The docker archive, gzip-compressed. */
  dockerArchiveGz: string;
  /** The OCI archive, zstd-compressed. */
  ociArchiveZst: string;
}

async function must(cmd: string, args: string[], cwd?: string): Promise<string> {
  const r = await run(cmd, args, cwd ? { cwd } : {});
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** Builds the fixtures in a new temporary directory (the caller removes `dir`). */
export async function buildFixtures(): Promise<Fixtures> {
  const dir = await Deno.makeTempDir({ prefix: "tug-archive-fixtures-" });
  const layout = join(dir, "layout");
  await must("umoci", ["init", "--layout", layout]);
  await must("umoci", ["new", "--image", `${layout}:base`]);
  await must("umoci", ["insert", "--image", `${layout}:base`, BUSYBOX, "/bin/busybox"]);
  const extra = join(dir, "extra");
  await Deno.mkdir(extra);
  await Deno.writeTextFile(join(extra, "hello.txt"), "hello from the second layer\n");
  await must("umoci", ["insert", "--image", `${layout}:base`, extra, "/etc/extra"]);
  await must("umoci", [
    "config",
    "--image",
    `${layout}:base`,
    "--config.cmd",
    "/bin/busybox",
    "--config.cmd",
    "true",
  ]);
  const f: Fixtures = {
    dir,
    layout,
    ociTar: join(dir, "layout.tar"),
    ociArchive: join(dir, "oci-archive.tar"),
    dockerArchive: join(dir, "docker-archive.tar"),
    dockerArchiveGz: join(dir, "docker-archive.tar.gz"),
    ociArchiveZst: join(dir, "oci-archive.tar.zst"),
  };
  await must("tar", ["-C", layout, "-cf", f.ociTar, "."]);
  await must("skopeo", [
    "copy",
    "-q",
    `oci:${layout}:base`,
    `oci-archive:${f.ociArchive}:busybox:latest`,
  ]);
  await must("skopeo", [
    "copy",
    "-q",
    `oci:${layout}:base`,
    `docker-archive:${f.dockerArchive}:busybox:latest`,
  ]);
  await must("sh", ["-c", `gzip -c '${f.dockerArchive}' > '${f.dockerArchiveGz}'`]);
  // zstd by Node's zlib (libzstd), so the suite needs no zstd command.
  await Deno.writeFile(f.ociArchiveZst, zstdCompressSync(await Deno.readFile(f.ociArchive)));
  return f;
}

/** One entry of a hand-made tar. */
export interface RawEntry {
  name: string;
  data?: Uint8Array | string;
  type?: "file" | "symlink" | "link" | "directory" | "character-device" | "fifo";
  linkname?: string;
}

/** Writes a tar of `entries` to `path` with tar-stream. */
export async function writeTar(path: string, entries: RawEntry[]): Promise<void> {
  const pack = tarStream.pack();
  const chunks: Uint8Array[] = [];
  const done = (async () => {
    for await (const c of pack as AsyncIterable<Uint8Array>) chunks.push(c);
  })();
  for (const e of entries) {
    const data = typeof e.data === "string" ? new TextEncoder().encode(e.data) : e.data;
    await new Promise<void>((resolve, reject) => {
      const header = {
        name: e.name,
        type: e.type ?? "file",
        mode: 0o644,
        ...(e.linkname !== undefined ? { linkname: e.linkname } : {}),
      };
      const cb = (err?: Error | null) => err ? reject(err) : resolve();
      if (data) pack.entry({ ...header, size: data.length }, data, cb);
      else pack.entry(header, cb);
    });
  }
  pack.finalize();
  await done;
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  await Deno.writeFile(path, out);
}

/** The files of the OCI layout directory, as tar entries (to build broken variants from). */
export async function layoutEntries(layout: string): Promise<RawEntry[]> {
  const out: RawEntry[] = [];
  out.push({ name: "oci-layout", data: await Deno.readFile(join(layout, "oci-layout")) });
  out.push({ name: "index.json", data: await Deno.readFile(join(layout, "index.json")) });
  for await (const e of Deno.readDir(join(layout, "blobs", "sha256"))) {
    out.push({
      name: `blobs/sha256/${e.name}`,
      data: await Deno.readFile(join(layout, "blobs", "sha256", e.name)),
    });
  }
  return out;
}
