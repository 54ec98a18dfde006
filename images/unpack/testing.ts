/**
 * Helpers for tests of layers and snapshots (tug itself never imports this):
 * layer tars made by tools that are not tug (Python's tarfile, GNU tar), OCI
 * image layouts for umoci to unpack, a tree with every kind of node, and a
 * comparable description of a directory tree.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { join } from "node:path";
import {
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
} from "../../ffi/constants.ts";
import { libcSyscall } from "../../ffi/libc.ts";
import { run } from "../../tests/harness.ts";

/** security.capability (v2) granting CAP_SETUID and CAP_NET_RAW, effective: byte 4 is 0x80. */
export const CAPS: Uint8Array = new Uint8Array([
  1,
  0,
  0,
  2,
  0x80,
  0x20,
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
]);

/**
 * Fills `dir` with every kind of node and attribute a layer can carry:
 * busybox and a hard link to it, symlinks (relative, absolute, long), long
 * names, devices, a fifo, a binary xattr, a file capability, setuid and
 * sticky modes, a large owner id, a private home directory, an old mtime.
 */
export async function richTree(dir: string): Promise<void> {
  const sys = libcSyscall();
  await Deno.mkdir(join(dir, "bin"), { recursive: true });
  await Deno.copyFile("/bin/busybox", join(dir, "bin/busybox"));
  await Deno.link(join(dir, "bin/busybox"), join(dir, "bin/sh"));
  await Deno.symlink("busybox", join(dir, "bin/ls"));
  await Deno.mkdir(join(dir, "etc"));
  await Deno.writeTextFile(join(dir, "etc/hello"), "hello\n");
  await Deno.symlink("/etc/hello", join(dir, "etc/absolute-link"));
  sys.lsetxattr(join(dir, "etc/hello"), "user.note", new Uint8Array([0x62, 0, 0xff, 0x0a, 0x80]));
  const long = `${"d".repeat(120)}/${"f".repeat(110)}`;
  await Deno.mkdir(join(dir, "etc", long.split("/")[0]!));
  await Deno.writeTextFile(join(dir, "etc", long), "long name");
  await Deno.symlink(`../${"t".repeat(150)}`, join(dir, "etc/long-target"));
  sys.mknod(join(dir, "null"), S_IFCHR | 0o666, 1, 3);
  sys.mknod(join(dir, "loop0"), S_IFBLK | 0o660, 7, 0);
  sys.mkfifo(join(dir, "fifo"), 0o600);
  await Deno.writeTextFile(join(dir, "capped"), "capped");
  sys.lsetxattr(join(dir, "capped"), "security.capability", CAPS);
  await Deno.writeTextFile(join(dir, "setuid"), "");
  await Deno.chmod(join(dir, "setuid"), 0o4755);
  await Deno.mkdir(join(dir, "tmp"));
  await Deno.chmod(join(dir, "tmp"), 0o1777);
  await Deno.writeTextFile(join(dir, "owned"), "x");
  await Deno.chown(join(dir, "owned"), 3_000_000, 3_000_001);
  await Deno.mkdir(join(dir, "home/user"), { recursive: true });
  await Deno.writeTextFile(join(dir, "home/user/.profile"), "PS1='$ '");
  await Deno.chown(join(dir, "home/user"), 1000, 1000);
  await Deno.chmod(join(dir, "home/user"), 0o700);
  sys.utimensat(
    -100,
    join(dir, "etc/hello"),
    981_173_106_789_000_000n,
    981_173_106_789_000_000n,
    0,
  );
}

/** One entry of a tar made by {@link pythonTar}. */
export interface TarEntry {
  name: string;
  type?: "file" | "dir" | "symlink" | "link" | "char" | "block" | "fifo";
  data?: string | Uint8Array;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  /** Seconds since the epoch; a fraction makes Python write a PAX mtime record. */
  mtime?: number;
  devmajor?: number;
  devminor?: number;
  /** Extended attributes, written as `SCHILY.xattr.<name>` PAX records with their exact bytes. */
  xattrs?: Record<string, string | Uint8Array>;
}

