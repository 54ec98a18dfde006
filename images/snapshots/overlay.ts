/**
 * The `overlayfs` snapshotter (tug's default), after containerd's: each
 * snapshot is a directory with `fs/` (its own layer) and `work/` (overlayfs'
 * scratch space); an active snapshot on top of committed parents is an
 * overlay mount with the parents' `fs/` as lower directories (nearest first),
 * its own `fs/` as the upper directory. Layers are applied straight into the
 * upper directory (images/unpack), with overlay whiteouts.
 *
 * | snapshot | parents | mounts |
 * |---|---|---|
 * | active | none | `bind` of `fs/`, `rbind,rw` |
 * | view | none | `bind` of `fs/`, `rbind,ro` |
 * | active | ≥ 1 | `overlay`: `workdir=`, `upperdir=`, `lowerdir=` |
 * | view | 1 | `bind` of the parent's `fs/`, `rbind,ro` |
 * | view | ≥ 2 | `overlay`: `lowerdir=` only (read-only by nature) |
 *
 * Nothing is mounted here: `prepare`/`view`/`mounts` return Mount records,
 * and `mountAll` (mount.ts) performs them, coping with lower-directory lists
 * longer than the kernel's one page of mount options.
 *
 * @module
 */

import { resolve } from "../../util/path.ts";
import { InvalidArgument } from "../../errors.ts";
import type { Mount, SnapshotKind } from "../types.ts";
import type { SnapshotRow } from "./_store.ts";
import { DirSnapshotter } from "./_dir_snapshotter.ts";

/** Options for {@link openOverlaySnapshotter}. */
export interface OverlaySnapshotterOptions {
  /**
   * Add `index=off` to overlay mounts (default: when the kernel has the
   * overlay `index` feature, as containerd does: an index ties lower layers
   * to one upper layer, which shared image layers cannot allow).
   */
  indexOff?: boolean;
}

function kernelHasIndex(): boolean {
  try {
    Deno.statSync("/sys/module/overlay/parameters/index");
    return true;
  } catch {
    return false;
  }
}

/** The overlayfs snapshotter (see the module documentation). */
export class OverlaySnapshotter extends DirSnapshotter {
  readonly name = "overlayfs";
  readonly #indexOff: boolean;

  /** Use {@link openOverlaySnapshotter}. */
  constructor(root: string, options: OverlaySnapshotterOptions = {}) {
    const abs = resolve(root);
    if (/[,:]/.test(abs)) {
      throw new InvalidArgument(
        `Invalid overlayfs snapshotter root ${
          JSON.stringify(abs)
        }: it must not contain "," or ":" (overlay mount option syntax)`,
      );
    }
    super(abs);
    this.#indexOff = options.indexOff ?? kernelHasIndex();
  }

  protected populate(dir: string, parent: number | undefined, _kind: SnapshotKind): Promise<void> {
    Deno.mkdirSync(`${dir}/work`, { mode: 0o711 });
    if (parent !== undefined) {
      // The merged root shows the upper directory's owner: keep the parent's.
      const st = Deno.statSync(this.fs(parent));
      Deno.chownSync(`${dir}/fs`, st.uid, st.gid);
    }
    return Promise.resolve();
  }

  protected mountsOf(row: SnapshotRow, ancestors: number[]): Mount[] {
    const own = this.fs(row.id);
    if (ancestors.length === 0) {
      return [{
        type: "bind",
        source: own,
        options: [row.kind === "active" ? "rw" : "ro", "rbind"],
      }];
    }
    const lower = `lowerdir=${ancestors.map((id) => this.fs(id)).join(":")}`;
    const options = this.#indexOff ? ["index=off"] : [];
    if (row.kind === "active") {
      options.push(`workdir=${this.dir(row.id)}/work`, `upperdir=${own}`, lower);
      return [{ type: "overlay", source: "overlay", options }];
    }
    if (ancestors.length === 1) {
      return [{ type: "bind", source: this.fs(ancestors[0]!), options: ["ro", "rbind"] }];
    }
    options.push(lower);
    return [{ type: "overlay", source: "overlay", options }];
  }
}

/**
 * Opens (creating when needed) the overlayfs snapshotter rooted at `root`,
 * e.g. `/var/lib/tug/snapshots/overlayfs`.
 */
export function openOverlaySnapshotter(
  root: string,
  options: OverlaySnapshotterOptions = {},
): Promise<OverlaySnapshotter> {
  try {
    return Promise.resolve(new OverlaySnapshotter(root, options));
  } catch (err) {
    return Promise.reject(err);
  }
}
