/**
 * Unpacking a layer into a snapshotter: prepare an active snapshot on the
 * parent chain, apply the layer into it, check its diff ID, commit it under
 * its chain ID. On any failure the active snapshot is removed, so nothing
 * half-applied stays behind.
 *
 * @module
 */

import {
  AlreadyExists,
  FailedPrecondition,
  InvalidArgument,
  NotImplemented,
} from "../../errors.ts";
import { digestOf } from "../content/digest.ts";
import type { Digest, Mount, Snapshotter } from "../types.ts";
import { applyLayer, type ApplyLayerOptions, type ApplyLayerResult } from "./apply.ts";

/** Options for {@link applyLayerToMounts}: those of applyLayer that the mounts do not decide. */
export type ApplyToMountsOptions = Omit<ApplyLayerOptions, "parents" | "whiteouts">;

/**
 * Applies a layer to the active snapshot described by `mounts` (what
 * `prepare` returned) without mounting anything: a writable bind mount is
 * applied into its source with whiteouts as deletions (native snapshots, and
 * overlayfs snapshots without a parent); an overlay mount into its
 * `upperdir`, with overlay whiteouts, reading its `lowerdir`s.
 */
export function applyLayerToMounts(
  mounts: readonly Mount[],
  stream: AsyncIterable<Uint8Array>,
  options: ApplyToMountsOptions = {},
): Promise<ApplyLayerResult> {
  if (mounts.length !== 1) {
    return Promise.reject(
      new NotImplemented(
        `Cannot apply a layer to ${mounts.length} mounts: tug applies to exactly one`,
      ),
    );
  }
  const m = mounts[0]!;
  if (m.type === "bind") {
    if (m.options.includes("ro")) {
      return Promise.reject(
        new FailedPrecondition(
          `Cannot apply a layer to ${JSON.stringify(m.source)}: the mount is read-only`,
        ),
      );
    }
    return applyLayer(m.source, stream, { ...options, parents: [], whiteouts: "delete" });
  }
  if (m.type === "overlay") {
    const value = (key: string) =>
      m.options.find((o) => o.startsWith(`${key}=`))?.slice(key.length + 1);
    const upper = value("upperdir");
    if (upper === undefined) {
      return Promise.reject(
        new FailedPrecondition(
          "Cannot apply a layer to an overlay without an upper directory: it is read-only",
        ),
      );
    }
    const parents = value("lowerdir")?.split(":") ?? [];
    return applyLayer(upper, stream, { ...options, parents, whiteouts: "overlay" });
  }
  return Promise.reject(
    new NotImplemented(`Cannot apply a layer to a ${JSON.stringify(m.type)} mount`),
  );
}

/** Options for {@link unpackLayer}. */
export interface UnpackLayerOptions extends ApplyToMountsOptions {
  /** The chain ID of the layers below (none for the first layer). */
  parent?: string;
  /** The diff ID the image config lists for this layer: a different one is refused and nothing is committed. */
  expectedDiffId?: Digest;
  /** Key of the active snapshot while applying (default `extract-<random>-<chainId>`). */
  key?: string;
  /** Labels of the committed snapshot. */
  labels?: Record<string, string>;
}

/**
 * Unpacks the uncompressed layer `stream` into `snapshotter` as the committed
 * snapshot `chainId` (on `options.parent`), and returns the layer's diff ID
 * and size. On failure the active snapshot is removed before the error is
 * rethrown; when another unpack committed `chainId` first, the result is
 * kept and this one's active snapshot removed.
 *
 * @example
 * ```ts
 * const ids = chainIds(config.rootfs.diff_ids);
 * for (const [i, layer] of layers.entries()) {
 *   await unpackLayer(snapshotter, ids[i]!, decompressed(layer), {
 *     parent: ids[i - 1], expectedDiffId: config.rootfs.diff_ids[i],
 *   });
 * }
 * ```
 */
export async function unpackLayer(
  snapshotter: Snapshotter,
  chainId: string,
  stream: AsyncIterable<Uint8Array>,
  options: UnpackLayerOptions = {},
): Promise<ApplyLayerResult> {
  const { parent, expectedDiffId, key: givenKey, labels, ...applyOptions } = options;
  const key = givenKey ?? `extract-${crypto.randomUUID()}-${chainId}`;
  let mounts: Mount[];
  try {
    mounts = await snapshotter.prepare(key, parent);
  } catch (err) {
    await stream[Symbol.asyncIterator]().return?.();
    throw err;
  }
  try {
    const result = await applyLayerToMounts(mounts, stream, applyOptions);
    if (expectedDiffId !== undefined && result.diffId !== expectedDiffId) {
      throw new InvalidArgument(
        `Refused layer ${chainId}: its diff ID is ${result.diffId}, but the image config says ${expectedDiffId}`,
      );
    }
    try {
      await snapshotter.commit(chainId, key, labels === undefined ? {} : { labels });
    } catch (err) {
      if (!(err instanceof AlreadyExists)) throw err;
      await snapshotter.remove(key);
    }
    return result;
  } catch (err) {
    await snapshotter.remove(key).catch(() => {});
    throw err;
  }
}

/**
 * The chain IDs of a stack of layers from their diff IDs (OCI image spec):
 * the first is its diff ID, each next one `sha256(<previous chain ID> + " " + <diff ID>)`.
 */
export function chainIds(diffIds: readonly Digest[]): Digest[] {
  const out: Digest[] = [];
  for (const id of diffIds) {
    const prev = out[out.length - 1];
    out.push(
      prev === undefined ? id : digestOf(`${prev} ${id}`),
    );
  }
  return out;
}
