/**
 * tug's content store: the local implementation of the ContentStore role
 * interfaces (images/types.ts) and digest helpers. The conformance suite is in
 * `conformance.ts` (test-only; not re-exported here).
 *
 * @module
 */
export { LocalContentStore, type LocalContentStoreOptions } from "./local.ts";
export {
  type DigestAlgorithm,
  Digester,
  digestOf,
  isDigest,
  type ParsedDigest,
  parseDigest,
} from "./digest.ts";
