import { NotFound } from "../../errors.ts";
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { type Descriptor, MEDIA_TYPES } from "../types.ts";
import { ingestRef, selectManifests } from "./fetch.ts";

const m = (digit: string, platform?: Descriptor["platform"]): Descriptor => ({
  mediaType: MEDIA_TYPES.ociManifest,
  digest: `sha256:${digit.repeat(64)}`,
  size: 1,
  ...(platform ? { platform } : {}),
});

const LIST = [
  m("1", { os: "linux", architecture: "386" }),
  m("2", { os: "linux", architecture: "arm64", variant: "v8" }),
  m("3", { os: "linux", architecture: "amd64" }),
  m("4", { os: "unknown", architecture: "unknown" }),
  m("5", { os: "linux", architecture: "arm", variant: "v6" }),
];

Deno.test("selectManifests() picks the best platform match, or all", () => {
  assertEquals(
    selectManifests(LIST, { os: "linux", architecture: "amd64" }, "x").map((d) => d.digest[7]),
    ["3"],
  );
  assertEquals(
    selectManifests(LIST, { os: "linux", architecture: "arm64" }, "x").map((d) => d.digest[7]),
    ["2"],
  );
  assertEquals(
    selectManifests(LIST, { os: "linux", architecture: "arm", variant: "v7" }, "x").map((d) =>
      d.digest[7]
    ),
    ["5"],
  );
  assertEquals(
    selectManifests(LIST.slice(0, 1), { os: "linux", architecture: "amd64" }, "x").map((d) =>
      d.digest[7]
    ),
    ["1"],
  );
  assertEquals(selectManifests(LIST, "all", "x").length, 5);
  // A manifest without a platform is a candidate, after those that match.
  assertEquals(
    selectManifests([m("6"), LIST[2]!], { os: "linux", architecture: "amd64" }, "x").map((d) =>
      d.digest[7]
    ),
    ["3"],
  );
  const err = assertThrows(
    () => selectManifests(LIST, { os: "linux", architecture: "s390x" }, "index reg/x:1"),
    NotFound,
    "linux/s390x",
  );
  assertEquals(
    err.message.includes("index reg/x:1") && err.message.includes("linux/arm64/v8"),
    true,
    err.message,
  );
});

Deno.test("ingestRef() names ingests by kind and digest", () => {
  const d = `sha256:${"a".repeat(64)}`;
  assertEquals(ingestRef({ mediaType: MEDIA_TYPES.ociIndex, digest: d, size: 1 }), `index-${d}`);
  assertEquals(
    ingestRef({ mediaType: MEDIA_TYPES.dockerManifest, digest: d, size: 1 }),
    `manifest-${d}`,
  );
  assertEquals(
    ingestRef({ mediaType: MEDIA_TYPES.dockerConfig, digest: d, size: 1 }),
    `config-${d}`,
  );
  assertEquals(
    ingestRef({ mediaType: MEDIA_TYPES.ociLayerZstd, digest: d, size: 1 }),
    `layer-${d}`,
  );
});
