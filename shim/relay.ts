/**
 * A relay moves bytes from one fd to another on the shim's poller: a
 * container's stdout or stderr pipe (or its pty master) into its log and the
 * FIFO of an attached client, or a client's stdin FIFO into a pty master.
 *
 * The sink gets every byte, in order, at the pace it takes them: when it is
 * full, the relay holds what did not fit and stops reading its source until
 * the sink can take more, so a container writing faster than its client
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

/** Moves bytes from a source fd to a sink fd with back-pressure (see the module documentation). */
export class Relay {
  readonly #poller: Poller;
  readonly #sys: Syscall;
  readonly #buffer: Uint8Array;
  readonly #options: RelayOptions;
  #from: number | undefined;
  #sink: number | undefined;
  /** Bytes read that the sink has not taken yet; the source is not read meanwhile. */
  #pending: Uint8Array | undefined;
  #readingSource = false;
  #watchingSink = false;
  #closed = false;
  #onClosed!: () => void;
  /** Settles when the relay has ended (its source ended, or {@link close}). */
  readonly ended: Promise<void> = new Promise((resolve) => (this.#onClosed = resolve));

  /**
   * `buffer` is what the relay reads into; relays on one poller can share
   * one, since callbacks run one at a time and a chunk the sink does not
   * take is copied.
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

  /** The source fd while the relay runs. */
  get source(): number | undefined {
    return this.#from;
  }

  /** Starts reading `from` (made non-blocking); the relay owns it from now on. */
  start(from: number): void {
    if (this.#closed) throw new Error("relay: start after close");
    if (this.#from !== undefined) throw new Error("relay: started twice");
    this.#from = from;
    this.#resume();
  }

  /**
   * Sends what follows to `fd` (owned from now on and made non-blocking: a
   * FIFO's write end, a pty master), or nowhere with `undefined`. The previous
   * sink is closed; bytes it had not taken go to the new one.
   */
  setSink(fd: number | undefined): void {
    if (this.#closed) {
      if (fd !== undefined) this.#closeQuietly(fd);
      return;
    }
    if (fd !== undefined) setNonBlocking(fd);
    this.#unwatchSink();
    if (this.#sink !== undefined) this.#closeQuietly(this.#sink);
    this.#sink = fd;
    if (this.#pending === undefined) return;
    if (fd === undefined) {
      this.#pending = undefined;
      this.#resume();
    } else {
      this.#waitForSink();
    }
  }

  /** Stops at once and closes both fds (what is held for the sink is dropped). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending = undefined;
    this.#unwatchSink();
    this.#pauseSource();
    if (this.#from !== undefined) this.#closeQuietly(this.#from);
    if (this.#sink !== undefined) this.#closeQuietly(this.#sink);
    this.#from = this.#sink = undefined;
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
      if (this.#sink === undefined) continue;
      const written = this.#write(chunk);
      if (written < chunk.length && this.#sink !== undefined) {
        this.#pending = chunk.slice(written);
        this.#pauseSource();
        this.#waitForSink();
        return;
      }
    }
  };

  #onSinkReady = (): void => {
    const pending = this.#pending;
    if (pending === undefined) return this.#resume();
    const written = this.#write(pending);
    if (this.#sink === undefined) return; // dropped, and reading again
    if (written < pending.length) {
      this.#pending = pending.subarray(written);
      return;
    }
    this.#pending = undefined;
    this.#resume();
  };

  /** Writes what the sink takes now; a sink whose reader has gone is dropped (and reading resumes). */
  #write(data: Uint8Array): number {
    let off = 0;
    try {
      while (off < data.length) off += this.#sys.write(this.#sink!, data.subarray(off));
    } catch (err) {
      if (err instanceof SyscallError && err.errnoName === "EAGAIN") return off;
      this.setSink(undefined); // EPIPE: nobody reads it any more
    }
    return off;
  }

  #resume(): void {
    this.#unwatchSink();
    if (this.#readingSource || this.#closed || this.#from === undefined) return;
    this.#poller.watch(this.#from, this.#onReadable);
    this.#readingSource = true;
  }

  #pauseSource(): void {
    if (!this.#readingSource) return;
    this.#poller.unwatch(this.#from!);
    this.#readingSource = false;
  }

  #waitForSink(): void {
    if (this.#watchingSink) return;
    this.#poller.watch(this.#sink!, this.#onSinkReady, { events: "write" });
    this.#watchingSink = true;
  }

  #unwatchSink(): void {
    if (!this.#watchingSink) return;
    this.#poller.unwatch(this.#sink!);
    this.#watchingSink = false;
  }

  #closeQuietly(fd: number): void {
    try {
      this.#sys.close(fd);
    } catch {
      // closed already
    }
  }
}