const PYTHON_TAR = `
import io, json, sys, tarfile
spec = json.load(sys.stdin)
fmt = {"pax": tarfile.PAX_FORMAT, "gnu": tarfile.GNU_FORMAT, "ustar": tarfile.USTAR_FORMAT}[spec["format"]]
types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "link": tarfile.LNKTYPE,
         "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE}
with tarfile.open(spec["path"], "w", format=fmt) as t:
    for e in spec["entries"]:
        ti = tarfile.TarInfo(e["name"])
        ti.type = types[e.get("type", "file")]
        ti.mode = e.get("mode", 0o755 if ti.type == tarfile.DIRTYPE else 0o644)
        ti.uid = e.get("uid", 0)
        ti.gid = e.get("gid", 0)
        ti.mtime = e.get("mtime", 1700000000)
        ti.linkname = e.get("linkname", "")
        ti.devmajor = e.get("devmajor", 0)
        ti.devminor = e.get("devminor", 0)
        pax = {}
        for k, v in e.get("xattrs", {}).items():
            pax["SCHILY.xattr." + k] = bytes.fromhex(v).decode("utf-8", "surrogateescape")
        ti.pax_headers = pax
        data = bytes.fromhex(e.get("data", ""))
        if ti.type == tarfile.REGTYPE:
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
        else:
            t.addfile(ti)
`;

function hex(value: string | Uint8Array): string {
  const bytes = typeof value === "string" ? new TextEncoder().encode(value) : value;
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Writes a tar of `entries` at `path` with Python's tarfile, in PAX (default), GNU or ustar format. */
export async function pythonTar(
  path: string,
  entries: TarEntry[],
  format: "pax" | "gnu" | "ustar" = "pax",
): Promise<string> {
  const spec = {
    path,
    format,
    entries: entries.map((e) => ({
      ...e,
      data: e.data === undefined ? "" : hex(e.data),
      xattrs: Object.fromEntries(Object.entries(e.xattrs ?? {}).map(([k, v]) => [k, hex(v)])),
    })),
  };
  const r = await run("python3", ["-c", PYTHON_TAR], { stdin: JSON.stringify(spec) });
  if (r.code !== 0) throw new Error(`python3 tarfile failed: ${r.stderr}`);
  return path;
}

/** Runs GNU tar with `args`; throws with its stderr when it fails. */
export async function gnuTar(...args: string[]): Promise<void> {
  const r = await run("tar", args);
  if (r.code !== 0) throw new Error(`tar ${args.join(" ")} failed: ${r.stderr}`);
}

/** Streams a file in chunks of `chunk` bytes. */
export async function* fileChunks(path: string, chunk = 1 << 20): AsyncIterable<Uint8Array> {
  using f = await Deno.open(path);
  for (;;) {
    const buf = new Uint8Array(chunk);
    const n = await f.read(buf);
    if (n === null) return;
    yield buf.subarray(0, n);
  }
}

function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * Writes an OCI image layout at `dir` whose image `tag` has the given layer
 * tars (gzip-compressed into the layout), for umoci to unpack.
 */
export async function ociLayout(dir: string, layers: string[], tag = "test"): Promise<void> {
  const blobs = join(dir, "blobs", "sha256");
  await Deno.mkdir(blobs, { recursive: true });
  const put = async (data: Uint8Array) => {
    const digest = sha256(data);
    await Deno.writeFile(join(blobs, digest), data);
    return { digest: `sha256:${digest}`, size: data.length };
  };
  const diffIds: string[] = [];
  const descriptors = [];
  for (const layer of layers) {
    const tar = await Deno.readFile(layer);
    diffIds.push(`sha256:${sha256(tar)}`);
    descriptors.push({
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      ...(await put(gzipSync(tar))),
    });
  }
  const enc = new TextEncoder();
  const config = await put(enc.encode(JSON.stringify({
    architecture: "amd64",
    os: "linux",
    config: {},
    rootfs: { type: "layers", diff_ids: diffIds },
  })));
  const manifest = await put(enc.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: descriptors,
  })));
  await Deno.writeTextFile(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        ...manifest,
        annotations: { "org.opencontainers.image.ref.name": tag },
      }],
    }),
  );
  await Deno.writeTextFile(
    join(dir, "oci-layout"),
    JSON.stringify({ imageLayoutVersion: "1.0.0" }),
  );
}

