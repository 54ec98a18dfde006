/**
 * Applying a layer: an (already decompressed) OCI layer tar stream is
 * unpacked onto a snapshot's directory, streaming, and its diff ID (the
 * sha256 of the uncompressed stream) is returned.
 *
 * Parsing is tar-stream's (PAX and GNU long names, base-256 numbers); xattr
 * values are re-read binary-safe from the raw PAX records (see `_pax.ts`).
 * Every filesystem change is made relative to a directory fd that was opened
 * with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | …), and the final
 * component is always created with O_EXCL/O_NOFOLLOW semantics, so nothing is
 * ever written outside the root or through a symlink, whatever the tree holds.
 *
 * What is refused (InvalidArgument naming the entry): absolute names, names
 * whose `..` components climb out of the root, entries whose parent path goes
 * through a symlink (planted by this layer or present in a lower one),
 * hardlinks whose target is absolute, escapes, goes through a symlink, is a
 * directory or does not exist, unsupported entry types (GNU sparse files), and
 * a stream longer than `maxSize` bytes.
 *
 * Whiteouts (OCI image spec, "Representing changes"): `.wh.<name>` removes
 * `<name>` from the layers below, `.wh..wh..opq` hides everything the layers
 * below hold in its directory. With `whiteouts: "overlay"` (the directory is an
 * overlayfs upper layer, `parents` its lower layers) they become a 0:0
 * character device and the `trusted.overlay.opaque=y` attribute; with
 * `"delete"` (the directory holds the whole tree, as with the native
 * snapshotter) the paths are deleted.
 *
 * Failure contract: when `applyLayer` throws, the directory is left
 * half-applied. The caller must remove the active snapshot it prepared;
 * `unpackLayer` (unpack.ts) does exactly that.
 *
 * @module
 */

import tarStream from "tar-stream";
import type { ExtractEvents, Header } from "tar-stream";
import {
  AT_EMPTY_PATH,
  AT_SYMLINK_NOFOLLOW,
  O_CLOEXEC,
  O_CREAT,
  O_DIRECTORY,
  O_EXCL,
  O_NOFOLLOW,
  O_PATH,
  O_RDONLY,
  O_WRONLY,
  RESOLVE_BENEATH,
  RESOLVE_NO_MAGICLINKS,
  RESOLVE_NO_SYMLINKS,
  RESOLVE_NO_XDEV,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
} from "../../ffi/constants.ts";
import { libcSyscall } from "../../ffi/libc.ts";
import type { FileStat, Syscall } from "../../ffi/syscall.ts";
import { SyscallError } from "../../ffi/syscall.ts";
import { Internal, InvalidArgument, NotFound, TugError } from "../../errors.ts";
import type { Digest } from "../types.ts";
import { Digester } from "../content/digest.ts";
import { copyAttributes, copyNode, isCopiedXattr } from "../snapshots/copy.ts";
import { giveBuffer, takeBuffer } from "../_buffers.ts";
import { hasXattrRecords, RawWindow, rawXattrs } from "./_pax.ts";

/** One entry as tar-stream hands it over: its header, its data, the offset of its header. */
type Source = ExtractEvents["entry"][1];

/** How whiteouts are represented in the directory a layer is applied to. */
export type WhiteoutMode = "overlay" | "delete";

/** Options for {@link applyLayer}. */
export interface ApplyLayerOptions {
  /**
   * The lower layers' directories, topmost first, when `root` is an overlayfs
   * upper directory. They are only read: to copy a directory's attributes
   * when the layer creates something inside a directory it does not itself
   * list, to refuse writing through a symlink a lower layer holds, and to copy
   * up the target of a hardlink.
   */
  parents?: readonly string[];
  /** Default: "overlay" when `parents` is not empty, else "delete". */
  whiteouts?: WhiteoutMode;
  /** Refuse the layer when its uncompressed stream is longer than this many bytes (default: no limit). */
  maxSize?: number;
  /** syncfs(2) the directory's filesystem after applying (default false). */
  sync?: boolean;
  /** Stops the apply; the stream is cancelled. */
  signal?: AbortSignal;
  /** The system-call layer (default: glibc). */
  sys?: Syscall;
}

/** What applying a layer produced. */
export interface ApplyLayerResult {
  /** `sha256:<hex>` of the uncompressed tar stream: compare it with the image config's `rootfs.diff_ids`. */
  diffId: Digest;
  /** Bytes of the uncompressed tar stream. */
  size: number;
}

const RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
const DIR_FLAGS = O_PATH | O_DIRECTORY | O_CLOEXEC;
const FILE_FLAGS = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
const WHITEOUT = ".wh.";
const META = ".wh..wh.";
const OPAQUE = ".wh..wh..opq";
const OPAQUE_XATTR = "trusted.overlay.opaque";
const BLOCK = 512;
/**
 * The stream is copied into slabs of this size for the parser (its cost is
 * per chunk, and the source's chunks may be reused buffers); a slab is used
 * again once everything in it has been applied. The parser holds one or two
 * at a time: 1 MiB slabs put ~0.7 MiB more on the daemon's peak RSS during a
 * pull than these, for no measurable difference in time.
 */
const SLAB = 256 << 10;
/** Directory fds kept open between entries; the cache is emptied when it grows past this. */
const DIR_CACHE = 256;
const Y = new TextEncoder().encode("y");

function q(s: string): string {
  return JSON.stringify(s);
}

function refuse(entry: string, why: string): InvalidArgument {
  return new InvalidArgument(`Refused layer entry ${q(entry)}: ${why}`);
}

function errnoOf(err: unknown): string | undefined {
  return err instanceof SyscallError ? err.errnoName : undefined;
}

/** True for errors of the system (a failed call), as opposed to the tar parser's. */
function isSystemError(err: unknown): boolean {
  return err instanceof SyscallError ||
    Object.values(Deno.errors).some((cls) => err instanceof cls);
}

function typeOf(st: FileStat): number {
  return st.mode & S_IFMT;
}

function isWhiteoutDevice(st: FileStat): boolean {
  return typeOf(st) === S_IFCHR && st.rdevMajor === 0 && st.rdevMinor === 0;
}

/** `/proc/self/fd/<fd>/<name>`: a path to `name` in the directory `fd`, for calls that have no *at form. */
function procPath(fd: number, name = "."): string {
  return `/proc/self/fd/${fd}/${name}`;
}

/**
 * The normalized relative path of a tar name ("" for the root), or a refusal
 * for an absolute name or one whose `..` components climb out of the root.
 */
export function normalizeName(name: string, what = name): string {
  if (name.startsWith("/")) throw refuse(what, `the name ${q(name)} is absolute`);
  if (name.includes("\0")) throw refuse(what, `the name ${q(name)} contains a NUL byte`);
  const parts: string[] = [];
  for (const part of name.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (parts.length === 0) throw refuse(what, `the name ${q(name)} escapes the snapshot`);
      parts.pop();
    } else {
      parts.push(part);
    }
  }
  return parts.join("/");
}

function split(path: string): [string, string] {
  const i = path.lastIndexOf("/");
  return i < 0 ? ["", path] : [path.slice(0, i), path.slice(i + 1)];
}

function join(dir: string, name: string): string {
  return dir === "" ? name : `${dir}/${name}`;
}

/** Seconds (a PAX decimal such as `1234.5` or `-1.25`) as nanoseconds. */
function paxTime(value: string | undefined): bigint | undefined {
  if (value === undefined || !/^-?\d+(\.\d*)?$/.test(value)) return undefined;
  const negative = value.startsWith("-");
  const [whole, frac = ""] = (negative ? value.slice(1) : value).split(".");
  const ns = BigInt(whole!) * 1_000_000_000n + BigInt((frac + "000000000").slice(0, 9));
  return negative ? -ns : ns;
}

function paxInt(value: string | undefined, fallback: number): number {
  if (value === undefined || !/^\d+$/.test(value)) return fallback;
  return Number(value);
}

/** An entry's metadata, with PAX records applied. */
interface EntryMeta {
  name: string;
  uid: number;
  gid: number;
  mode: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  xattrs: Map<string, Uint8Array>;
}

/** A node of the merged view (the directory and its lower layers). */
interface MergedNode {
  /** Its path in the layer that provides it. */
  path: string;
  stat: FileStat;
  /** True when the directory being applied to provides it, false for a lower layer. */
  upper: boolean;
}

/** The state of one apply: the root, cached directory fds, deferred directory times. */
class Applier {
  readonly #sys: Syscall;
  readonly #root: string;
  readonly #rootFd: number;
  readonly #parents: readonly string[];
  readonly #overlay: boolean;
  readonly #dirs = new Map<string, number>();
  readonly #dirTimes: { path: string; atimeNs: bigint; mtimeNs: bigint }[] = [];
  /** Delete mode: paths this layer wrote, and their ancestors (an opaque marker keeps them). */
  readonly #unpacked = new Set<string>();

