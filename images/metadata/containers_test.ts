import { AlreadyExists, InvalidArgument, NotFound } from "../../errors.ts";
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import type { Spec } from "../../runtime/spec.ts";
import { type ContainerInput, MetadataStore } from "./mod.ts";

const spec: Spec = {
  ociVersion: "1.1.0",
  process: { user: { uid: 0, gid: 0 }, cwd: "/", args: ["sh"] },
};

function input(id: string): ContainerInput {
  return {
    id,
    image: "docker.io/library/busybox:latest",
    snapshotter: "overlayfs",
    snapshotKey: id,
    spec,
    runtime: { name: "io.tug.runtime.v1", options: { systemdCgroup: false } },
    labels: { app: "web" },
  };
}

function withDb(fn: (db: MetadataStore) => void): () => void {
  return () => {
    const db = MetadataStore.open(":memory:");
    try {
      fn(db);
    } finally {
      db.close();
    }
  };
}

Deno.test(
  "containers.create() records every field",
  withDb((db) => {
    const c = db.containers.create("default", input("web-1"));
    const { createdAt: _c, updatedAt: _u, ...rest } = c;
    assertEquals(rest, { ...input("web-1") });
    assertEquals(db.containers.get("default", "web-1"), c);
  }),
);

Deno.test(
  "containers.create() refuses a duplicate id within a namespace only",
  withDb((db) => {
    db.containers.create("a", input("c1"));
    assertThrows(() => db.containers.create("a", input("c1")), AlreadyExists, "c1");
    db.containers.create("b", input("c1"));
    assertEquals(db.containers.list("a").length, 1);
    assertEquals(db.containers.list("b").length, 1);
  }),
);

Deno.test(
  "one namespace never sees another's containers",
  withDb((db) => {
    db.containers.create("a", input("c1"));
    assertThrows(() => db.containers.get("b", "c1"), NotFound, "namespace b");
    assertEquals(db.containers.list("b"), []);
  }),
);

Deno.test(
  "containers.create() validates the id like containerd and requires spec and runtime",
  withDb((db) => {
    for (const bad of ["", "a/b", "../x", "-x", "x y", "a".repeat(77)]) {
      assertThrows(() => db.containers.create("a", input(bad)), InvalidArgument, "container id");
    }
    assertThrows(
      () => db.containers.create("a", { ...input("c"), runtime: { name: "" } }),
      InvalidArgument,
      "runtime name",
    );
    assertThrows(
      () => db.containers.create("a", { ...input("c"), spec: undefined as unknown as Spec }),
      InvalidArgument,
      "OCI spec",
    );
    const { snapshotter: _s, ...noSnapshotter } = input("c");
    assertThrows(
      () => db.containers.create("a", noSnapshotter),
      InvalidArgument,
      "needs a snapshotter",
    );
    const { snapshotter: _t, snapshotKey: _k, image: _i, ...bare } = input("bare");
    const c = db.containers.create("a", bare);
    assertEquals([c.image, c.snapshotter, c.snapshotKey], [undefined, undefined, undefined]);
  }),
);

Deno.test(
  "containers.update() changes the given fields and keeps the rest",
  withDb((db) => {
    db.containers.create("a", input("c1"));
    const spec2: Spec = { ...spec, hostname: "h" };
    const c = db.containers.update("a", { id: "c1", spec: spec2, labels: { x: "y" } });
    assertEquals(c.spec, spec2);
    assertEquals(c.labels, { x: "y" });
    assertEquals(c.runtime, input("c1").runtime);
    assertEquals(c.snapshotKey, "c1");
    assertThrows(() => db.containers.update("a", { id: "nope" }), NotFound);
  }),
);

Deno.test(
  "containers.delete() removes the record",
  withDb((db) => {
    db.containers.create("a", input("c1"));
    db.containers.delete("a", "c1");
    assertThrows(() => db.containers.get("a", "c1"), NotFound);
    assertThrows(() => db.containers.delete("a", "c1"), NotFound);
  }),
);
