/**
 * The `native` snapshotter, for filesystems where overlayfs cannot be used:
 * every snapshot's `fs/` holds the whole tree, made by copying its parent's
 * (ownership, modes, xattrs, hard links, devices, symlinks and times kept,
 * see copy.ts). Mounts are binds of `fs/`, read-write for active snapshots
 * and read-only for views. Layers are applied into `fs/` with whiteouts as
 * deletions.
 *
 * @module
 */

import { resolve } from "../../util/path.ts";
import type { Mount, SnapshotKind } from "../types.ts";
import type { SnapshotRow } from "./_store.ts";
import { DirSnapshotter } from "./_dir_snapshotter.ts";
import { copyTree } from "./copy.ts";

/** The native (copying) snapshotter (see the module documentation). */
export class NativeSnapshotter extends DirSnapshotter {
  readonly name = "native";

  /** Use {@link openNativeSnapshotter}. */
  constructor(root: string) {
    super(resolve(root));
  }

  protected async populate(
    dir: string,
    parent: number | undefined,
    _kind: SnapshotKind,
  ): Promise<void> {
    if (parent !== undefined) await copyTree(this.fs(parent), `${dir}/fs`);
  }

  protected mountsOf(row: SnapshotRow, _ancestors: number[]): Mount[] {
    return [{
      type: "bind",
      source: this.fs(row.id),
      options: [row.kind === "active" ? "rw" : "ro", "rbind"],
    }];
  }
}

/** Opens (creating when needed) the native snapshotter rooted at `root`. */
export function openNativeSnapshotter(root: string): Promise<NativeSnapshotter> {
  try {
    return Promise.resolve(new NativeSnapshotter(root));
  } catch (err) {
    return Promise.reject(err);
  }
}
