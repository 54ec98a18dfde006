/**
 * Unpacking image layers into snapshots: {@link applyLayer} applies an
 * uncompressed layer tar stream to a directory (streaming, refusing hostile
 * entries, returning the diff ID); {@link unpackLayer} does the whole
 * prepare → apply → verify → commit step against a snapshotter and removes
 * the active snapshot when anything fails; {@link chainIds} computes the
 * snapshot names of a layer stack.
 *
 * @module
 */

export {
  applyLayer,
  type ApplyLayerOptions,
  type ApplyLayerResult,
  normalizeName,
  type WhiteoutMode,
} from "./apply.ts";
export {
  applyLayerToMounts,
  type ApplyToMountsOptions,
  chainIds,
  unpackLayer,
  type UnpackLayerOptions,
} from "./unpack.ts";
