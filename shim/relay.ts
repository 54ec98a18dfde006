/**
 * A relay moves bytes from one fd to another on the shim's poller: a
 * container's stdout or stderr pipe (or its pty master) into its log and the
 * FIFO of an attached client, or a client's stdin FIFO into a pty master.
 *
 * The sink gets every byte, in order, at the pace it takes them: when it is
 * full, the relay holds what did not fit and stops reading its source until
 * the sink can take more (with several sinks, attached clients, the
 * slowest sets the pace), so a container writing faster than its client
 * reads waits, as it would writing to a pipe (containerd's shim copies the
 * same way). A sink whose reader has gone (EPIPE) is dropped, and the
 * relay goes on reading, into the tap (the log) only. A relay reads at most
 * {@link READS_PER_WAKE} chunks per wake-up, so that one busy container
 * does not keep the shim from its other work.
 *
 * @module
 */

import { type Poller, setNonBlocking } from "../ffi/poller.ts";
import { type Syscall, SyscallError } from "../ffi/syscall.ts";

/**
 * Reads a relay makes per wake-up before it lets the event loop run (the
 * poller is level-triggered: the rest comes at the next wake-up). Without a
 * bound, a container writing as fast as the shim reads (`yes`) kept the
 * shim in one callback for ever, and it answered no request; with 16 a
 * request still waited 13 s behind the log writes, with 2 it is answered at
 * once.
 */
export const READS_PER_WAKE = 2;

/** What a {@link Relay} does besides moving bytes. */
export interface RelayOptions {
  /** Sees every chunk read, before the sink does (a container's log); the chunk is valid during the call only. */
  tap?: (chunk: Uint8Array) => void;
  /** Called once the source has ended (end of file, or a read error such as a pty's EIO) and the relay has closed its fds. */
  onEnd?: () => void;
}

/** A sink and what it has not taken yet. */
interface Sink {
  fd: number;
  /** Bytes read that this sink has not taken yet; the source is not read while any sink has some. */
  pending?: Uint8Array;
}

/** Moves bytes from a source fd to sink fds with back-pressure (see the module documentation). */
export class Relay {
  readonly #poller: Poller;
  readonly #sys: Syscall;
  readonly #buffer: Uint8Array;
  readonly #options: RelayOptions;
  #from: number | undefined;
  readonly #sinks: Sink[] = [];
  #readingSource = false;
  #closed = false;
  #onClosed!: () => void;
  /** Settles when the relay has ended (its source ended, or {@link close}). */
  readonly ended: Promise<void> = new Promise((resolve) => (this.#onClosed = resolve));

  /**
   * `buffer` is what the relay reads into; relays on one poller can share
   * one, since callbacks run one at a time and a chunk a sink does not
   * take at once is copied.
   */
  constructor(poller: Poller, sys: Syscall, buffer: Uint8Array, options: RelayOptions = {}) {
    this.#poller = poller;
    this.#sys = sys;
    this.#buffer = buffer;
    this.#options = options;
  }

  /** Whether the relay has ended (its source ended, or {@link close}). */
  get closed(): boolean {
    return this.#closed;
  }

  /** How many sinks the relay writes to. */
  get sinks(): number {
    return this.#sinks.length;
  }

  /** Starts reading `from` (made non-blocking); the relay owns it from now on. */
  start(from: number): void {
    if (this.#closed) throw new Error("relay: start after close");
    if (this.#from !== undefined) throw new Error("relay: started twice");
    this.#from = from;
    this.#resume();
  }

  /**
   * Sends what is read from now on to `fd` too (owned from now on and made
   * non-blocking: a FIFO's write end, a pty master). Every sink gets every
   * byte: the slowest sets the pace.
   */
  addSink(fd: number): void {
    if (this.#closed) return this.#closeQuietly(fd);
    setNonBlocking(fd);
    this.#sinks.push({ fd });
  }

  /** Stops at once and closes every fd (what is held for a sink is dropped). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pauseSource();
    for (const sink of this.#sinks.splice(0)) {
      if (sink.pending) this.#poller.unwatch(sink.fd);
      this.#closeQuietly(sink.fd);
    }
    if (this.#from !== undefined) this.#closeQuietly(this.#from);
    this.#from = undefined;
    this.#onClosed();
  }

  #onReadable = (): void => {
    const from = this.#from!;
    for (let reads = 0; reads < READS_PER_WAKE; reads++) {
      let n: number;
      try {
        n = this.#sys.read(from, this.#buffer);
      } catch (err) {
        if (err instanceof SyscallError && err.errnoName === "EAGAIN") return;
        n = 0; // EIO: a pty whose last slave fd closed
      }
      if (n === 0) {
        this.close();
        this.#options.onEnd?.();
        return;
      }
      const chunk = this.#buffer.subarray(0, n);
      this.#options.tap?.(chunk);
      let held = false;
      for (const sink of [...this.#sinks]) {
        const written = this.#write(sink, chunk);
        if (written < chunk.length && this.#sinks.includes(sink)) {
          sink.pending = chunk.slice(written);
          this.#poller.watch(sink.fd, () => this.#onSinkReady(sink), { events: "write" });
          held = true;
        }
      }
      if (held) {
        this.#pauseSource();
        return;
      }
    }
  };

  #onSinkReady(sink: Sink): void {
    const pending = sink.pending;
    if (pending === undefined) return;
    const written = this.#write(sink, pending);
    if (!this.#sinks.includes(sink)) return; // dropped
    if (written < pending.length) {
      sink.pending = pending.subarray(written);
      return;
    }
    sink.pending = undefined;
    this.#poller.unwatch(sink.fd);
    this.#resume();
  }

  /** Writes what the sink takes now; a sink whose reader has gone is dropped. */
  #write(sink: Sink, data: Uint8Array): number {
    let off = 0;
    try {
      while (off < data.length) off += this.#sys.write(sink.fd, data.subarray(off));
    } catch (err) {
      if (err instanceof SyscallError && err.errnoName === "EAGAIN") return off;
      this.#drop(sink); // EPIPE: nobody reads it any more
    }
    return off;
  }

  #drop(sink: Sink): void {
    const at = this.#sinks.indexOf(sink);
    if (at < 0) return;
    this.#sinks.splice(at, 1);
    if (sink.pending) this.#poller.unwatch(sink.fd);
    sink.pending = undefined;
    this.#closeQuietly(sink.fd);
    this.#resume();
  }

  /** Reads the source again once no sink holds bytes back. */
  #resume(): void {
    if (this.#readingSource || this.#closed || this.#from === undefined) return;
    if (this.#sinks.some((s) => s.pending)) return;
    this.#poller.watch(this.#from, this.#onReadable);
    this.#readingSource = true;
  }

  #pauseSource(): void {
    if (!this.#readingSource) return;
    this.#poller.unwatch(this.#from!);
    this.#readingSource = false;
  }

  #closeQuietly(fd: number): void {
    try {
      this.#sys.close(fd);
    } catch {
      // closed already
    }
  }
}
