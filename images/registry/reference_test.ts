import { InvalidArgument } from "../../errors.ts";
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import {
  familiarReference,
  formatReference,
  parseReference,
  referenceName,
  referenceObject,
} from "./reference.ts";

const D = "sha256:" + "a".repeat(64);

Deno.test("parseReference() normalises references as Docker does", () => {
  const table: [string, string, string][] = [
    // input, normalised, familiar
    ["busybox", "docker.io/library/busybox:latest", "busybox:latest"],
    ["busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"],
    ["library/busybox", "docker.io/library/busybox:latest", "busybox:latest"],
    ["docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"],
    ["index.docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"],
    ["index.docker.io/user/app:v1", "docker.io/user/app:v1", "user/app:v1"],
    ["user/app", "docker.io/user/app:latest", "user/app:latest"],
    ["user/nested/app", "docker.io/user/nested/app:latest", "user/nested/app:latest"],
    ["docker.io/library/a/b", "docker.io/library/a/b:latest", "library/a/b:latest"],
    ["localhost/x", "localhost/x:latest", "localhost/x:latest"],
    ["localhost:5000/x", "localhost:5000/x:latest", "localhost:5000/x:latest"],
    ["127.0.0.1:5000/a/b:t", "127.0.0.1:5000/a/b:t", "127.0.0.1:5000/a/b:t"],
    ["quay.io/coreos/etcd", "quay.io/coreos/etcd:latest", "quay.io/coreos/etcd:latest"],
    ["[::1]:5000/x", "[::1]:5000/x:latest", "[::1]:5000/x:latest"],
    [`host:5000/a/b@${D}`, `host:5000/a/b@${D}`, `host:5000/a/b@${D}`],
    [`busybox:1@${D}`, `docker.io/library/busybox:1@${D}`, `busybox:1@${D}`],
    [`busybox@${D}`, `docker.io/library/busybox@${D}`, `busybox@${D}`],
    [
      "a-b.c-d/e---f_g.h__i:Tag_1.x-y",
      "a-b.c-d/e---f_g.h__i:Tag_1.x-y",
      "a-b.c-d/e---f_g.h__i:Tag_1.x-y",
    ],
  ];
  for (const [input, normalised, familiar] of table) {
    const ref = parseReference(input);
    assertEquals(formatReference(ref), normalised, input);
    assertEquals(familiarReference(ref), familiar, input);
  }
});

Deno.test("parseReference() splits domain, path, tag and digest", () => {
  assertEquals(parseReference("localhost:5000/a/b:t"), {
    domain: "localhost:5000",
    path: "a/b",
    tag: "t",
  });
  assertEquals(parseReference(`x@${D}`), { domain: "docker.io", path: "library/x", digest: D });
  assertEquals(referenceName(parseReference("busybox")), "docker.io/library/busybox");
  assertEquals(referenceObject(parseReference(`x:t@${D}`)), D);
  assertEquals(referenceObject(parseReference("x:t")), "t");
});

Deno.test("parseReference() refuses invalid references and says why", () => {
  const table: [string, string][] = [
    ["", "empty"],
    ["Busybox", "must be lowercase"],
    ["docker.io/User/app", "must be lowercase"],
    // The whole path is named: UPPER is no registry host (it has neither . nor :).
    ["Example/x", "must be lowercase"],
    ["UPPER/Case:tag", 'invalid reference format: repository name "UPPER/Case" must be lowercase'],
    ["a".repeat(64), "image ID"],
    ["busybox:", 'tag ""'],
    ["a_b.c/x", 'registry host "a_b.c"'],
    ["busybox:-bad", 'tag "-bad"'],
    ["busybox:" + "t".repeat(129), "tag"],
    ["busybox@sha256:abc", "digest"],
    ["busybox@md5:" + "a".repeat(32), 'unsupported algorithm "md5"'],
    ["busybox@sha256:" + "a".repeat(63), "64 lowercase hex digits"],
    ["/busybox", "does not match"],
    ["busybox/", "does not match"],
    ["a//b", "does not match"],
    ["host:port/x", "does not match"],
    ["a/" + "b".repeat(260), "longer than 255"],
    ["bad space", "does not match"],
  ];
  for (const [input, why] of table) {
    const err = assertThrows(() => parseReference(input), InvalidArgument, why);
    if (input !== "") assertEquals(err.message.includes(`"${input}"`), true, err.message);
  }
});
