/**
 * How tug starts another copy of itself (the shim, hooks helpers): the
 * compiled binary is just `Deno.execPath()`; under `deno run` (the bundle
 * launcher or a source checkout) it is the Deno binary with the same flags
 * and the main module.
 *
 * @module
 */

/**
 * The permission and V8 flags every tug process runs with (the Makefile's
 * RUNFLAGS). `--single-threaded` is what makes fork() safe (ffi/libc.ts);
 * a 1 MiB young generation keeps long-lived processes (daemon, shims) and
 * pulls small: a shim's heap grew by 0.7 MiB per container it held with
 * V8's default, by 0.25 MiB with 1 MiB. `--expose-gc` lets the daemon and
 * shims collect after bursts of work (util/gc.ts).
 */
export const RUN_FLAGS: readonly string[] = [
  "--allow-all",
  "--no-prompt",
  "--v8-flags=--single-threaded,--max-semi-space-size=1,--expose-gc",
];

/** The argv prefix that runs tug again: append the subcommand and its arguments. */
export function selfCommand(): string[] {
  if (Deno.build.standalone) return [Deno.execPath()];
  const main = Deno.mainModule;
  const extra = main.endsWith(".js") ? ["--no-config"] : [];
  return [Deno.execPath(), "run", ...RUN_FLAGS, ...extra, main];
}
