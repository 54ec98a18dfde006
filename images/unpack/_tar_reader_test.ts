import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import { TarFormatError, type TarHeader, TarLimitError, TarReader } from "./_tar_reader.ts";

const enc = new TextEncoder();

interface Fields {
  name: string;
  flag?: string;
  size?: number;
  mode?: number;
  /** A number, or raw bytes for the 8-byte field (base-256). */
  uid?: number | Uint8Array;
  linkname?: string;
  prefix?: string;
  magic?: "ustar" | "gnu" | "v7";
  /** Store the checksum as the signed sum (old tars). */
  signedChecksum?: boolean;
}

function octal(block: Uint8Array, offset: number, length: number, value: number): void {
  block.set(enc.encode(value.toString(8).padStart(length - 1, "0") + "\0"), offset);
}

function header(f: Fields): Uint8Array {
  const b = new Uint8Array(512);
  b.set(enc.encode(f.name), 0);
  octal(b, 100, 8, f.mode ?? 0o644);
  if (f.uid instanceof Uint8Array) b.set(f.uid, 108);
  else octal(b, 108, 8, f.uid ?? 0);
  octal(b, 116, 8, 0);
  octal(b, 124, 12, f.size ?? 0);
  octal(b, 136, 12, 1_000_000_000);
  b[156] = (f.flag ?? "0").charCodeAt(0);
  if (f.linkname) b.set(enc.encode(f.linkname), 157);
  const magic = f.magic ?? "ustar";
  if (magic === "ustar") b.set(enc.encode("ustar\x0000"), 257);
  if (magic === "gnu") b.set(enc.encode("ustar  \0"), 257);
  if (f.prefix) b.set(enc.encode(f.prefix), 345);
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += f.signedChecksum && x > 127 ? x - 256 : x;
  octal(b, 148, 7, sum);
  return b;
}

function padded(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(data.length / 512) * 512);
  out.set(data);
  return out;
}

function pax(records: Record<string, string | Uint8Array>): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [k, v] of Object.entries(records)) {
    const value = typeof v === "string" ? enc.encode(v) : v;
    const rest = enc.encode(` ${k}=`).length + value.length + 1;
    let len = rest + 1;
    while (String(len).length + rest !== len) len = String(len).length + rest;
    parts.push(enc.encode(`${len} ${k}=`), value, enc.encode("\n"));
  }
  return concat(parts);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const END = new Uint8Array(1024);

/** `bytes` in chunks of `size`. */
async function* chunked(bytes: Uint8Array, size: number): AsyncIterable<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) {
    yield await Promise.resolve(bytes.subarray(at, Math.min(bytes.length, at + size)));
  }
}

async function readAll(
  tar: Uint8Array,
  chunk: number,
): Promise<{ entries: Array<TarHeader & { data: string }>; size: number; seen: number }> {
  let seen = 0;
  const reader = new TarReader(chunked(tar, chunk), { onChunk: (c) => seen += c.length });
  const entries = [];
  for (let h = await reader.next(); h !== null; h = await reader.next()) {
    const parts: Uint8Array[] = [];
    for (let c = await reader.read(); c !== null; c = await reader.read()) parts.push(c.slice());
    entries.push({ ...h, data: new TextDecoder().decode(concat(parts)) });
  }
  await reader.finish();
  return { entries, size: reader.size, seen };
}

Deno.test("TarReader reads entries across any chunk boundaries, and the bytes after the archive", async () => {
  const tar = concat([
    header({ name: "a", size: 5 }),
    padded(enc.encode("hello")),
    header({ name: "dir/", flag: "5" }),
    header({ name: "name", prefix: "long/prefix", size: 600 }),
    padded(enc.encode("x".repeat(600))),
    END,
    enc.encode("trailing bytes are read, not parsed"),
  ]);
  for (const chunk of [1, 7, 512, 513, 100_000]) {
    const { entries, size, seen } = await readAll(tar, chunk);
    assertEquals(entries.map((e) => [e.name, e.type, e.data.length]), [
      ["a", "file", 5],
      ["dir/", "directory", 0],
      ["long/prefix/name", "file", 600],
    ]);
    assertEquals(entries[0]!.data, "hello");
    assertEquals(entries[0]!.mtimeNs, 1_000_000_000n * 1_000_000_000n);
    assertEquals([size, seen], [tar.length, tar.length]);
  }
});

