import { AlreadyExists, InvalidArgument, NotFound } from "../../errors.ts";
import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import { MetadataStore } from "./mod.ts";

const target = {
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  digest: `sha256:${"a".repeat(64)}`,
  size: 1,
};
const other = { ...target, digest: `sha256:${"b".repeat(64)}` };

function withDb(fn: (db: MetadataStore, clock: { t: number }) => void): () => void {
  return () => {
    const clock = { t: Date.parse("2024-01-01T00:00:00Z") };
    const db = MetadataStore.open(":memory:", { now: () => new Date(clock.t) });
    try {
      fn(db, clock);
    } finally {
      db.close();
    }
  };
}

Deno.test(
  "images.create() records the target, labels and timestamps",
  withDb((db) => {
    const img = db.images.create("default", {
      name: "docker.io/library/busybox:latest",
      target,
      labels: { a: "b" },
    });
    assertEquals(img.target, target);
    assertEquals(img.labels, { a: "b" });
    assertEquals(img.createdAt.toISOString(), "2024-01-01T00:00:00.000Z");
    assertEquals(db.images.get("default", img.name), img);
  }),
);

Deno.test(
  "images.create() refuses a duplicate name within a namespace only",
  withDb((db) => {
    db.images.create("a", { name: "x:1", target });
    assertThrows(() => db.images.create("a", { name: "x:1", target: other }), AlreadyExists, "x:1");
    db.images.create("b", { name: "x:1", target: other });
    assertEquals(db.images.get("a", "x:1").target.digest, target.digest);
    assertEquals(db.images.get("b", "x:1").target.digest, other.digest);
  }),
);

Deno.test(
  "one namespace never sees another's images",
  withDb((db) => {
    db.images.create("a", { name: "x:1", target });
    assertEquals(db.images.list("b"), []);
    assertThrows(() => db.images.get("b", "x:1"), NotFound, "namespace b");
    assertThrows(() => db.images.delete("b", "x:1"), NotFound);
    assertEquals(db.images.list("a").length, 1);
  }),
);

Deno.test(
  "images.create() rejects a bad name or target",
  withDb((db) => {
    assertThrows(() => db.images.create("a", { name: "", target }), InvalidArgument, "image name");
    assertThrows(
      () => db.images.create("a", { name: "x y", target }),
      InvalidArgument,
      "whitespace",
    );
    assertThrows(
      () => db.images.create("a", { name: "x", target: { ...target, digest: "sha256:0" } }),
      InvalidArgument,
    );
    assertThrows(
      () => db.images.create("a", { name: "x", target: { ...target, mediaType: "" } }),
      InvalidArgument,
    );
    assertThrows(
      () => db.images.create("a", { name: "x", target, labels: { "": "v" } }),
      InvalidArgument,
    );
  }),
);

Deno.test(
  "images.update() changes what it is given and the update time",
  withDb((db, clock) => {
    db.images.create("a", { name: "x:1", target, labels: { k: "v" } });
    clock.t += 1000;
    const img = db.images.update("a", { name: "x:1", target: other });
    assertEquals(img.target, other);
    assertEquals(img.labels, { k: "v" });
    assert(img.updatedAt > img.createdAt);
    assertEquals(db.images.update("a", { name: "x:1", labels: {} }).labels, {});
    assertThrows(() => db.images.update("a", { name: "nope", labels: {} }), NotFound);
  }),
);

Deno.test(
  "images.put() creates or repoints an image",
  withDb((db) => {
    db.images.put("a", { name: "x:1", target });
    db.images.put("a", { name: "x:1", target: other });
    assertEquals(db.images.list("a").map((i) => i.target.digest), [other.digest]);
  }),
);

Deno.test(
  "a name with a digest must name the image's own digest (create, update, put)",
  withDb((db) => {
    const pinned = `x@${target.digest}`;
    assertEquals(db.images.create("a", { name: pinned, target }).name, pinned);
    const wrong = `y@${target.digest}`;
    assertThrows(
      () => db.images.create("a", { name: wrong, target: other }),
      InvalidArgument,
      `Invalid image name ${wrong}: it names digest ${target.digest}, but the image's digest is ${other.digest}`,
    );
    assertThrows(() => db.images.put("a", { name: wrong, target: other }), InvalidArgument, wrong);
    assertThrows(
      () => db.images.update("a", { name: pinned, target: other }),
      InvalidArgument,
      pinned,
    );
    assertThrows(
      () => db.images.put("a", { name: pinned, target: other }),
      InvalidArgument,
      pinned,
    );
    assertEquals(db.images.list("a").map((i) => [i.name, i.target.digest]), [[
      pinned,
      target.digest,
    ]]);
  }),
);

Deno.test(
  "images.list() sorts by name and images.delete() removes",
  withDb((db) => {
    db.images.create("a", { name: "z:1", target });
    db.images.create("a", { name: "b:1", target });
    assertEquals(db.images.list("a").map((i) => i.name), ["b:1", "z:1"]);
    db.images.delete("a", "z:1");
    assertEquals(db.images.list("a").map((i) => i.name), ["b:1"]);
  }),
);
