import { InvalidArgument } from "../../errors.ts";
import { assertThrows } from "../../tests/assert.ts";
import { validateDescriptor, validateIdentifier, validateLabels } from "./validate.ts";

Deno.test("validateIdentifier() accepts containerd's identifiers", () => {
  for (
    const ok of ["default", "k8s.io", "a", "A1", "my_container-2.x", "0", "a".repeat(76), "moby"]
  ) {
    validateIdentifier("namespace", ok);
  }
});

Deno.test("validateIdentifier() rejects what containerd rejects, naming the value", () => {
  for (
    const bad of [
      "",
      "-a",
      "a-",
      ".a",
      "a..b",
      "a--b",
      "a_",
      "a b",
      "a/b",
      "ä",
      "a:b",
      "../x",
      "a".repeat(77),
    ]
  ) {
    assertThrows(
      () => validateIdentifier("container id", bad),
      InvalidArgument,
      "Invalid container id",
    );
  }
});

Deno.test("validateLabels() rejects empty keys and labels over 4096 bytes", () => {
  validateLabels({ a: "b", ["k".repeat(100)]: "v".repeat(3996) });
  assertThrows(() => validateLabels({ "": "x" }), InvalidArgument, "key must not be empty");
  assertThrows(() => validateLabels({ k: "v".repeat(4096) }), InvalidArgument, "4097 bytes");
});

Deno.test("validateDescriptor() names what is wrong", () => {
  const d = { mediaType: "x", digest: `sha256:${"0".repeat(64)}`, size: 1 };
  validateDescriptor(d);
  assertThrows(() => validateDescriptor({ ...d, mediaType: "" }), InvalidArgument, "media type");
  assertThrows(
    () => validateDescriptor({ ...d, digest: "sha256:abc" }),
    InvalidArgument,
    "sha256:abc",
  );
  assertThrows(() => validateDescriptor({ ...d, size: -1 }), InvalidArgument, "bad size");
});