Deno.test("TarReader applies PAX records and GNU long names, keeps xattrs byte for byte, ignores global headers", async () => {
  const caps = new Uint8Array([0x01, 0x00, 0x00, 0x02, 0xc0, 0xff, 0x0a, 0x00]);
  const local = pax({
    path: "pax/long/name",
    uid: "3000000",
    mtime: "1234.5",
    "SCHILY.xattr.security.capability": caps,
    "LIBARCHIVE.xattr.user.a%3Db": btoa("\x80\x00z"),
  });
  const global = pax({ path: "not/applied", uid: "7" });
  const longName = enc.encode("gnu/".repeat(40) + "file\0");
  const longLink = enc.encode("gnu/target\0");
  const tar = concat([
    header({ name: "pax_global_header", flag: "g", size: global.length }),
    padded(global),
    header({ name: "PaxHeaders/x", flag: "x", size: local.length }),
    padded(local),
    header({ name: "short", size: 1 }),
    padded(enc.encode("1")),
    header({ name: "././@LongLink", flag: "L", size: longName.length, magic: "gnu" }),
    padded(longName),
    header({ name: "././@LongLink", flag: "K", size: longLink.length, magic: "gnu" }),
    padded(longLink),
    header({ name: "trunc", flag: "1", linkname: "trunc", magic: "gnu" }),
    header({ name: "after", uid: 5 }),
    END,
  ]);
  const { entries } = await readAll(tar, 300);
  const [a, b, c] = entries;
  assertEquals([a!.name, a!.uid, a!.mtimeNs, a!.atimeNs], [
    "pax/long/name",
    3_000_000,
    1_234_500_000_000n,
    1_234_500_000_000n,
  ]);
  assertEquals(a!.xattrs.get("security.capability"), caps);
  assertEquals(a!.xattrs.get("user.a=b"), new Uint8Array([0x80, 0x00, 0x7a]));
  assertEquals([b!.name, b!.linkname, b!.type], ["gnu/".repeat(40) + "file", "gnu/target", "link"]);
  // PAX records apply to the next entry only; the global header to none.
  assertEquals([c!.name, c!.uid, c!.pax], ["after", 5, undefined]);
});

Deno.test("TarReader reads base-256 numbers and signed checksums", async () => {
  const uid = new Uint8Array([0x80, 0, 0, 0, 0, 0x2d, 0xc6, 0xc0]); // 3_000_000
  const tar = concat([
    header({ name: "é-named", uid, magic: "gnu", signedChecksum: true }),
    header({ name: "v7", magic: "v7" }),
    END,
  ]);
  const { entries } = await readAll(tar, 512);
  assertEquals(entries.map((e) => [e.name, e.uid]), [["é-named", 3_000_000], ["v7", 0]]);
});

Deno.test("TarReader refuses corrupt and truncated tars", async () => {
  const file = concat([header({ name: "f", size: 2000 }), padded(new Uint8Array(2000))]);
  const cases: Array<[string, Uint8Array, string]> = [
    ["garbage", new Uint8Array(1024).fill(0x41), "checksum"],
    ["truncated data", file.subarray(0, 1000), "unexpected end"],
    ["truncated header", file.subarray(0, 300), "unexpected end"],
    ["a header after one zero block", concat([new Uint8Array(512), file]), "zero block"],
    [
      "a PAX header with nothing after it",
      concat([header({ name: "x", flag: "x", size: 9 }), padded(enc.encode("9 a=bcd\n\n"))]),
      "after an extended header",
    ],
  ];
  for (const [what, tar, message] of cases) {
    const reader = new TarReader(chunked(tar, 512));
    const err = await assertRejects(async () => {
      for (let h = await reader.next(); h !== null; h = await reader.next()) {
        while (await reader.read() !== null) { /* skip */ }
      }
    }, TarFormatError);
    assert(err.message.includes(message), `${what}: ${err.message}`);
  }
});

Deno.test("TarReader stops reading past the size limit, after the chunk that crossed it", async () => {
  const tar = concat([
    header({ name: "big", size: 4096 }),
    padded(new Uint8Array(4096)),
    header({ name: "next", size: 1 }),
    padded(enc.encode("1")),
    END,
  ]);
  const reader = new TarReader(chunked(tar, 1024), { maxSize: 1000 });
  const big = await reader.next();
  assert(big !== null && big.dataEnd === 512 + 4096);
  // The first chunk (1024 bytes) is read whole; the reader asks for no other.
  assertEquals((await reader.read())?.length, 512);
  await assertRejects(() => reader.read(), TarLimitError);
  assertEquals(reader.size, 1024);
});
