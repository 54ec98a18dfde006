/**
 * The shim's child reaper. The shim is the parent of its containers' inits
 * and exec'd processes, and the subreaper of everything they leave behind, so
 * it must collect every exit: on SIGCHLD (and on a slow timer, in case a
 * signal was coalesced) it peeks at the next exited child with
 * waitid(WNOWAIT), reaps it unless another part of the shim reserved that pid
 * (a create or exec still in progress collects its own failures), and hands
 * the status to whoever waits for it.
 *
 * @module
 */

import { NR } from "../ffi/constants.ts";
import { errno, libcSyscall } from "../ffi/libc.ts";
import type { Syscall } from "../ffi/syscall.ts";

const P_ALL = 0;
const WEXITED = 4;
const WNOHANG = 1;
const WNOWAIT = 0x01000000;

let waitidSymbol:
  | Deno.DynamicLibrary<
    { syscall: { parameters: ["i64", "i64", "i64", "buffer", "i64", "i64"]; result: "i64" } }
  >["symbols"]
  | undefined;

/** The pid of an exited child not yet reaped, or 0 when there is none. */
function peekExited(): number {
  waitidSymbol ??= Deno.dlopen(
    "libc.so.6",
    {
      syscall: { parameters: ["i64", "i64", "i64", "buffer", "i64", "i64"], result: "i64" },
    } as const,
  ).symbols;
  const info = new Uint8Array(128);
  const r = waitidSymbol.syscall(
    BigInt(NR.waitid!),
    BigInt(P_ALL),
    0n,
    info,
    BigInt(WEXITED | WNOHANG | WNOWAIT),
    0n,
  );
  if (r < 0n) {
    if (errno() === 10 /* ECHILD */) return 0;
    return 0;
  }
  return new DataView(info.buffer).getInt32(16, true); // si_pid
}

/** Collects exits of the shim's children. */
export class Reaper {
  readonly #sys: Syscall;
  readonly #waiters = new Map<number, ((status: number) => void)[]>();
  /** Exits nobody waited for yet: kept so a later wait() still learns the status. */
  readonly #unclaimed = new Map<number, number>();
  readonly #reserved = new Set<number>();
  readonly #onExit: (pid: number, status: number) => void;
  #timer: ReturnType<typeof setInterval> | undefined;
  #listener = () => this.reap();

  /** `onExit` hears about every exit (containers, execs, orphans adopted as subreaper). */
  constructor(options: { sys?: Syscall; onExit?: (pid: number, status: number) => void } = {}) {
    this.#sys = options.sys ?? libcSyscall();
    this.#onExit = options.onExit ?? (() => {});
  }

  /** Starts listening for SIGCHLD. */
  start(): void {
    Deno.addSignalListener("SIGCHLD", this.#listener);
    const timer = setInterval(this.#listener, 1000);
    Deno.unrefTimer(timer as unknown as number);
    this.#timer = timer;
    this.reap();
  }

  /** Stops listening. */
  stop(): void {
    Deno.removeSignalListener("SIGCHLD", this.#listener);
    if (this.#timer !== undefined) clearInterval(this.#timer);
  }

  /** Keeps the reaper's hands off `pid` until released (its creator collects it on failure). */
  reserve(pid: number): void {
    this.#reserved.add(pid);
  }

  /** Lets the reaper collect `pid` again (and collects it now if it already exited). */
  release(pid: number): void {
    this.#reserved.delete(pid);
    this.reap();
  }

  /** Resolves with the raw wait status of `pid` once it exits. */
  wait(pid: number): Promise<number> {
    const status = this.#unclaimed.get(pid);
    if (status !== undefined) {
      this.#unclaimed.delete(pid);
      return Promise.resolve(status);
    }
    return new Promise((resolve) => {
      const list = this.#waiters.get(pid) ?? [];
      list.push(resolve);
      this.#waiters.set(pid, list);
    });
  }

  /** Reaps every exited child that is not reserved. */
  reap(): void {
    for (;;) {
      const pid = peekExited();
      if (pid <= 0 || this.#reserved.has(pid)) return;
      let status: number;
      try {
        status = this.#sys.waitpid(pid, WNOHANG).status;
      } catch {
        return;
      }
      this.#onExit(pid, status);
      const waiters = this.#waiters.get(pid);
      if (waiters) {
        this.#waiters.delete(pid);
        for (const w of waiters) w(status);
      } else {
        this.#unclaimed.set(pid, status);
        // Orphans nobody will ever ask about must not pile up.
        if (this.#unclaimed.size > 1024) {
          this.#unclaimed.delete(this.#unclaimed.keys().next().value!);
        }
      }
    }
  }
}
