/**
 * The conformance suite of the {@link Snapshotter} interface, run against
 * every implementation:
 *
 * ```ts
 * import { snapshotterConformance } from "./conformance.ts";
 * snapshotterConformance("overlayfs", (root) => openOverlaySnapshotter(root), {
 *   ignore: requires("root", "overlayfs"),
 * });
 * ```
 *
 * It checks what a snapshot shows through the Mount records it returns, so
 * it mounts them itself (as root) with `mountAll`; every case unmounts
 * everything it mounted and removes its directories, even when it fails.
 *
 * @module
 */

import { join } from "node:path";
import { AlreadyExists, FailedPrecondition, NotFound } from "../../errors.ts";
import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import { mountsUnder } from "../../tests/harness.ts";
import type { Mount, SnapshotInfo, Snapshotter } from "../types.ts";
import { mountAll, unmountAll } from "./mount.ts";

/** Opens a snapshotter rooted at the (empty or previously used) directory `root`. */
export type SnapshotterFactory = (root: string) => Promise<Snapshotter>;

/** Options for {@link snapshotterConformance}. */
export interface SnapshotterConformanceOptions {
  /** Skip every case (Deno's `ignore`), e.g. `requires("root", "overlayfs")`. */
  ignore?: boolean;
  /** Files of the snapshotter's own bookkeeping under its root, which stay when every snapshot is gone. */
  bookkeeping?: RegExp;
  /** Layers in the long-chain case (default 140: more than one page of overlay mount options). */
  chainLength?: number;
}

/** What a case gets: the snapshotter and helpers that clean up after themselves. */
interface Context {
  sn: Snapshotter;
  root: string;
  /** Mounts `mounts` on a fresh directory and returns it; unmounted when the case ends. */
  mount(mounts: Mount[]): string;
  unmount(target: string): void;
  /** Closes the snapshotter and opens it again on the same root. */
  reopen(): Promise<void>;
}

async function expectTree(dir: string, expected: Record<string, string | null>): Promise<void> {
  for (const [path, content] of Object.entries(expected)) {
    const p = join(dir, path);
    if (content === null) {
      await assertRejects(() => Deno.lstat(p), Deno.errors.NotFound, undefined);
    } else {
      assertEquals(await Deno.readTextFile(p), content, `content of ${path}`);
    }
  }
}

/** Lists the entries of a tree: `path` for directories with a trailing slash. */
function listTree(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (
    const e of [...Deno.readDirSync(join(dir, prefix))].sort((a, b) => a.name.localeCompare(b.name))
  ) {
    const p = prefix === "" ? e.name : `${prefix}/${e.name}`;
    if (e.isDirectory) out.push(`${p}/`, ...listTree(dir, p));
    else out.push(p);
  }
  return out;
}

/** Regular files, devices, fifos and symlinks under `dir` except bookkeeping. */
function leftoverFiles(dir: string, bookkeeping: RegExp): string[] {
  return listTree(dir).filter((p) => !p.endsWith("/") && !bookkeeping.test(p));
}

/** Prepares `key` on `parent`, writes `files` through its mounts, commits it as `name`. */
async function layer(
  ctx: Context,
  name: string,
  parent: string | undefined,
  change: (dir: string) => Promise<void>,
): Promise<void> {
  const key = `${name}-active`;
  const target = ctx.mount(await ctx.sn.prepare(key, parent));
  try {
    await change(target);
  } finally {
    ctx.unmount(target);
  }
  await ctx.sn.commit(name, key);
}

/**
 * Registers the snapshotter conformance cases with `Deno.test`, each named
 * `<name>: <what it checks>`.
 */