/** Options for {@link describeTree}. */
export interface DescribeOptions {
  /** Include modification times of non-directories (default true). */
  mtimes?: boolean;
  /** Include modification times of directories (default false: applying entries inside them changes them). */
  dirMtimes?: boolean;
  /** Attributes to leave out (default: overlayfs' own). */
  skipXattr?: (name: string) => boolean;
}

/**
 * One line per node under `dir` (not `dir` itself), sorted: path, type,
 * mode, owner, size and content digest or link target, device numbers,
 * extended attributes, the path it is hard-linked to, times.
 */
export function describeTree(dir: string, options: DescribeOptions = {}): string[] {
  const sys = libcSyscall();
  const skip = options.skipXattr ?? ((n: string) => n.startsWith("trusted.overlay."));
  const nodes: { path: string; line: string; inode: string; nlink: number }[] = [];
  const walk = (rel: string) => {
    for (const e of Deno.readDirSync(join(dir, rel))) {
      const path = rel === "" ? e.name : `${rel}/${e.name}`;
      const abs = join(dir, path);
      const st = sys.stat(abs, false);
      const type = st.mode & S_IFMT;
      const t = {
        [S_IFDIR]: "dir",
        [S_IFREG]: "file",
        [S_IFLNK]: "symlink",
        [S_IFCHR]: "char",
        [S_IFBLK]: "block",
        [S_IFIFO]: "fifo",
      }[type] ??
        `type${type.toString(8)}`;
      let what = "";
      if (type === S_IFREG) what = `${st.size} ${sha256(Deno.readFileSync(abs)).slice(0, 16)}`;
      if (type === S_IFLNK) what = `-> ${Deno.readLinkSync(abs)}`;
      if (type === S_IFCHR || type === S_IFBLK) what = `${st.rdevMajor}:${st.rdevMinor}`;
      const xattrs = sys.llistxattr(abs).filter((n) => !skip(n)).sort()
        .map((n) => `${n}=${hex(sys.lgetxattr(abs, n))}`).join(",");
      const times = (type === S_IFDIR ? options.dirMtimes ?? false : options.mtimes ?? true)
        ? ` mtime=${st.mtimeNs}`
        : "";
      const mode = type === S_IFLNK ? "" : (st.mode & 0o7777).toString(8).padStart(4, "0");
      nodes.push({
        path,
        line: `${path} ${t} ${mode} ${st.uid}:${st.gid} ${what}${
          xattrs ? ` xattrs[${xattrs}]` : ""
        }${times}`,
        inode: `${st.devMajor}:${st.devMinor}:${st.ino}`,
        nlink: type === S_IFDIR ? 1 : st.nlink,
      });
      if (type === S_IFDIR) walk(path);
    }
  };
  walk("");
  nodes.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const firstOf = new Map<string, string>();
  const count = new Map<string, number>();
  for (const n of nodes) count.set(n.inode, (count.get(n.inode) ?? 0) + 1);
  return nodes.map((n) => {
    if (n.nlink < 2 || count.get(n.inode)! < 2) return n.line;
    const first = firstOf.get(n.inode);
    if (first === undefined) {
      firstOf.set(n.inode, n.path);
      return n.line;
    }
    return `${n.line} linked-to=${first}`;
  });
}
