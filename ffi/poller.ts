/**
 * An epoll loop for raw fds (pipes, FIFOs, pty masters) that Deno's APIs
 * cannot wrap: one `epoll_wait` at a time runs on a helper thread (a
 * nonblocking FFI call), and ready fds are handed to their callbacks on the
 * main thread, which read them without blocking. One thread serves every fd,
 * however many containers a shim has.
 *
 * @module
 */

import { NR, O_NONBLOCK } from "./constants.ts";
import { errno } from "./libc.ts";

const EPOLLIN = 0x001;
const EPOLLOUT = 0x004;
const EPOLLERR = 0x008;
const EPOLLHUP = 0x010;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLL_CLOEXEC = 0o2000000;
const F_GETFL = 3;
const F_SETFL = 4;
const F_DUPFD_CLOEXEC = 1030;
const EVENT_SIZE = 12; // struct epoll_event is packed on x86_64 (12 bytes); aarch64 pads it to 16
const ARM64 = Deno.build.arch === "aarch64";

const SYMBOLS = {
  syscall: { parameters: ["i64", "i64", "i64", "i64", "i64", "i64", "i64"], result: "i64" },
  epoll_wait_async: {
    name: "epoll_wait",
    parameters: ["i32", "buffer", "i32", "i32"],
    result: "i32",
    nonblocking: true,
  },
} as const;

let lib: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] | undefined;
function symbols() {
  lib ??= Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  return lib;
}

function sc(nr: string, ...args: (number | bigint | Uint8Array)[]): number {
  const w = args.map((a) =>
    a instanceof Uint8Array ? BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(a))) : BigInt(a)
  );
  return Number(
    symbols().syscall(BigInt(NR[nr]!), w[0] ?? 0n, w[1] ?? 0n, w[2] ?? 0n, w[3] ?? 0n, 0n, 0n),
  );
}

/** Sets O_NONBLOCK on an fd (or clears it, with `on` false). */
export function setNonBlocking(fd: number, on = true): void {
  const flags = sc("fcntl", fd, F_GETFL);
  if (flags < 0) throw new Error(`fcntl F_GETFL fd ${fd}: errno ${errno()}`);
  if (sc("fcntl", fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK) < 0) {
    throw new Error(`fcntl F_SETFL fd ${fd}: errno ${errno()}`);
  }
}

/**
 * A new fd (close-on-exec) for the open file `fd` refers to: a pty master
 * watched for input by one callback and for output by another needs two
 * fds, since the poller keys its watchers by fd.
 */
export function dupCloexec(fd: number): number {
  const dup = sc("fcntl", fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) throw new Error(`fcntl F_DUPFD_CLOEXEC fd ${fd}: errno ${errno()}`);
  return dup;
}

/** What a watcher is told. */
export interface Readiness {
  readable: boolean;
  writable: boolean;
  /** Error or hang-up: the peer is gone (read what is left, then stop watching). */
  hangup: boolean;
}

/** An epoll set with a callback per fd. */
export class Poller {
  readonly #epfd: number;
  readonly #watchers = new Map<number, (r: Readiness) => void>();
  #running = false;
  #closed = false;

  constructor() {
    this.#epfd = sc("epoll_create1", EPOLL_CLOEXEC);
    if (this.#epfd < 0) throw new Error(`epoll_create1: errno ${errno()}`);
  }

  /**
   * Watches `fd` (made non-blocking) for input, output or both (`events`,
   * default "read"); errors and hang-ups are always reported. `onReady`
   * runs on the main thread.
   */
  watch(
    fd: number,
    onReady: (r: Readiness) => void,
    options: { events?: "read" | "write" | "both" } = {},
  ): void {
    setNonBlocking(fd);
    const ev = new Uint8Array(ARM64 ? 16 : EVENT_SIZE);
    const v = new DataView(ev.buffer);
    const events = options.events ?? "read";
    v.setUint32(0, (events !== "write" ? EPOLLIN : 0) | (events !== "read" ? EPOLLOUT : 0), true);
    v.setInt32(ARM64 ? 8 : 4, fd, true);
    if (sc("epoll_ctl", this.#epfd, EPOLL_CTL_ADD, fd, ev) < 0) {
      throw new Error(`epoll_ctl add fd ${fd}: errno ${errno()}`);
    }
    this.#watchers.set(fd, onReady);
    this.#loop();
  }

  /** Stops watching `fd` (it is not closed). */
  unwatch(fd: number): void {
    if (!this.#watchers.delete(fd)) return;
    sc("epoll_ctl", this.#epfd, EPOLL_CTL_DEL, fd, new Uint8Array(16));
  }

  /** Number of fds watched. */
  get size(): number {
    return this.#watchers.size;
  }

  async #loop(): Promise<void> {
    if (this.#running || this.#closed) return;
    this.#running = true;
    const stride = ARM64 ? 16 : EVENT_SIZE;
    const events = new Uint8Array(64 * stride);
    const view = new DataView(events.buffer);
    try {
      while (!this.#closed && this.#watchers.size > 0) {
        // A bounded wait, so that a poller with nothing left to watch lets the process exit.
        const n = await symbols().epoll_wait_async(this.#epfd, events, 64, 1000);
        for (let i = 0; i < n; i++) {
          const mask = view.getUint32(i * stride, true);
          const fd = view.getInt32(i * stride + (ARM64 ? 8 : 4), true);
          const watcher = this.#watchers.get(fd);
          if (!watcher) continue;
          try {
            watcher({
              readable: (mask & EPOLLIN) !== 0,
              writable: (mask & EPOLLOUT) !== 0,
              hangup: (mask & (EPOLLHUP | EPOLLERR)) !== 0,
            });
          } catch (err) {
            console.error(`tug: poller callback for fd ${fd} failed: ${(err as Error).message}`);
          }
        }
      }
    } finally {
      this.#running = false;
    }
  }

  /** Stops the loop; watched fds are left open. */
  close(): void {
    this.#closed = true;
    this.#watchers.clear();
    sc("close", this.#epfd);
  }
}