export function snapshotterConformance(
  name: string,
  factory: SnapshotterFactory,
  options: SnapshotterConformanceOptions = {},
): void {
  const bookkeeping = options.bookkeeping ?? /(^|\/)metadata\.db(-wal|-shm)?$/;

  const test = (what: string, fn: (ctx: Context) => Promise<void>) =>
    Deno.test({
      name: `${name}: ${what}`,
      ignore: options.ignore ?? false,
      fn: async () => {
        const base = await Deno.makeTempDir({ prefix: "tug-snapshots-" });
        const root = join(base, "root");
        await Deno.mkdir(root);
        const targets: string[] = [];
        let sn = await factory(root);
        let mountCount = 0;
        const ctx: Context = {
          get sn() {
            return sn;
          },
          root,
          mount(mounts) {
            const target = join(base, `mnt-${mountCount++}`);
            Deno.mkdirSync(target);
            targets.push(target);
            mountAll(mounts, target);
            return target;
          },
          unmount(target) {
            unmountAll(target);
          },
          async reopen() {
            await sn.close();
            sn = await factory(root);
          },
        };
        let failed = true;
        try {
          await fn(ctx);
          failed = false;
        } finally {
          for (const t of targets) {
            try {
              unmountAll(t, { detach: true });
            } catch {
              // keep going: assertNothingLeft reports what stays
            }
          }
          await sn.close();
          const left = mountsUnder(base);
          if (left.length === 0) await Deno.remove(base, { recursive: true });
          if (!failed) assertEquals(left, [], "mounts left behind"); // else the case's own error is the one to see
        }
      },
    });

  test("prepare() without a parent gives an empty, writable tree", async (ctx) => {
    const mounts = await ctx.sn.prepare("a");
    const dir = ctx.mount(mounts);
    assertEquals(listTree(dir), []);
    await Deno.writeTextFile(join(dir, "hello"), "world");
    await Deno.mkdir(join(dir, "etc"));
    ctx.unmount(dir);
    assertEquals(listTree(ctx.mount(await ctx.sn.mounts("a"))), ["etc/", "hello"]);
  });

  test("prepare() and view() return mount records without mounting anything", async (ctx) => {
    const before = Deno.readTextFileSync("/proc/self/mountinfo");
    await layer(ctx, "base", undefined, (d) => Deno.writeTextFile(join(d, "f"), "1"));
    const mid = Deno.readTextFileSync("/proc/self/mountinfo");
    const m1 = await ctx.sn.prepare("p", "base");
    const m2 = await ctx.sn.view("v", "base");
    const m3 = await ctx.sn.mounts("p");
    assertEquals(Deno.readTextFileSync("/proc/self/mountinfo"), mid);
    assertEquals(mid, before);
    for (const m of [...m1, ...m2, ...m3]) {
      assert(
        typeof m.type === "string" && typeof m.source === "string" && Array.isArray(m.options),
      );
    }
    assertEquals(m3, m1);
  });

  test("files of a committed parent are visible in a child", async (ctx) => {
    await layer(ctx, "base", undefined, async (d) => {
      await Deno.mkdir(join(d, "etc"));
      await Deno.writeTextFile(join(d, "etc/os-release"), "tug");
      await Deno.symlink("etc/os-release", join(d, "link"));
    });
    const dir = ctx.mount(await ctx.sn.prepare("child", "base"));
    await expectTree(dir, { "etc/os-release": "tug", "link": "tug" });
    assertEquals(await Deno.readLink(join(dir, "link")), "etc/os-release");
    assertEquals((await ctx.sn.stat("child")).parent, "base");
  });

  test("writes in an active snapshot do not change its parent", async (ctx) => {
    await layer(ctx, "base", undefined, async (d) => {
      await Deno.writeTextFile(join(d, "keep"), "parent");
      await Deno.writeTextFile(join(d, "change"), "parent");
      await Deno.writeTextFile(join(d, "delete"), "parent");
    });
    const dir = ctx.mount(await ctx.sn.prepare("child", "base"));
    await Deno.writeTextFile(join(dir, "change"), "child");
    await Deno.remove(join(dir, "delete"));
    await Deno.writeTextFile(join(dir, "new"), "child");
    await expectTree(dir, { keep: "parent", change: "child", delete: null, new: "child" });
    const view = ctx.mount(await ctx.sn.view("parent-view", "base"));
    await expectTree(view, { keep: "parent", change: "parent", delete: "parent", new: null });
  });

  test("commit() then prepare() on top stacks three layers", async (ctx) => {
    await layer(ctx, "l1", undefined, async (d) => {
      await Deno.writeTextFile(join(d, "one"), "1");
      await Deno.writeTextFile(join(d, "shared"), "from 1");
    });
    await layer(ctx, "l2", "l1", async (d) => {
      await Deno.writeTextFile(join(d, "two"), "2");
      await Deno.writeTextFile(join(d, "shared"), "from 2");
    });
    await layer(ctx, "l3", "l2", (d) => Deno.writeTextFile(join(d, "three"), "3"));
    const dir = ctx.mount(await ctx.sn.prepare("top", "l3"));
    await expectTree(dir, { one: "1", two: "2", three: "3", shared: "from 2" });
    const view = ctx.mount(await ctx.sn.view("l2-view", "l2"));
    await expectTree(view, { one: "1", two: "2", three: null, shared: "from 2" });
    assertEquals((await ctx.sn.stat("l3")).kind, "committed");
    assertEquals((await ctx.sn.stat("l3")).parent, "l2");
  });

  test("a view is read-only", async (ctx) => {
    await layer(ctx, "l1", undefined, (d) => Deno.writeTextFile(join(d, "f"), "1"));
    await layer(ctx, "l2", "l1", (d) => Deno.writeTextFile(join(d, "g"), "2"));
    for (const [key, parent] of [["v0", undefined], ["v1", "l1"], ["v2", "l2"]] as const) {
      const dir = ctx.mount(await ctx.sn.view(key, parent));
      const err = await assertRejects(() => Deno.writeTextFile(join(dir, "x"), "no"));
      assert(
        /read-only|EROFS|os error 30/i.test(err.message),
        `writing into view ${key}: ${err.message}`,
      );
      assertEquals((await ctx.sn.stat(key)).kind, "view");
    }
  });

  test("files and directories deleted in a layer stay hidden above it", async (ctx) => {
    await layer(ctx, "l1", undefined, async (d) => {
      await Deno.mkdir(join(d, "dir/sub"), { recursive: true });
      await Deno.writeTextFile(join(d, "dir/old"), "old");
      await Deno.writeTextFile(join(d, "dir/sub/deep"), "deep");
      await Deno.writeTextFile(join(d, "gone"), "gone");
    });
    await layer(ctx, "l2", "l1", async (d) => {
      await Deno.remove(join(d, "gone"));
      await Deno.remove(join(d, "dir"), { recursive: true });
      await Deno.mkdir(join(d, "dir"));
      await Deno.writeTextFile(join(d, "dir/new"), "new");
    });
    const dir = ctx.mount(await ctx.sn.prepare("top", "l2"));
    assertEquals(listTree(dir), ["dir/", "dir/new"]);
    const view = ctx.mount(await ctx.sn.view("v", "l2"));
    assertEquals(listTree(view), ["dir/", "dir/new"]);
    const lower = ctx.mount(await ctx.sn.view("v1", "l1"));
    assertEquals(listTree(lower), ["dir/", "dir/old", "dir/sub/", "dir/sub/deep", "gone"]);
  });

  test("remove() refuses a committed snapshot with children and leaves nothing behind", async (ctx) => {
    await layer(ctx, "l1", undefined, (d) => Deno.writeTextFile(join(d, "f"), "1"));
    await layer(ctx, "l2", "l1", (d) => Deno.writeTextFile(join(d, "g"), "2"));
    await ctx.sn.prepare("active", "l2");
    await ctx.sn.view("view", "l1");
    await assertRejects(() => ctx.sn.remove("l1"), FailedPrecondition, "l1");
    await assertRejects(() => ctx.sn.remove("l2"), FailedPrecondition, "l2");
    await ctx.sn.remove("active");
    await assertRejects(() => ctx.sn.stat("active"), NotFound);
    await ctx.sn.remove("l2");
    await assertRejects(() => ctx.sn.remove("l1"), FailedPrecondition);
    await ctx.sn.remove("view");
    await ctx.sn.remove("l1");
    const all: SnapshotInfo[] = [];
    await ctx.sn.walk((i) => {
      all.push(i);
    });
    assertEquals(all, []);
    assertEquals(leftoverFiles(ctx.root, bookkeeping), []);
  });

  test("usage() counts the bytes and inodes of the snapshot's own layer", async (ctx) => {
    const dir = ctx.mount(await ctx.sn.prepare("a"));
    await Deno.mkdir(join(dir, "d"));
    await Deno.writeFile(join(dir, "d/data"), new Uint8Array(100_000).fill(7));
    await Deno.link(join(dir, "d/data"), join(dir, "hardlink"));
    ctx.unmount(dir);
    const active = await ctx.sn.usage("a");
    assertEquals(active.inodes, 3, "the root, d and the (hard-linked) file");
    assert(active.size >= 100_000 && active.size < 200_000, `size ${active.size}`);
    await ctx.sn.commit("c", "a");
    assertEquals(await ctx.sn.usage("c"), active);
    await layer(ctx, "child", "c", (d) => Deno.writeTextFile(join(d, "small"), "x"));
    const child = await ctx.sn.usage("child");
    if (ctx.sn.name !== "native") {
      assert(
        child.size < 100_000,
        `a child layer does not count its parent's bytes: ${child.size}`,
      );
    }
  });

  test("unknown keys, taken keys and wrong kinds are refused with the right error", async (ctx) => {
    await assertRejects(() => ctx.sn.stat("nope"), NotFound, "nope");
    await assertRejects(() => ctx.sn.mounts("nope"), NotFound, "nope");
    await assertRejects(() => ctx.sn.usage("nope"), NotFound, "nope");
    await assertRejects(() => ctx.sn.remove("nope"), NotFound, "nope");
    await assertRejects(() => ctx.sn.commit("x", "nope"), NotFound, "nope");
    await assertRejects(() => ctx.sn.update({ name: "nope", labels: {} }), NotFound, "nope");
    await assertRejects(() => ctx.sn.prepare("a", "nope"), NotFound, "nope");
    await assertRejects(() => ctx.sn.view("a", "nope"), NotFound, "nope");
    await layer(ctx, "base", undefined, (d) => Deno.writeTextFile(join(d, "f"), "1"));
    await ctx.sn.prepare("active", "base");
    await ctx.sn.view("view", "base");
    await assertRejects(() => ctx.sn.prepare("active", "base"), AlreadyExists, "active");
    await assertRejects(() => ctx.sn.view("base"), AlreadyExists, "base");
    await assertRejects(() => ctx.sn.commit("base", "active"), AlreadyExists, "base");
    await assertRejects(() => ctx.sn.commit("x", "view"), FailedPrecondition, "view");
    await assertRejects(() => ctx.sn.commit("x", "base"), FailedPrecondition, "base");
    await assertRejects(() => ctx.sn.prepare("on-active", "active"), FailedPrecondition, "active");
    await assertRejects(() => ctx.sn.prepare("on-view", "view"), FailedPrecondition, "view");
    await assertRejects(
      () => ctx.sn.view("view-on-active", "active"),
      FailedPrecondition,
      "active",
    );
    // Refused calls changed nothing.
    const keys: string[] = [];
    await ctx.sn.walk((i) => {
      keys.push(i.name);
    });
    assertEquals(keys.sort(), ["active", "base", "view"]);
  });

  test("stat(), update() and walk() describe snapshots", async (ctx) => {
    await ctx.sn.prepare("a", undefined, { labels: { "tug/x": "1" } });
    await ctx.sn.commit("c", "a");
    await ctx.sn.view("v", "c", { labels: { "tug/y": "2" } });
    const c = await ctx.sn.stat("c");
    assertEquals([c.name, c.kind, c.parent, c.labels], ["c", "committed", undefined, {
      "tug/x": "1",
    }]);
    const v = await ctx.sn.stat("v");
    assertEquals([v.name, v.kind, v.parent, v.labels], ["v", "view", "c", { "tug/y": "2" }]);
    assert(v.createdAt instanceof Date && v.updatedAt.getTime() >= v.createdAt.getTime());
    const updated = await ctx.sn.update({ name: "c", labels: { "tug/z": "3" } });
    assertEquals(updated.labels, { "tug/z": "3" });
    assertEquals((await ctx.sn.stat("c")).labels, { "tug/z": "3" });
    const seen: string[] = [];
    await ctx.sn.walk((i) => {
      seen.push(`${i.name}:${i.kind}:${i.parent ?? ""}`);
    });
    assertEquals(seen.sort(), ["c:committed:", "v:view:c"]);
  });

  test("snapshots and their contents survive closing and reopening", async (ctx) => {
    await layer(ctx, "base", undefined, (d) => Deno.writeTextFile(join(d, "f"), "kept"));
    await ctx.sn.prepare("active", "base", { labels: { a: "b" } });
    await ctx.reopen();
    assertEquals((await ctx.sn.stat("active")).labels, { a: "b" });
    assertEquals((await ctx.sn.stat("base")).kind, "committed");
    const dir = ctx.mount(await ctx.sn.mounts("active"));
    await expectTree(dir, { f: "kept" });
  });

  test("a long chain of layers mounts, beyond one page of mount options", async (ctx) => {
    const n = options.chainLength ?? 140;
    let parent: string | undefined;
    for (let i = 0; i < n; i++) {
      const name = `layer-with-a-longish-name-${i}`;
      const mounts = await ctx.sn.prepare(`${name}-active`, parent);
      // Write straight into the upper/own directory when it is a plain bind: no mount needed.
      const target = ctx.mount(mounts);
      try {
        await Deno.writeTextFile(join(target, `file-${i}`), String(i));
        await Deno.writeTextFile(join(target, "latest"), String(i));
      } finally {
        ctx.unmount(target);
      }
      await ctx.sn.commit(name, `${name}-active`);
      parent = name;
    }
    const mounts = await ctx.sn.prepare("top", parent);
    const dir = ctx.mount(mounts);
    await expectTree(dir, {
      "file-0": "0",
      [`file-${n - 1}`]: String(n - 1),
      latest: String(n - 1),
    });
    assertEquals(listTree(dir).length, n + 1);
  });
}
