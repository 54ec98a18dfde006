/**
 * Image archives: import of OCI image-layout tars and `docker save` tars
 * (plain, gzip or zstd) into a content store, and export of images as one tar
 * that both `docker load` and OCI tools (skopeo, umoci) read.
 *
 * @module
 */

export {
  type ArchiveFormat,
  importArchive,
  type ImportedImage,
  type ImportOptions,
  type ImportResult,
} from "./import.ts";
export { exportArchive, type ExportImage, type ExportOptions } from "./export.ts";
