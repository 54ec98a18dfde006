/**
 * Reading and writing raw fds without blocking the event loop: the same libc
 * read/write, declared `nonblocking` so each call runs on a helper thread.
 * For pumping a pty master or a pipe the Deno APIs cannot wrap.
 *
 * @module
 */

const SYMBOLS = {
  read: { parameters: ["i32", "buffer", "usize"], result: "isize", nonblocking: true },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize", nonblocking: true },
} as const;

let library: Deno.DynamicLibrary<typeof SYMBOLS> | undefined;

function lib() {
  library ??= Deno.dlopen("libc.so.6", SYMBOLS);
  return library.symbols;
}

/** Reads up to `buf.length` bytes; resolves to 0 at end of file and -1 on an error (errno is not readable here). */
export async function readAsync(fd: number, buf: Uint8Array): Promise<number> {
  return Number(await lib().read(fd, buf, BigInt(buf.length)));
}

/** Writes all of `data`; resolves to false when the fd refuses. */
export async function writeAllAsync(fd: number, data: Uint8Array): Promise<boolean> {
  let off = 0;
  while (off < data.length) {
    const n = Number(await lib().write(fd, data.subarray(off), BigInt(data.length - off)));
    if (n <= 0) return false;
    off += n;
  }
  return true;
}
