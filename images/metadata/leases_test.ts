import { AlreadyExists, InvalidArgument, NotFound } from "../../errors.ts";
import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import { GC_LABELS, MetadataStore } from "./mod.ts";

function withDb(fn: (db: MetadataStore) => void): () => void {
  return () => {
    const db = MetadataStore.open(":memory:", { now: () => new Date("2024-01-01T00:00:00Z") });
    try {
      fn(db);
    } finally {
      db.close();
    }
  };
}

Deno.test(
  "leases.create() sets the expiry label and a random id when none is given",
  withDb((db) => {
    const a = db.leases.create("n", { expiresIn: 3600_000 });
    const b = db.leases.create("n");
    assert(a.id !== b.id);
    assertEquals(a.labels[GC_LABELS.expire], "2024-01-01T01:00:00.000Z");
    assertEquals(a.expiresAt?.toISOString(), "2024-01-01T01:00:00.000Z");
    assertEquals(b.expiresAt, undefined);
    assertEquals(db.leases.list("n").length, 2);
  }),
);

Deno.test(
  "leases.create() validates the id and refuses a duplicate",
  withDb((db) => {
    db.leases.create("n", { id: "pull-1" });
    assertThrows(() => db.leases.create("n", { id: "pull-1" }), AlreadyExists);
    assertThrows(() => db.leases.create("n", { id: "a/b" }), InvalidArgument, "lease id");
    db.leases.create("m", { id: "pull-1" });
  }),
);

Deno.test(
  "leases hold content, ingests and snapshots until removed",
  withDb((db) => {
    db.leases.create("n", { id: "l" });
    const d = `sha256:${"c".repeat(64)}`;
    db.leases.addResource("n", { lease: "l", resource: { type: "content", digest: d } });
    db.leases.addResource("n", { lease: "l", resource: { type: "content", digest: d } });
    db.leases.addResource("n", { lease: "l", resource: { type: "ingest", ref: "layer-1" } });
    db.leases.addResource("n", {
      lease: "l",
      resource: { type: "snapshot", snapshotter: "overlayfs", key: "k" },
    });
    assertEquals(db.leases.listResources("n", "l"), [
      { type: "content", digest: d },
      { type: "ingest", ref: "layer-1" },
      { type: "snapshot", snapshotter: "overlayfs", key: "k" },
    ]);
    db.leases.deleteResource("n", { lease: "l", resource: { type: "ingest", ref: "layer-1" } });
    assertEquals(db.leases.listResources("n", "l").length, 2);
    db.leases.delete("n", "l");
    assertThrows(() => db.leases.listResources("n", "l"), NotFound);
  }),
);

Deno.test(
  "leases.addResource() refuses a lease of another namespace",
  withDb((db) => {
    db.leases.create("n", { id: "l" });
    assertThrows(
      () => db.leases.addResource("m", { lease: "l", resource: { type: "ingest", ref: "x" } }),
      NotFound,
      "Add to lease l",
    );
  }),
);
