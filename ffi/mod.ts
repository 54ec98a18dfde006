/**
 * tug's system-call layer: the {@link Syscall} interface, its glibc
 * implementation and a recording fake for unit tests.
 *
 * @module
 */
export * from "./syscall.ts";
export { LibcSyscall, libcSyscall } from "./libc.ts";
