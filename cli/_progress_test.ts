import type { TransferProgressInfo } from "../mod.ts";
import { assert, assertEquals, assertStringIncludes } from "../tests/assert.ts";
import { progressView } from "./_progress.ts";

const D1 = `sha256:${"1".repeat(64)}`;
const D2 = `sha256:${"2".repeat(64)}`;

function transfer(s1: string, done1: number, s2: string): TransferProgressInfo {
  return {
    blobs: [
      {
        digest: D1,
        mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
        done: done1,
        total: 2048,
        status: s1 as "done",
      },
      {
        digest: D2,
        mediaType: "application/vnd.oci.image.config.v1+json",
        done: 0,
        total: 100,
        status: s2 as "done",
      },
    ],
    done: done1,
    total: 2148,
    bytesPerSecond: 1024,
    elapsedMs: 1500,
    finished: false,
  };
}

Deno.test("without a terminal, progress is one plain line per status change", () => {
  let out = "";
  const view = progressView({ terminal: false, write: (s) => (out += s) });
  view.update(transfer("waiting", 0, "waiting"), { done: 0, total: 1 });
  view.update(transfer("downloading", 100, "waiting"), { done: 0, total: 1 });
  view.update(transfer("downloading", 900, "done"), { done: 0, total: 1 });
  view.update(transfer("done", 2048, "done"), { done: 1, total: 1 });
  view.finish();
  assertEquals(out.split("\n").filter(Boolean), [
    `layer ${D1}: downloading (2.0 KiB)`,
    `config ${D2}: done (100 B)`,
    `layer ${D1}: done (2.0 KiB)`,
    "unpacked 1/1 layers",
  ]);
});

Deno.test("without a terminal, layers unpacked already are counted after the lines that name them", () => {
  let out = "";
  const view = progressView({ terminal: false, write: (s) => (out += s) });
  // The daemon counts a layer it finds unpacked before the transfer's first report.
  view.update(undefined, { done: 1, total: 1 });
  view.update(transfer("exists", 2048, "exists"), { done: 1, total: 1 });
  view.finish();
  assertEquals(out.split("\n").filter(Boolean), [
    `layer ${D1}: exists (2.0 KiB)`,
    `config ${D2}: exists (100 B)`,
    "unpacked 1/1 layers",
  ]);
  // With no transfer report at all, the count is still written at the end.
  out = "";
  const bare = progressView({ terminal: false, write: (s) => (out += s) });
  bare.update(undefined, { done: 1, total: 1 });
  assertEquals(out, "");
  bare.finish();
  assertEquals(out, "unpacked 1/1 layers\n");
});

Deno.test("on a terminal, each blob gets a bar, redrawn in place", () => {
  let out = "";
  const view = progressView({ terminal: true, write: (s) => (out += s), columns: 100 });
  view.update(transfer("downloading", 1024, "waiting"), { done: 0, total: 1 });
  view.update(transfer("done", 2048, "done"), { done: 1, total: 1 });
  view.finish();
  assertStringIncludes(out, `layer    111111111111  downloading [`);
  assertStringIncludes(out, "1.0 KiB / 2.0 KiB");
  assertStringIncludes(
    out,
    "\x1b[3A",
    "the second draw moves up over the first (2 blobs + summary)",
  );
  assertStringIncludes(out, "unpacked 1/1");
  const last = out.slice(out.lastIndexOf("\x1b[3A"));
  assert(last.includes("[======"), "the finished layer's bar is full");
  for (const line of last.split("\n")) {
    // deno-lint-ignore no-control-regex
    assert(line.replace(/\x1b\[[0-9;]*[A-Za-z]|\r/g, "").length < 100, line);
  }
});
