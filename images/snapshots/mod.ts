/**
 * tug's snapshotters: `overlayfs` (the default) and `native` (copies, for
 * filesystems without overlayfs). Both keep containerd's model: `prepare`
 * makes a writable active snapshot on a committed parent, `view` a read-only
 * one, `commit` turns an active snapshot into a committed one (image layers
 * are committed under their chain ID); `prepare`/`view`/`mounts` return Mount
 * records and never mount. {@link mountAll} performs the records.
 *
 * @example
 * ```ts
 * const sn = await openOverlaySnapshotter("/var/lib/tug/snapshots/overlayfs");
 * const mounts = await sn.prepare("ctr-1", chainId);
 * mountAll(mounts, "/run/tug/ctr-1/rootfs");
 * ```
 *
 * @module
 */

export { NativeSnapshotter, openNativeSnapshotter } from "./native.ts";
export {
  openOverlaySnapshotter,
  OverlaySnapshotter,
  type OverlaySnapshotterOptions,
} from "./overlay.ts";
export { mountAll, type MountOptions, parseOptions, unmountAll } from "./mount.ts";
export { copyAttributes, copyNode, type CopyOptions, copyTree } from "./copy.ts";
export { diskUsage } from "./_dir_snapshotter.ts";
