/**
 * Internal to images/: chain IDs, and unpacking one layer into a snapshot
 * (prepare an active snapshot on the parent chain, apply the layer into the
 * directory its Mount records name, check the diff ID, commit it under its
 * chain ID; remove the active snapshot on any failure).
 *
 * @module
 */

import { AlreadyExists, Internal, InvalidArgument } from "../errors.ts";
import { digestOf } from "./content/digest.ts";
import { decompressLayer } from "./registry/decompress.ts";
import type { Descriptor, Digest, Mount, Snapshotter } from "./types.ts";
import { applyLayer, type ApplyLayerResult } from "./unpack/apply.ts";

/** The chain IDs of layers with diff IDs `diffIds` (OCI image spec: chainID(n) = sha256(chainID(n-1) + " " + diffID(n))). */
export function chainIds(diffIds: readonly Digest[]): Digest[] {
  const out: Digest[] = [];
  for (const d of diffIds) out.push(out.length === 0 ? d : digestOf(`${out[out.length - 1]} ${d}`));
  return out;
}

/** The directory a layer is applied to, and the lower layers, from an active snapshot's mounts. */
function target(mounts: Mount[]): { root: string; parents: string[]; overlay: boolean } {
  const m = mounts[0];
  if (mounts.length !== 1 || !m) {
    throw new Internal(`Unpack layer: expected one mount, got ${mounts.length}`);
  }
  if (m.type === "bind") return { root: m.source, parents: [], overlay: false };
  if (m.type === "overlay") {
    const upper = m.options.find((o) => o.startsWith("upperdir="))?.slice("upperdir=".length);
    const lower = m.options.find((o) => o.startsWith("lowerdir="))?.slice("lowerdir=".length);
    if (!upper) throw new Internal("Unpack layer: the overlay mount has no upperdir");
    return { root: upper, parents: lower ? lower.split(":") : [], overlay: true };
  }
  throw new Internal(`Unpack layer: cannot apply a layer to a ${m.type} mount`);
}

/** Options for {@link unpackLayer}. */
export interface UnpackLayerOptions {
  /** The committed parent chain (undefined for the first layer). */
  parent?: string;
  /** The chain ID to commit as. */
  chainId: Digest;
  /** The diff ID the config expects. */
  diffId: Digest;
  /** Labels for the committed snapshot. */
  labels?: Record<string, string>;
  maxSize?: number;
  signal?: AbortSignal;
}

/**
 * Unpacks `layer` (its compressed bytes in `stream`) into `sn` as
 * `options.chainId`. A snapshot committed meanwhile by someone else counts as
 * success. Throws InvalidArgument when the diff ID does not match.
 */
export async function unpackLayer(
  sn: Snapshotter,
  layer: { descriptor: Descriptor; stream: ReadableStream<Uint8Array> },
  options: UnpackLayerOptions,
): Promise<ApplyLayerResult | undefined> {
  const key = `extract-${Date.now()}-${crypto.randomUUID().slice(0, 8)} ${options.chainId}`;
  let prepared = false;
  try {
    const mounts = await sn.prepare(key, options.parent, {
      labels: { "containerd.io/snapshot.ref": options.chainId },
    });
    prepared = true;
    const t = target(mounts);
    const stream = decompressLayer(layer.descriptor.mediaType, layer.stream);
    const result = await applyLayer(t.root, stream, {
      parents: t.parents,
      whiteouts: t.overlay && t.parents.length > 0 ? "overlay" : "delete",
      ...(options.maxSize !== undefined ? { maxSize: options.maxSize } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    if (result.diffId !== options.diffId) {
      throw new InvalidArgument(
        `Unpack layer ${layer.descriptor.digest}: its content is ${result.diffId}, but the image config says ${options.diffId}`,
      );
    }
    try {
      await sn.commit(options.chainId, key, options.labels ? { labels: options.labels } : {});
      prepared = false;
    } catch (err) {
      if (!(err instanceof AlreadyExists)) throw err;
    }
    return result;
  } catch (err) {
    await layer.stream.cancel().catch(() => {});
    throw err;
  } finally {
    if (prepared) await sn.remove(key).catch(() => {});
  }
}
