import { assert, assertEquals } from "../../tests/assert.ts";
import { ProgressTracker, type TransferProgress } from "./progress.ts";

Deno.test("ProgressTracker reports per-blob and total bytes, throttled, and always on status changes", () => {
  const reports: TransferProgress[] = [];
  const t = new ProgressTracker((p) => reports.push(p), { intervalMs: 60_000 });
  t.add("sha256:a", "layer", 100);
  t.add("sha256:b", "layer", 50);
  t.status("sha256:a", "downloading", 0);
  assertEquals(reports.length, 1);
  t.bytes("sha256:a", 30);
  t.bytes("sha256:a", 30);
  assertEquals(reports.length, 1, "byte updates within the interval are not reported");
  t.status("sha256:b", "exists");
  const p = reports[reports.length - 1]!;
  assertEquals(p.blobs.map((b) => [b.digest, b.done, b.status]), [["sha256:a", 60, "downloading"], [
    "sha256:b",
    50,
    "exists",
  ]]);
  assertEquals([p.done, p.total, p.finished], [110, 150, false]);
  t.status("sha256:a", "done");
  t.finish();
  const last = reports[reports.length - 1]!;
  assertEquals([last.done, last.total, last.finished], [150, 150, true]);
  assert(last.bytesPerSecond >= 0);
  assert(last.elapsedMs >= 0);
});

Deno.test("ProgressTracker without a callback only keeps counts", () => {
  const t = new ProgressTracker(undefined);
  t.add("sha256:a", "layer", 10);
  t.bytes("sha256:a", 4);
  t.finish();
  assertEquals(t.snapshot().done, 4);
});
