import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { FailedPrecondition, InvalidArgument } from "../../errors.ts";
import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import { withTempDir } from "../../tests/harness.ts";
import { MetadataStore, MIGRATIONS, SCHEMA_VERSION } from "./mod.ts";

const target = {
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  digest: `sha256:${"a".repeat(64)}`,
  size: 10,
};

Deno.test("open() creates the schema in WAL mode at the latest version", async () => {
  await withTempDir(async (dir) => {
    await Promise.resolve();
    const path = join(dir, "meta.db");
    const db = MetadataStore.open(path);
    try {
      assertEquals(db.schemaVersion, SCHEMA_VERSION);
      assertEquals(SCHEMA_VERSION, MIGRATIONS[MIGRATIONS.length - 1]!.version);
      const raw = new DatabaseSync(path);
      const mode = raw.prepare("PRAGMA journal_mode").get() as { journal_mode: string };
      raw.close();
      assertEquals(mode.journal_mode, "wal");
    } finally {
      db.close();
    }
  });
});

Deno.test("open() keeps records across reopening", async () => {
  await withTempDir(async (dir) => {
    await Promise.resolve();
    const path = join(dir, "meta.db");
    const db = MetadataStore.open(path);
    db.images.create("default", { name: "example.com/a:1", target });
    db.close();
    const again = MetadataStore.open(path);
    try {
      assertEquals(again.images.get("default", "example.com/a:1").target, target);
    } finally {
      again.close();
    }
  });
});

Deno.test("open() refuses a database written by a newer tug", async () => {
  await withTempDir(async (dir) => {
    await Promise.resolve();
    const path = join(dir, "meta.db");
    MetadataStore.open(path).close();
    const raw = new DatabaseSync(path);
    raw.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    const err = assertThrows(
      () => MetadataStore.open(path),
      FailedPrecondition,
      "newer than this tug supports",
    );
    assert(err.message.includes(path));
  });
});

Deno.test("open() applies only the migrations a database lacks", async () => {
  await withTempDir(async (dir) => {
    await Promise.resolve();
    const path = join(dir, "meta.db");
    MetadataStore.open(path).close();
    // Opening again must not re-run migration 1 (its CREATE TABLE would fail).
    const db = MetadataStore.open(path);
    assertEquals(db.schemaVersion, SCHEMA_VERSION);
    db.close();
  });
});

Deno.test("transaction() keeps every change or none", () => {
  const db = MetadataStore.open(":memory:");
  try {
    assertThrows(() =>
      db.transaction(() => {
        db.images.create("default", { name: "example.com/a:1", target });
        db.images.create("default", {
          name: "example.com/b:1",
          target: { ...target, digest: "bad" },
        });
      }), InvalidArgument);
    assertEquals(db.images.list("default"), []);
    db.transaction(() => {
      db.images.create("default", { name: "example.com/a:1", target });
      // A failing nested step rolls back alone when the caller handles it.
      try {
        db.transaction(() => {
          db.images.create("default", { name: "example.com/c:1", target });
          throw new Error("inner");
        });
      } catch {
        // handled
      }
    });
    assertEquals(db.images.list("default").map((i) => i.name), ["example.com/a:1"]);
  } finally {
    db.close();
  }
});

Deno.test("transaction() refuses an asynchronous function", () => {
  const db = MetadataStore.open(":memory:");
  try {
    assertThrows(() => db.transaction(() => Promise.resolve(1)), Error, "synchronous");
  } finally {
    db.close();
  }
});
