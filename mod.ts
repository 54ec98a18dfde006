/**
 * tug's public typed API. The client for the daemon arrives with the daemon;
 * for now this exports the error classes and the data types shared with it.
 *
 * @module
 */
export * from "./errors.ts";
export type { Spec, State, Status } from "./runtime/spec.ts";
export type { ContentInfo, Descriptor, Digest, Mount, Platform, SnapshotInfo } from "./images/types.ts";
export { OCI_VERSION, VERSION } from "./version.ts";
