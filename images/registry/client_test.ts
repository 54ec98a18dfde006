import { InvalidArgument, NotImplemented } from "../../errors.ts";
import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import { digestOf } from "../content/digest.ts";
import { MEDIA_TYPES } from "../types.ts";
import {
  isIndexType,
  isManifestType,
  MANIFEST_ACCEPT,
  manifestMediaType,
  refuseSchema1,
  verifyBytes,
} from "./client.ts";

const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));

Deno.test("manifestMediaType() trusts a manifest Content-Type and sniffs generic ones", () => {
  assertEquals(manifestMediaType(`${MEDIA_TYPES.ociIndex}; charset=utf-8`), MEDIA_TYPES.ociIndex);
  assertEquals(
    manifestMediaType("application/json", enc({ mediaType: MEDIA_TYPES.dockerManifest })),
    MEDIA_TYPES.dockerManifest,
  );
  assertEquals(
    manifestMediaType("text/plain", enc({ schemaVersion: 2, manifests: [] })),
    MEDIA_TYPES.ociIndex,
  );
  assertEquals(
    manifestMediaType(null, enc({ schemaVersion: 2, config: {}, layers: [] })),
    MEDIA_TYPES.ociManifest,
  );
  assertEquals(
    manifestMediaType("application/json", enc({ schemaVersion: 1, fsLayers: [] })),
    "application/vnd.docker.distribution.manifest.v1+json",
  );
});

Deno.test("refuseSchema1() refuses Docker schema 1 with NotImplemented naming the image", () => {
  assertThrows(
    () =>
      refuseSchema1(
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "docker.io/library/old:1",
      ),
    NotImplemented,
    "docker.io/library/old:1",
  );
  refuseSchema1(MEDIA_TYPES.ociManifest, "x");
  assert(isManifestType(MEDIA_TYPES.dockerManifestList));
  assert(isIndexType(MEDIA_TYPES.dockerManifestList) && !isIndexType(MEDIA_TYPES.ociManifest));
  assert(!MANIFEST_ACCEPT.includes("distribution.manifest.v1"));
});

Deno.test("verifyBytes() names the object and both digests on a mismatch", () => {
  const bytes = new TextEncoder().encode("manifest");
  verifyBytes(bytes, {
    mediaType: MEDIA_TYPES.ociManifest,
    digest: digestOf(bytes),
    size: bytes.length,
  }, "m");
  const other = digestOf("other");
  const err = assertThrows(
    () =>
      verifyBytes(
        bytes,
        { mediaType: MEDIA_TYPES.ociManifest, digest: other, size: bytes.length },
        "manifest x",
      ),
    InvalidArgument,
    other,
  );
  assert(err.message.includes(digestOf(bytes)) && err.message.includes("manifest x"));
  assertThrows(
    () => verifyBytes(bytes, { mediaType: "", digest: digestOf(bytes), size: 3 }, "m"),
    InvalidArgument,
    "size mismatch",
  );
});