  constructor(root: string, sys: Syscall, parents: readonly string[], overlay: boolean) {
    this.#sys = sys;
    this.#root = root;
    this.#parents = parents;
    this.#overlay = overlay;
    try {
      this.#rootFd = sys.open(root, DIR_FLAGS);
    } catch (err) {
      if (errnoOf(err) === "ENOENT") {
        throw new NotFound(`Cannot apply layer: ${q(root)} does not exist`);
      }
      throw new Internal(`Cannot apply layer: cannot open ${q(root)}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  close(): void {
    for (const fd of this.#dirs.values()) this.#sys.close(fd);
    this.#dirs.clear();
    this.#sys.close(this.#rootFd);
  }

  /** Called between entries, when no directory fd is in use. */
  evict(): void {
    if (this.#dirs.size < DIR_CACHE) return;
    for (const fd of this.#dirs.values()) this.#sys.close(fd);
    this.#dirs.clear();
  }

  #lstatAt(dirFd: number, name: string): FileStat | undefined {
    try {
      return this.#sys.stat(name, false, dirFd);
    } catch (err) {
      const e = errnoOf(err);
      if (e === "ENOENT" || e === "ENOTDIR") return undefined;
      throw err;
    }
  }

  #forget(path: string): void {
    for (const [p, fd] of this.#dirs) {
      if (p === path || p.startsWith(path + "/")) {
        this.#sys.close(fd);
        this.#dirs.delete(p);
      }
    }
  }

  /** Removes `name` (recursively, never following symlinks) from the directory `dirFd`. */
  #remove(dirFd: number, name: string, path: string): void {
    try {
      this.#sys.unlinkat(dirFd, name, 0);
      return;
    } catch (err) {
      const e = errnoOf(err);
      if (e === "ENOENT") return;
      if (e !== "EISDIR" && e !== "EPERM") throw err;
    }
    this.#forget(path);
    Deno.removeSync(procPath(dirFd, name), { recursive: true });
  }

  /**
   * What a merged (overlay) view of the directory and its lower layers shows
   * at `path`, walked with lstat one component at a time like overlayfs does:
   * whiteouts hide, opaque directories stop the search. Refuses a path whose
   * parent components go through a symlink.
   */
  #lookup(path: string, entry: string): MergedNode | undefined {
    if (path === "") return undefined;
    let layers: string[] = [];
    for (const layer of [this.#root, ...this.#parents]) {
      layers.push(layer);
      if (this.#isOpaque(layer)) break;
    }
    const parts = path.split("/");
    let prefix = "";
    for (let i = 0; i < parts.length; i++) {
      prefix = join(prefix, parts[i]!);
      let top: MergedNode | undefined;
      const merged: string[] = [];
      for (const layer of layers) {
        const p = `${layer}/${prefix}`;
        let st: FileStat;
        try {
          st = this.#sys.stat(p, false);
        } catch (err) {
          const e = errnoOf(err);
          if (e === "ENOENT" || e === "ENOTDIR") continue;
          throw err;
        }
        if (isWhiteoutDevice(st)) break;
        if (top === undefined) top = { path: p, stat: st, upper: layer === this.#root };
        if (typeOf(st) !== S_IFDIR) break;
        merged.push(layer);
        if (this.#isOpaque(p)) break;
      }
      if (top === undefined) return undefined;
      if (i === parts.length - 1) return top;
      if (typeOf(top.stat) === S_IFLNK) {
        throw refuse(
          entry,
          `the path ${q(prefix)} is a symbolic link, and a layer must not write through one`,
        );
      }
      if (typeOf(top.stat) !== S_IFDIR) return undefined;
      layers = merged;
    }
    return undefined;
  }

  #isOpaque(path: string): boolean {
    try {
      const v = this.#sys.lgetxattr(path, OPAQUE_XATTR);
      return v.length === 1 && v[0] === Y[0];
    } catch {
      return false;
    }
  }

  #setOpaque(dirFd: number): void {
    this.#sys.lsetxattr(procPath(dirFd), OPAQUE_XATTR, Y);
  }

  /**
   * The fd of the directory `path`, created (with its missing ancestors) when
   * absent. A created directory takes the attributes of the same directory in
   * the lower layers, like overlayfs' copy-up. Refuses symlinks and non-directories.
   */
  dir(path: string, entry: string): number {
    if (path === "") return this.#rootFd;
    const cached = this.#dirs.get(path);
    if (cached !== undefined) return cached;
    try {
      const fd = this.#sys.openat2(this.#rootFd, path, DIR_FLAGS, 0, RESOLVE);
      this.#dirs.set(path, fd);
      return fd;
    } catch (err) {
      const e = errnoOf(err);
      if (e !== "ENOENT" && e !== "ENOTDIR" && e !== "ELOOP" && e !== "EXDEV") throw err;
    }
    const [parent, base] = split(path);
    const parentFd = this.dir(parent, entry);
    const st = this.#lstatAt(parentFd, base);
    let opaque = false;
    if (st !== undefined) {
      if (this.#overlay && isWhiteoutDevice(st)) {
        // Deleted earlier in this layer, now a directory again: nothing below shows through.
        this.#sys.unlinkat(parentFd, base, 0);
        opaque = true;
      } else if (typeOf(st) === S_IFLNK) {
        throw refuse(
          entry,
          `${q(path)} is a symbolic link, and a layer must not write through one`,
        );
      } else if (typeOf(st) !== S_IFDIR) {
        throw refuse(entry, `${q(path)} is not a directory`);
      }
    }
    let lower: MergedNode | undefined;
    if (st === undefined || opaque) {
      lower = opaque || this.#parents.length === 0 ? undefined : this.#lookup(path, entry);
      if (lower !== undefined && typeOf(lower.stat) === S_IFLNK) {
        throw refuse(
          entry,
          `${q(path)} is a symbolic link in a lower layer, and a layer must not write through one`,
        );
      }
      if (lower !== undefined && typeOf(lower.stat) !== S_IFDIR) {
        throw refuse(entry, `${q(path)} is not a directory in a lower layer`);
      }
      this.#sys.mkdirat(parentFd, base, 0o755);
    }
    const fd = this.#sys.openat2(parentFd, base, DIR_FLAGS, 0, RESOLVE);
    this.#dirs.set(path, fd);
    if (opaque) this.#setOpaque(fd);
    if (lower !== undefined) {
      copyAttributes(lower.path, procPath(parentFd, base), { sys: this.#sys, stat: lower.stat });
    } else if (st === undefined || opaque) {
      this.#sys.fchmodat(parentFd, base, 0o755); // exactly, whatever the umask
    }
    return fd;
  }

  /** The fd of the existing directory `path`, or undefined when it does not exist. */
  #existingDir(path: string, entry: string): number | undefined {
    if (path === "") return this.#rootFd;
    const cached = this.#dirs.get(path);
    if (cached !== undefined) return cached;
    try {
      const fd = this.#sys.openat2(this.#rootFd, path, DIR_FLAGS, 0, RESOLVE);
      this.#dirs.set(path, fd);
      return fd;
    } catch (err) {
      const e = errnoOf(err);
      if (e === "ENOENT" || e === "ENOTDIR") return undefined;
      if (e === "ELOOP" || e === "EXDEV") {
        throw refuse(
          entry,
          `the path ${
            q(path)
          } goes through a symbolic link, and a layer must not write through one`,
        );
      }
      throw err;
    }
  }

  #markUnpacked(path: string): void {
    if (this.#overlay) return;
    for (let p = path; p !== "" && !this.#unpacked.has(p); p = split(p)[0]) this.#unpacked.add(p);
  }

  /**
   * Creates a node with `create(dirFd, name)`; when something is in the way
   * it is removed first, except a directory where a directory is wanted
   * (then the layer's metadata is merged onto it). Returns true when merged.
   */
  #create(
    dirFd: number,
    name: string,
    path: string,
    wantDir: boolean,
    create: () => void,
  ): boolean {
    try {
      create();
      return false;
    } catch (err) {
      if (errnoOf(err) !== "EEXIST") throw err;
    }
    const st = this.#lstatAt(dirFd, name);
    if (wantDir && st !== undefined && typeOf(st) === S_IFDIR) return true;
    const wasWhiteout = st !== undefined && this.#overlay && isWhiteoutDevice(st);
    this.#remove(dirFd, name, path);
    create();
    if (wantDir && wasWhiteout) {
      const fd = this.#sys.openat2(dirFd, name, DIR_FLAGS, 0, RESOLVE);
      try {
        this.#setOpaque(fd);
      } finally {
        this.#sys.close(fd);
      }
    }
    return false;
  }

  #setXattrs(meta: EntryMeta, set: (name: string, value: Uint8Array) => void): void {
    for (const [name, value] of meta.xattrs) {
      if (!isCopiedXattr(name)) continue; // a layer does not get to set overlayfs' own attributes
      try {
        set(name, value);
      } catch (err) {
        if (errnoOf(err) !== "EOPNOTSUPP") throw err;
      }
    }
  }

  /** Owner, mode, xattrs and (unless deferred) times of a node that is not a regular file. */
  #finishNode(
    dirFd: number,
    name: string,
    meta: EntryMeta,
    options: { chmod: boolean; times: boolean },
  ): void {
    const sys = this.#sys;
    sys.fchownat(dirFd, name, meta.uid, meta.gid, AT_SYMLINK_NOFOLLOW);
    if (options.chmod) sys.fchmodat(dirFd, name, meta.mode); // after chown, which clears setuid/setgid
    this.#setXattrs(meta, (n, v) => sys.lsetxattr(procPath(dirFd, name), n, v));
    if (options.times) sys.utimensat(dirFd, name, meta.atimeNs, meta.mtimeNs, AT_SYMLINK_NOFOLLOW);
  }

  whiteout(dir: string, target: string, entry: string): void {
    if (target === "" || target === "." || target === ".." || target.includes("/")) {
      throw refuse(entry, `the whiteout names ${q(target)}`);
    }
    const path = join(dir, target);
    if (this.#overlay) {
      const dirFd = this.dir(dir, entry);
      this.#create(
        dirFd,
        target,
        path,
        false,
        () => this.#sys.mknodat(dirFd, target, S_IFCHR, 0, 0),
      );
      return;
    }
    const dirFd = this.#existingDir(dir, entry);
    if (dirFd === undefined) return; // nothing there to delete
    this.#remove(dirFd, target, path);
  }

  opaque(dir: string, entry: string): void {
    if (this.#overlay) {
      this.#setOpaque(this.dir(dir, entry));
      return;
    }
    const dirFd = this.#existingDir(dir, entry);
    if (dirFd !== undefined) this.#clearNotUnpacked(dirFd, dir);
  }

  /** Delete mode: removes what lower layers left in the directory, keeping what this layer wrote. */
  #clearNotUnpacked(dirFd: number, dir: string): void {
    for (const child of [...Deno.readDirSync(procPath(dirFd))]) {
      const path = join(dir, child.name);
      if (!this.#unpacked.has(path)) {
        this.#remove(dirFd, child.name, path);
      } else if (child.isDirectory) {
        const fd = this.#sys.openat2(dirFd, child.name, DIR_FLAGS, 0, RESOLVE);
        try {
          this.#clearNotUnpacked(fd, path);
        } finally {
          this.#sys.close(fd);
        }
      }
    }
  }

  directory(path: string, meta: EntryMeta): void {
    const [dir, name] = split(path);
    const dirFd = this.dir(dir, meta.name);
    this.#markUnpacked(path);
    this.#create(dirFd, name, path, true, () => this.#sys.mkdirat(dirFd, name, 0o700));
    this.#finishNode(dirFd, name, meta, { chmod: true, times: false });
    this.#dirTimes.push({ path, atimeNs: meta.atimeNs, mtimeNs: meta.mtimeNs });
  }

  async file(path: string, meta: EntryMeta, data: AsyncIterable<Uint8Array>): Promise<void> {
    const sys = this.#sys;
    const [dir, name] = split(path);
    const dirFd = this.dir(dir, meta.name);
    this.#markUnpacked(path);
    let fd = -1;
    this.#create(dirFd, name, path, false, () => {
      fd = sys.openat(dirFd, name, FILE_FLAGS, 0o600);
    });
    try {
      for await (const chunk of data) {
        let off = 0;
        while (off < chunk.length) off += sys.write(fd, off === 0 ? chunk : chunk.subarray(off));
      }
      sys.fchownat(fd, "", meta.uid, meta.gid, AT_EMPTY_PATH);
      sys.fchmod(fd, meta.mode); // after chown, which clears setuid/setgid
      this.#setXattrs(meta, (n, v) => sys.fsetxattr(fd, n, v));
      sys.futimens(fd, meta.atimeNs, meta.mtimeNs);
    } finally {
      sys.close(fd);
    }
  }

  symlink(path: string, target: string, meta: EntryMeta): void {
    const [dir, name] = split(path);
    const dirFd = this.dir(dir, meta.name);
    this.#markUnpacked(path);
    this.#create(dirFd, name, path, false, () => this.#sys.symlinkat(target, dirFd, name));
    this.#finishNode(dirFd, name, meta, { chmod: false, times: true });
  }

  device(path: string, type: number, header: Header, meta: EntryMeta): void {
    const [dir, name] = split(path);
    const dirFd = this.dir(dir, meta.name);
    this.#markUnpacked(path);
    const major = header.devmajor ?? 0, minor = header.devminor ?? 0;
    this.#create(
      dirFd,
      name,
      path,
      false,
      () => this.#sys.mknodat(dirFd, name, type | meta.mode, major, minor),
    );
    this.#finishNode(dirFd, name, meta, { chmod: true, times: true });
  }

  async hardlink(path: string, linkname: string, meta: EntryMeta): Promise<void> {
    const entry = meta.name;
    if (linkname.startsWith("/")) {
      throw refuse(entry, `the hardlink target ${q(linkname)} is outside the snapshot`);
    }
    let target: string;
    try {
      target = normalizeName(linkname, entry);
    } catch {
      throw refuse(entry, `the hardlink target ${q(linkname)} is outside the snapshot`);
    }
    if (target === "" || target === path) {
      throw refuse(entry, `the hardlink target ${q(linkname)} is not a file`);
    }
    const found = this.#lookup(target, entry);
    if (found === undefined) {
      throw refuse(entry, `the hardlink target ${q(linkname)} does not exist`);
    }
    if (typeOf(found.stat) === S_IFDIR) {
      throw refuse(entry, `the hardlink target ${q(linkname)} is a directory`);
    }
    const [tdir, tname] = split(target);
    if (!found.upper) {
      // The target is in a lower layer: copy it up, so that the link can share its inode.
      const fd = this.dir(tdir, entry);
      await copyNode(found.path, procPath(fd, tname), { sys: this.#sys, stat: found.stat });
    }
    const [dir, name] = split(path);
    const dirFd = this.dir(dir, entry);
    const targetDirFd = this.dir(tdir, entry);
    this.#markUnpacked(path);
    this.#create(
      dirFd,
      name,
      path,
      false,
      () => this.#sys.linkat(targetDirFd, tname, dirFd, name, 0),
    );
  }

  /** Sets the deferred directory times (creating entries inside a directory changed its mtime). */
  finish(): void {
    for (const { path, atimeNs, mtimeNs } of this.#dirTimes) {
      const [dir, name] = split(path);
      let dirFd: number | undefined;
      try {
        dirFd = this.#existingDir(dir, path);
      } catch {
        continue; // replaced by a symlink later in the layer: nothing to do
      }
      if (dirFd === undefined) continue;
      const st = this.#lstatAt(dirFd, name);
      if (st === undefined || typeOf(st) !== S_IFDIR) continue; // deleted or replaced later in the layer
      this.#sys.utimensat(dirFd, name, atimeNs, mtimeNs, AT_SYMLINK_NOFOLLOW);
    }
  }

  syncfs(): void {
    const fd = this.#sys.openat(this.#rootFd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    try {
      this.#sys.syncfs(fd);
    } finally {
      this.#sys.close(fd);
    }
  }
}

function entryMeta(header: Header, rawMeta: Uint8Array | undefined): EntryMeta {
  const pax = (header.pax ?? undefined) as Record<string, string> | undefined;
  const mtimeNs = paxTime(pax?.mtime) ?? BigInt(header.mtime.getTime()) * 1_000_000n;
  let xattrs = new Map<string, Uint8Array>();
  if (hasXattrRecords(pax)) {
    if (rawMeta === undefined) {
      throw refuse(header.name, "its extended header could not be read back");
    }
    xattrs = rawXattrs(rawMeta);
  }
  return {
    name: header.name,
    uid: paxInt(pax?.uid, header.uid),
    gid: paxInt(pax?.gid, header.gid),
    mode: header.mode & 0o7777,
    atimeNs: paxTime(pax?.atime) ?? mtimeNs,
    mtimeNs,
    xattrs,
  };
}

async function drain(data: AsyncIterable<Uint8Array>): Promise<void> {
  for await (const _ of data) {
    // discard
  }
}

/** Resolves when `emitter` emits one of `events`, removing its listeners. */
function once(
  emitter: { once(e: string, f: () => void): unknown; off(e: string, f: () => void): unknown },
  events: string[],
): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      for (const e of events) emitter.off(e, done);
      resolve();
    };
    for (const e of events) emitter.once(e, done);
  });
}

/**
 * Applies the uncompressed layer tar `stream` onto the directory `root` (an
 * active snapshot's directory), streaming, and returns its diff ID and size.
 *
 * Throws InvalidArgument naming the entry for a hostile or malformed layer,
 * and rethrows the stream's own error unchanged when reading it fails. On any
 * failure the directory is left half-applied: remove the active snapshot.
 *
 * @example
 * ```ts
 * const mounts = await snapshotter.prepare(key, parent);
 * try {
 *   const { diffId } = await applyLayerToMounts(mounts, layerStream);
 *   if (diffId !== expected) throw new InvalidArgument("…");
 *   await snapshotter.commit(chainId, key);
 * } catch (err) {
 *   await snapshotter.remove(key);
 *   throw err;
 * }
 * ```
 */
export async function applyLayer(
  root: string,
  stream: AsyncIterable<Uint8Array>,
  options: ApplyLayerOptions = {},
): Promise<ApplyLayerResult> {
  const sys = options.sys ?? libcSyscall();
  const parents = options.parents ?? [];
  const overlay = (options.whiteouts ?? (parents.length > 0 ? "overlay" : "delete")) === "overlay";
  const maxSize = options.maxSize ?? Infinity;
  const signal = options.signal;
  signal?.throwIfAborted();

  const applier = new Applier(root, sys, parents, overlay);
  const extract = tarStream.extract();
  const hash = new Digester("sha256");
  const window = new RawWindow();
  let size = 0;
  let overLimit = false;
  let current = "";
  const tooLarge = () =>
    refuse(current || "(none)", `the layer is larger than the limit of ${maxSize} bytes`);
  let sourceError: { error: unknown } | undefined;

  // The parser and the entries' data hold views of the slabs: a slab is free again once the
  // stream has been applied past its end (`applied`), which only moves forward.
  const free: Uint8Array[] = [];
  const inUse: { slab: Uint8Array; end: number }[] = [];
  let applied = 0;
  let parsed = 0;
  let slab: Uint8Array | undefined;
  let slabLength = 0;
  const advance = (offset: number) => {
    if (offset > applied) applied = offset;
  };
  const takeSlab = (): Uint8Array => {
    while (inUse.length > 0 && inUse[0]!.end <= applied) free.push(inUse.shift()!.slab);
    return free.pop() ?? new Uint8Array(takeBuffer(SLAB));
  };
  const flush = (): Uint8Array => {
    const out = slab!.subarray(0, slabLength);
    parsed += slabLength;
    inUse.push({ slab: slab!, end: parsed });
    slab = undefined;
    slabLength = 0;
    return out;
  };
  /** Writes to the parser, waiting while it is full; false when it was destroyed meanwhile. */
  const write = async (chunk: Uint8Array): Promise<boolean> => {
    window.push(chunk);
    if (!extract.write(chunk)) await once(extract, ["drain", "close"]);
    return !extract.destroyed;
  };
  /** Copies a chunk of the source (valid only until the next is read) into slabs, writing the full ones. */
  const copy = async (chunk: Uint8Array): Promise<boolean> => {
    for (let at = 0; at < chunk.length;) {
      slab ??= takeSlab();
      const n = Math.min(chunk.length - at, slab.length - slabLength);
      slab.set(n === chunk.length ? chunk : chunk.subarray(at, at + n), slabLength);
      slabLength += n;
      at += n;
      if (slabLength === slab.length && !(await write(flush()))) return false;
    }
    return true;
  };

  const source = stream[Symbol.asyncIterator]();
  const feeding = (async () => {
    let finished = false;
    try {
      for (;;) {
        if (extract.destroyed) return;
        signal?.throwIfAborted();
        let next: IteratorResult<Uint8Array>;
        try {
          next = await source.next();
        } catch (err) {
          sourceError = { error: err };
          throw err;
        }
        if (next.done) {
          finished = true;
          break;
        }
        const chunk = next.value;
        size += chunk.length;
        hash.update(chunk);
        if (size > maxSize) {
          // Stop reading. The parser still gets this chunk, so that the entry crossing the
          // limit is seen and named; past the last entry the refusal names the last one.
          overLimit = true;
          if (!(await copy(chunk))) return;
          if (slabLength > 0 && !(await write(flush()))) return;
          extract.end(undefined);
          return;
        }
        if (!(await copy(chunk))) return;
      }
      if (slabLength > 0 && !(await write(flush()))) return;
      extract.end(undefined);
    } catch (err) {
      if (!sourceError && !(err instanceof TugError)) sourceError = { error: err };
      extract.destroy(err as Error);
    } finally {
      if (!finished) await source.return?.().catch(() => {});
    }
  })();

  const entries = (extract as AsyncIterable<Source>)[Symbol.asyncIterator]();
  let entryEnd = 0;
  try {
    for (;;) {
      let next: IteratorResult<Source>;
      try {
        next = await entries.next();
      } catch (err) {
        if (err instanceof TugError || sourceError || signal?.aborted) throw err;
        if (overLimit) throw tooLarge();
        const at = current === "" ? "" : ` after entry ${q(current)}`;
        throw new InvalidArgument(`Cannot read layer: ${(err as Error).message}${at}`, {
          cause: err,
        });
      }
      if (next.done) break;
      signal?.throwIfAborted();
      applier.evict();
      const entry = next.value;
      const header = entry.header;
      current = header.name;
      // The raw extended headers sit between the previous entry's data and this entry's header.
      const meta = hasXattrRecords(header.pax as Record<string, string> | null)
        ? window.slice(entryEnd, entry.offset)
        : undefined;
      entryEnd = entry.offset + BLOCK + Math.ceil(header.size / BLOCK) * BLOCK;
      window.keepFrom(entryEnd);
      advance(entry.offset); // what precedes the header is parsed, and its raw extended headers copied
      if (entryEnd > maxSize) throw tooLarge(); // refused before any of its data is written
      try {
        await applyEntry(
          applier,
          header,
          applying(
            entry as AsyncIterable<unknown> as AsyncIterable<Uint8Array>,
            entry.offset + BLOCK,
            advance,
          ),
          meta,
        );
      } catch (err) {
        if (err instanceof TugError || sourceError || signal?.aborted) throw err;
        if (overLimit) throw tooLarge();
        if (!isSystemError(err)) {
          // The parser failed while handing over the entry's data (a truncated or corrupt stream).
          throw new InvalidArgument(
            `Cannot read layer: ${(err as Error).message} in entry ${q(current)}`,
            {
              cause: err,
            },
          );
        }
        const why = errnoOf(err) === "ENOSPC"
          ? "no space left on the device"
          : (err as Error).message;
        throw new Internal(`Cannot apply layer entry ${q(current)}: ${why}`, { cause: err });
      }
    }
    await feeding;
    // The parser is done with every slab: they go back to the pool for the next layer.
    for (const { slab } of inUse.splice(0)) giveBuffer(slab.buffer as ArrayBuffer);
    for (const s of free.splice(0)) giveBuffer(s.buffer as ArrayBuffer);
    if (overLimit) throw tooLarge();
    applier.finish();
    if (options.sync) applier.syncfs();
  } catch (err) {
    extract.destroy();
    feeding.catch(() => {});
    if (sourceError) throw sourceError.error;
    if (signal?.aborted) throw signal.reason;
    throw err;
  } finally {
    applier.close();
  }
  return { diffId: hash.digest(), size };
}

/** An entry's data, telling `advance` the stream offset up to which each chunk has been applied. */
async function* applying(
  data: AsyncIterable<Uint8Array>,
  start: number,
  advance: (offset: number) => void,
): AsyncGenerator<Uint8Array> {
  let at = start;
  for await (const chunk of data) {
    yield chunk;
    at += chunk.length;
    advance(at);
  }
}

async function applyEntry(
  applier: Applier,
  header: Header,
  data: AsyncIterable<Uint8Array>,
  rawMeta: Uint8Array | undefined,
): Promise<void> {
  const name = header.name;
  const path = normalizeName(name);
  const type = header.type as string | null;
  const pax = header.pax as Record<string, string> | null | undefined;
  if (pax && Object.keys(pax).some((k) => k.startsWith("GNU.sparse."))) {
    throw refuse(name, "GNU sparse files are not supported");
  }
  const [dir, base] = split(path);
  const whiteout = base.startsWith(WHITEOUT);
  const isFile = (type === "file" || type === "contiguous-file") && !whiteout && path !== "";
  if (!isFile) await drain(data);
  if (path === "") return; // the root itself ("./"): containerd ignores it too
  if (path.startsWith(META) && path !== OPAQUE) return; // aufs metadata (.wh..wh.plnk, …): not part of the tree
  if (whiteout) {
    if (base === OPAQUE) applier.opaque(dir, name);
    else if (!base.startsWith(META)) applier.whiteout(dir, base.slice(WHITEOUT.length), name);
    return;
  }
  const meta = entryMeta(header, rawMeta);
  switch (type) {
    case "file":
    case "contiguous-file":
      return await applier.file(path, meta, data);
    case "directory":
      return applier.directory(path, meta);
    case "symlink":
      return applier.symlink(path, header.linkname ?? "", meta);
    case "link":
      return await applier.hardlink(path, header.linkname ?? "", meta);
    case "character-device":
      return applier.device(path, S_IFCHR, header, meta);
    case "block-device":
      return applier.device(path, S_IFBLK, header, meta);
    case "fifo":
      return applier.device(path, S_IFIFO, header, meta);
    default:
      throw refuse(name, `the entry type ${q(String(type))} is not supported`);
  }
}
