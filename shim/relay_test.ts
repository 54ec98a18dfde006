import { assert, assertEquals } from "../tests/assert.ts";
import { O_CLOEXEC, O_NONBLOCK, O_RDONLY, O_WRONLY } from "../ffi/constants.ts";
import { libcSyscall } from "../ffi/libc.ts";
import { Poller, setNonBlocking } from "../ffi/poller.ts";
import { SyscallError } from "../ffi/syscall.ts";
import { Relay } from "./relay.ts";

const sys = libcSyscall();

/** Bytes 0..n-1 of a repeating pattern that shows misordered or missing pieces. */
function pattern(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 7 + (i >> 12)) & 0xff;
  return out;
}

/** Writes `data` into a non-blocking fd as fast as it is taken, then closes it. */
async function writeAllThenClose(fd: number, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) {
    try {
      off += sys.write(fd, data.subarray(off, off + 65536));
    } catch (err) {
      if (!(err instanceof SyscallError && err.errnoName === "EAGAIN")) throw err;
      await new Promise((r) => setTimeout(r, 1));
    }
  }
  sys.close(fd);
}

/** Reads a non-blocking fd until end of file, `delayMs` between reads of at most `size` bytes. */
async function readSlowly(fd: number, size: number, delayMs: number): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(size);
  for (;;) {
    let n: number;
    try {
      n = sys.read(fd, buf);
    } catch (err) {
      if (!(err instanceof SyscallError && err.errnoName === "EAGAIN")) throw err;
      await new Promise((r) => setTimeout(r, delayMs));
      continue;
    }
    if (n === 0) break;
    parts.push(buf.slice(0, n));
    await new Promise((r) => setTimeout(r, delayMs));
  }
  sys.close(fd);
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function sum(chunks: Uint8Array[]): number {
  return chunks.reduce((a, c) => a + c.length, 0);
}

Deno.test("Relay hands a slow sink every byte in order, and the tap too", async () => {
  const poller = new Poller();
  const [srcR, srcW] = sys.pipe();
  const [sinkR, sinkW] = sys.pipe();
  setNonBlocking(srcW);
  setNonBlocking(sinkR);
  const data = pattern(3 * 1024 * 1024 + 123);
  const tapped: Uint8Array[] = [];
  let ended = false;
  const relay = new Relay(poller, sys, new Uint8Array(65536), {
    tap: (c) => tapped.push(c.slice()),
    onEnd: () => (ended = true),
  });
  relay.addSink(sinkW);
  relay.start(srcR);
  // The reader takes 16 KiB every 2 ms: far slower than the writer, so the sink is full most of the time.
  const [got] = await Promise.all([readSlowly(sinkR, 16384, 2), writeAllThenClose(srcW, data)]);
  await relay.ended;
  assert(ended, "onEnd was called");
  assertEquals(got.length, data.length);
  assert(got.every((b, i) => b === data[i]), "the sink got the bytes in order");
  assertEquals(sum(tapped), data.length);
  assertEquals(poller.size, 0);
  poller.close();
});

Deno.test("Relay drops a sink whose reader has gone and keeps feeding the tap", async () => {
  const poller = new Poller();
  const fifoDir = Deno.makeTempDirSync();
  try {
    const fifo = `${fifoDir}/out`;
    sys.mkfifo(fifo, 0o600);
    const reader = sys.open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    const sink = sys.open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    const [srcR, srcW] = sys.pipe();
    setNonBlocking(srcW);
    let tapped = 0;
    const relay = new Relay(poller, sys, new Uint8Array(65536), {
      tap: (c) => (tapped += c.length),
    });
    relay.addSink(sink);
    relay.start(srcR);
    // Nobody reads: the FIFO fills, the relay holds the rest and stops reading the source.
    const data = pattern(1024 * 1024);
    const writing = writeAllThenClose(srcW, data);
    await new Promise((r) => setTimeout(r, 200));
    assert(tapped < data.length, `the relay waited for its sink (tapped ${tapped})`);
    sys.close(reader); // the client goes away
    await writing;
    await relay.ended;
    assertEquals(tapped, data.length);
    assertEquals(poller.size, 0);
  } finally {
    poller.close();
    Deno.removeSync(fifoDir, { recursive: true });
  }
});

Deno.test("Relay gives every sink every byte; a slow one sets the pace, a gone one is dropped", async () => {
  const poller = new Poller();
  const [srcR, srcW] = sys.pipe();
  const [aR, aW] = sys.pipe();
  const [bR, bW] = sys.pipe();
  const [cR, cW] = sys.pipe();
  for (const fd of [srcW, aR, bR]) setNonBlocking(fd);
  const relay = new Relay(poller, sys, new Uint8Array(65536));
  relay.addSink(aW);
  relay.addSink(bW);
  relay.addSink(cW);
  relay.start(srcR);
  const data = pattern(2 * 1024 * 1024);
  sys.close(cR); // a client gone from the start: dropped at the first write
  const [a, b] = await Promise.all([
    readSlowly(aR, 65536, 0),
    readSlowly(bR, 8192, 1), // the slow one
    writeAllThenClose(srcW, data),
  ]);
  await relay.ended;
  for (const got of [a, b]) {
    assertEquals(got.length, data.length);
    assert(got.every((x, i) => x === data[i]), "every byte, in order");
  }
  assertEquals(relay.sinks, 0, "the sinks are closed at the end");
  poller.close();
});

Deno.test("Relay ends at the source's end of file (a client's stdin FIFO closed) and closes its fds", async () => {
  const poller = new Poller();
  const [srcR, srcW] = sys.pipe();
  const [sinkR, sinkW] = sys.pipe();
  const relay = new Relay(poller, sys, new Uint8Array(4096));
  relay.addSink(sinkW);
  relay.start(srcR);
  sys.write(srcW, new TextEncoder().encode("hello"));
  sys.close(srcW);
  await relay.ended;
  assert(relay.closed);
  assertEquals(poller.size, 0, "nothing left watched (a hung-up fd watched level-triggered spins)");
  const buf = new Uint8Array(16);
  assertEquals(new TextDecoder().decode(buf.subarray(0, sys.read(sinkR, buf))), "hello");
  assertEquals(sys.read(sinkR, buf), 0, "the relay closed its sink");
  sys.close(sinkR);
  poller.close();
});
