/**
 * systemd's readiness protocol (sd_notify(3)): when `NOTIFY_SOCKET` is set,
 * the daemon sends `READY=1` once it serves and `STOPPING=1` when it begins
 * to shut down, each as one datagram to that AF_UNIX socket (a name
 * starting with `@` is in the abstract namespace).
 *
 * @module
 */

import type { Syscall } from "../ffi/syscall.ts";

/** Options for {@link sdNotify}. */
export interface NotifyOptions {
  /** The socket (default: `$NOTIFY_SOCKET`). */
  socket?: string;
  /** The system-call layer (default: glibc, loaded on first use). */
  sys?: Syscall;
}

/**
 * Sends `state` (e.g. `READY=1`) to the notify socket. Resolves to false,
 * doing nothing, when there is no socket; throws the send's SyscallError.
 */
export async function sdNotify(state: string, options: NotifyOptions = {}): Promise<boolean> {
  const socket = options.socket ?? Deno.env.get("NOTIFY_SOCKET");
  if (!socket) return false;
  const sys = options.sys ?? (await import("../ffi/libc.ts")).libcSyscall();
  sys.sendUnixDatagram(socket, new TextEncoder().encode(state));
  return true;
}
