import { createHash } from "node:crypto";
import { InvalidArgument } from "../../errors.ts";
import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import { Digester, digestOf, isDigest, parseDigest } from "./digest.ts";

const EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

Deno.test("digestOf() hashes bytes and strings with sha256 by default", () => {
  assertEquals(digestOf(new Uint8Array()), EMPTY);
  assertEquals(digestOf(""), EMPTY);
  assert(digestOf("x", "sha512").startsWith("sha512:"));
});

Deno.test("Digester gives the same digest as digestOf() for chunked input", () => {
  const d = new Digester();
  d.update(new TextEncoder().encode("hello, "));
  d.update(new TextEncoder().encode("world"));
  assertEquals(d.digest(), digestOf("hello, world"));
  assertEquals(d.digest(), digestOf("hello, world"));
  assertThrows(() => d.update(new Uint8Array(1)), Error, "after digest()");
});

Deno.test("Digester agrees with node:crypto on sha256 and sha512, whatever the chunking", () => {
  const data = new Uint8Array(300_000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7919) & 0xff;
  for (const algorithm of ["sha256", "sha512"] as const) {
    const want = `${algorithm}:${createHash(algorithm).update(data).digest("hex")}`;
    assertEquals(digestOf(data, algorithm), want);
    for (const size of [63, 64, 65, 4096, 100_000]) {
      const d = new Digester(algorithm);
      for (let at = 0; at < data.length; at += size) {
        d.update(data.subarray(at, Math.min(data.length, at + size)));
      }
      assertEquals(d.digest(), want, `${algorithm} in chunks of ${size}`);
    }
  }
  assertEquals(
    digestOf("abc", "sha512"),
    "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
  );
});

Deno.test("parseDigest() splits valid digests and names what is wrong with invalid ones", () => {
  assertEquals(parseDigest(EMPTY), { algorithm: "sha256", hex: EMPTY.slice(7) });
  assertThrows(() => parseDigest("sha256"), InvalidArgument, "<algorithm>:<hex>");
  assertThrows(() => parseDigest("md5:abc"), InvalidArgument, 'unsupported algorithm "md5"');
  assertThrows(() => parseDigest("sha256:abc"), InvalidArgument, "64 lowercase hex digits");
  assertThrows(
    () => parseDigest(EMPTY.toUpperCase().replace("SHA256", "sha256")),
    InvalidArgument,
    "lowercase",
  );
  assert(isDigest(EMPTY));
  assert(!isDigest("sha256:" + "g".repeat(64)));
});
