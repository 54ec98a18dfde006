import { AlreadyExists, FailedPrecondition, InvalidArgument, NotFound } from "../../errors.ts";
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { MetadataStore } from "./mod.ts";

const target = {
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  digest: `sha256:${"a".repeat(64)}`,
  size: 1,
};

function withDb(fn: (db: MetadataStore) => void | Promise<void>): () => Promise<void> {
  return async () => {
    const db = MetadataStore.open(":memory:");
    try {
      await fn(db);
    } finally {
      db.close();
    }
  };
}

Deno.test(
  "namespaces.create() records labels and refuses a duplicate",
  withDb((db) => {
    const ns = db.namespaces.create("team-a", { labels: { owner: "ops" } });
    assertEquals(ns.name, "team-a");
    assertEquals(ns.labels, { owner: "ops" });
    assertThrows(() => db.namespaces.create("team-a"), AlreadyExists, "team-a");
    assertEquals(db.namespaces.list().map((n) => n.name), ["team-a"]);
  }),
);

Deno.test(
  "namespaces.create() validates the name like containerd",
  withDb((db) => {
    for (const bad of ["", "a/b", "-x", "x..y", "UPPER lower", "a".repeat(77)]) {
      assertThrows(() => db.namespaces.create(bad), InvalidArgument, "namespace");
    }
    db.namespaces.create("k8s.io");
  }),
);

Deno.test(
  "objects create their namespace implicitly",
  withDb((db) => {
    db.images.create("implicit", { name: "example.com/x:1", target });
    assertEquals(db.namespaces.get("implicit").labels, {});
    assertThrows(
      () => db.images.create("bad/ns", { name: "example.com/x:1", target }),
      InvalidArgument,
      "namespace",
    );
  }),
);

Deno.test(
  "namespaces.setLabels() replaces the labels",
  withDb((db) => {
    db.namespaces.create("n", { labels: { a: "1" } });
    assertEquals(db.namespaces.setLabels("n", { b: "2" }).labels, { b: "2" });
    assertThrows(() => db.namespaces.setLabels("missing", {}), NotFound, "missing");
  }),
);

Deno.test(
  "namespaces.delete() refuses a namespace that is not empty, naming what is left",
  withDb((db) => {
    db.images.create("n", { name: "example.com/x:1", target });
    db.leases.create("n", { id: "l1" });
    const err = assertThrows(() => db.namespaces.delete("n"), FailedPrecondition, "images, leases");
    assertEquals(err.message, "Remove namespace n: it still holds images, leases");
    db.images.delete("n", "example.com/x:1");
    db.leases.delete("n", "l1");
    db.namespaces.delete("n");
    assertThrows(() => db.namespaces.get("n"), NotFound);
    assertThrows(() => db.namespaces.delete("n"), NotFound);
  }),
);
