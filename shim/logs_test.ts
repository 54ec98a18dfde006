import { assert, assertEquals } from "../tests/assert.ts";
import { type LogEntry, LogWriter, readLogs } from "./logs.ts";

const enc = new TextEncoder();

async function entries(path: string): Promise<LogEntry[]> {
  const out: LogEntry[] = [];
  for await (const e of readLogs(path)) out.push(e);
  return out;
}

Deno.test("LogWriter writes one JSON line per output line, in order, with increasing timestamps", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/c.log`;
    const w = new LogWriter(path, { maxSize: 0, maxFiles: 1 });
    const lines = Array.from({ length: 5000 }, (_, i) => `line ${i} "quoted" \t tab\n`);
    const all = enc.encode(lines.join(""));
    // Chunks that cut lines anywhere, and a multi-byte character split across two writes.
    for (let at = 0; at < all.length; at += 4093) w.write("stdout", all.subarray(at, at + 4093));
    const euro = enc.encode("€ end\n");
    w.write("stderr", euro.subarray(0, 1));
    w.write("stderr", euro.subarray(1));
    w.write("stdout", enc.encode("no newline"));
    w.close();

    const got = await entries(path);
    assertEquals(got.length, lines.length + 2);
    assertEquals(got.slice(0, lines.length).map((e) => e.log), lines);
    assertEquals(got[lines.length], {
      log: "€ end\n",
      stream: "stderr",
      time: got[lines.length]!.time,
    });
    assertEquals(got[lines.length + 1]!.log, "no newline");
    for (let i = 1; i < got.length; i++) {
      assert(got[i]!.time > got[i - 1]!.time, `time of line ${i} after line ${i - 1}`);
    }
    assert(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/.test(got[0]!.time), got[0]!.time);
    assert(Math.abs(Date.parse(got[0]!.time) - Date.now()) < 60_000, "the wall clock");
    // Docker's json-file format, key order included.
    const first = (await Deno.readTextFile(path)).split("\n")[0];
    assertEquals(first, JSON.stringify({ log: lines[0], stream: "stdout", time: got[0]!.time }));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("LogWriter writes a line without a newline in 16 KiB pieces", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const w = new LogWriter(`${dir}/c.log`, { maxSize: 0, maxFiles: 1 });
    w.write("stdout", enc.encode("x".repeat(40 * 1024)));
    w.close();
    const got = await entries(`${dir}/c.log`);
    assertEquals(got.map((e) => e.log.length), [40 * 1024]);
    const w2 = new LogWriter(`${dir}/d.log`, { maxSize: 0, maxFiles: 1 });
    for (let i = 0; i < 5; i++) w2.write("stdout", enc.encode("y".repeat(8 * 1024)));
    w2.close();
    assertEquals((await entries(`${dir}/d.log`)).map((e) => e.log.length), [16384, 16384, 8192]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("LogWriter rotates by size in bytes (non-ASCII text too) and loses no line of the kept files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/c.log`;
    const w = new LogWriter(path, { maxSize: 4096, maxFiles: 3 });
    const lines = Array.from({ length: 60 }, (_, i) => `${i} ${"é€".repeat(20)}\n`);
    w.write("stdout", enc.encode(lines.join(""))); // one chunk: the rotations happen within one write
    w.close();
    const files = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assertEquals(files, ["c.log", "c.log.1", "c.log.2"]);
    for (const f of files) {
      const size = (await Deno.stat(`${dir}/${f}`)).size;
      assert(size <= 4096 && size > 0, `${f}: ${size} bytes`);
    }
    const got = (await entries(path)).map((e) => e.log);
    assertEquals(got, lines.slice(lines.length - got.length), "the newest lines, in order");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readLogs with follow goes on from the last line it read, none skipped or repeated", async () => {
  // It took the file's size after reading it, and skipped what was written in between (40 to 380
  // lines of a busy container, found by a helper's probes).
  const dir = await Deno.makeTempDir();
  try {
    for (let round = 0; round < 5; round++) {
      const path = `${dir}/c${round}.log`;
      const w = new LogWriter(path, { maxSize: 0, maxFiles: 1 });
      let written = 0;
      const writeSome = () => {
        let text = "";
        for (let i = 0; i < 50; i++) text += `${written++}\n`;
        w.write("stdout", enc.encode(text));
      };
      writeSome();
      let stop = false;
      const writer = (async () => {
        while (!stop) {
          writeSome();
          await new Promise((r) => setTimeout(r, 0));
        }
      })();
      const got: number[] = [];
      for await (const e of readLogs(path, { follow: true, done: () => stop })) {
        got.push(Number(e.log));
        if (got.length === 1000) {
          stop = true;
          await writer;
          w.close();
        }
      }
      assertEquals(got.length, written, `round ${round}`);
      assert(got.every((n, i) => n === i), `round ${round}: lines in order, none skipped`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readLogs with follow loses no line across rotations, also several within one poll", async () => {
  // It reopened the live file by name at offset 0: what the old file gained since the last poll was
  // lost at every rotation, and whole files when two rotations came within one poll (a helper's
  // probes: 48 of 600 lines lost at 4 KiB per file).
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/c.log`;
    // ~90 files of 16 KiB: none is deleted, so any line missing was skipped by the follower.
    const w = new LogWriter(path, { maxSize: 16384, maxFiles: 100 });
    let written = 0;
    let stop = false;
    const writer = (async () => {
      while (written < 20_000) {
        let text = "";
        for (let i = 0; i < 150; i++) text += `${written++}\n`; // ~0.7 rotations per chunk
        w.write("stdout", enc.encode(text));
        await new Promise((r) => setTimeout(r, 10)); // several rotations per 100 ms poll
      }
      w.close();
      stop = true;
    })();
    const got: number[] = [];
    for await (const e of readLogs(path, { follow: true, done: () => stop })) {
      got.push(Number(e.log));
    }
    await writer;
    assertEquals(got.length, written);
    assert(got.every((n, i) => n === i), "every line once, in order");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readLogs reads a log of a million lines in one file", async () => {
  // history.push(...lines) of one file overflowed the stack (RangeError), and the daemon's logs
  // answer broke off.
  const dir = await Deno.makeTempDir();
  try {
    const w = new LogWriter(`${dir}/c.log`, { maxSize: 0, maxFiles: 1 });
    const chunk = enc.encode(Array.from({ length: 10_000 }, (_, i) => `${i}\n`).join(""));
    for (let i = 0; i < 100; i++) w.write("stdout", chunk);
    w.close();
    let n = 0;
    for await (const _ of readLogs(`${dir}/c.log`)) n++;
    assertEquals(n, 1_000_000);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
