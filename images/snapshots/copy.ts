/**
 * Copying directory trees with everything a root filesystem needs kept:
 * ownership, modes (setuid, sticky), extended attributes (file capabilities),
 * hard links, device nodes, fifos, sockets, symlinks and nanosecond times. The
 * native snapshotter copies a parent's tree with {@link copyTree}; the layer
 * applier copies single nodes up from lower layers with {@link copyNode} and
 * {@link copyAttributes}.
 *
 * Symlinks are never followed: every source node is inspected with lstat
 * (statx without AT_SYMLINK_FOLLOW) and recreated as what it is; target
 * directories are created by the copy itself, so nothing is written through a
 * link. Overlay-internal attributes (`trusted.overlay.*`) are not copied: they
 * describe a layer's position in a stack, not the file.
 *
 * @module
 */

import {
  AT_FDCWD,
  AT_SYMLINK_NOFOLLOW,
  ERRNO,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
} from "../../ffi/constants.ts";
import { libcSyscall } from "../../ffi/libc.ts";
import type { FileStat, Syscall } from "../../ffi/syscall.ts";
import { SyscallError } from "../../ffi/syscall.ts";

/** Options for the copy functions. */
export interface CopyOptions {
  /** The system-call layer (default: glibc). */
  sys?: Syscall;
}

/** True for attributes that are copied: everything but overlayfs' own. */
export function isCopiedXattr(name: string): boolean {
  return !name.startsWith("trusted.overlay.");
}

function unsupported(err: unknown): boolean {
  return err instanceof SyscallError &&
    (err.errnoName === "EOPNOTSUPP" || err.errnoName === "ENODATA");
}

/**
 * Copies owner, mode, extended attributes and times of `source` onto `target`
 * (both paths; neither final component is followed). `stat` is the source's
 * lstat when the caller has it already.
 */
export function copyAttributes(
  source: string,
  target: string,
  options: CopyOptions & { stat?: FileStat } = {},
): void {
  const sys = options.sys ?? libcSyscall();
  const st = options.stat ?? sys.stat(source, false);
  const isLink = (st.mode & S_IFMT) === S_IFLNK;
  sys.fchownat(AT_FDCWD, target, st.uid, st.gid, AT_SYMLINK_NOFOLLOW);
  if (!isLink) sys.chmod(target, st.mode & 0o7777);
  let names: string[] = [];
  try {
    names = sys.llistxattr(source);
  } catch (err) {
    if (!unsupported(err)) throw err;
  }
  for (const name of names) {
    if (!isCopiedXattr(name)) continue;
    try {
      sys.lsetxattr(target, name, sys.lgetxattr(source, name));
    } catch (err) {
      if (!unsupported(err)) throw err;
    }
  }
  sys.utimensat(AT_FDCWD, target, st.atimeNs, st.mtimeNs, AT_SYMLINK_NOFOLLOW);
}

/**
 * Copies one non-directory node (regular file, symlink, device, fifo, socket)
 * from `source` to the new path `target`, with its attributes.
 */
export async function copyNode(
  source: string,
  target: string,
  options: CopyOptions & { stat?: FileStat } = {},
): Promise<void> {
  const sys = options.sys ?? libcSyscall();
  const st = options.stat ?? sys.stat(source, false);
  const type = st.mode & S_IFMT;
  if (type === S_IFDIR) throw new SyscallError("copy", ERRNO.EISDIR!, JSON.stringify(source));
  if (type === S_IFREG) {
    await Deno.copyFile(source, target);
  } else if (type === S_IFLNK) {
    Deno.symlinkSync(Deno.readLinkSync(source), target);
  } else {
    sys.mknod(target, type | (st.mode & 0o7777), st.rdevMajor, st.rdevMinor);
  }
  copyAttributes(source, target, { sys, stat: st });
}

/**
 * Copies the contents of the directory `source` into the existing directory
 * `target`, and the attributes of `source` onto `target`. Hard links inside
 * the tree stay hard links.
 */
export async function copyTree(
  source: string,
  target: string,
  options: CopyOptions = {},
): Promise<void> {
  const sys = options.sys ?? libcSyscall();
  const links = new Map<string, string>();
  const dirs: { source: string; target: string; stat: FileStat }[] = [];

  const walk = async (src: string, dst: string): Promise<void> => {
    for await (const entry of Deno.readDir(src)) {
      const s = `${src}/${entry.name}`;
      const d = `${dst}/${entry.name}`;
      const st = sys.stat(s, false);
      const type = st.mode & S_IFMT;
      if (type === S_IFDIR) {
        Deno.mkdirSync(d, { mode: 0o700 });
        await walk(s, d);
        dirs.push({ source: s, target: d, stat: st });
        continue;
      }
      if (st.nlink > 1) {
        const id = `${st.devMajor}:${st.devMinor}:${st.ino}`;
        const first = links.get(id);
        if (first !== undefined) {
          Deno.linkSync(first, d);
          continue;
        }
        links.set(id, d);
      }
      await copyNode(s, d, { sys, stat: st });
    }
  };

  await walk(source, target);
  dirs.push({ source, target, stat: sys.stat(source, false) });
  // Directories last, innermost first: creating their children changed their times.
  for (const dir of dirs) copyAttributes(dir.source, dir.target, { sys, stat: dir.stat });
}
