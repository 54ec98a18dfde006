/**
 * OCI hooks: a program run with the container's State on stdin. The
 * runtime-namespace hooks (prestart, createRuntime, poststart, poststop) run
 * from the parent with Deno.Command; the container-namespace hooks
 * (createContainer, startContainer) run from the container's init, which may
 * only make synchronous calls, so `runHookSync` forks and execs through the
 * Syscall layer.
 *
 * @module
 */

import { SIGNALS, SOCK_STREAM, WNOHANG } from "../ffi/constants.ts";
import { exitCodeOf, type Syscall } from "../ffi/syscall.ts";
import { FailedPrecondition } from "../errors.ts";
import type { Hook, State } from "./spec.ts";

function describe(kind: string, hook: Hook): string {
  return `${kind} hook ${hook.path}`;
}

/** Runs one hook to completion from an async context; throws FailedPrecondition on failure or timeout. */
export async function runHook(kind: string, hook: Hook, state: State): Promise<void> {
  const args = hook.args ?? [hook.path];
  const command = new Deno.Command(hook.path, {
    args: args.slice(1),
    env: Object.fromEntries(
      (hook.env ?? []).map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]),
    ),
    clearEnv: true,
    stdin: "piped",
    stdout: "inherit",
    stderr: "piped",
  });
  let child: Deno.ChildProcess;
  try {
    child = command.spawn();
  } catch (err) {
    throw new FailedPrecondition(`Cannot run ${describe(kind, hook)}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify(state))).catch(() => {});
  await writer.close().catch(() => {});
  let timedOut = false;
  const timer = hook.timeout
    ? setTimeout(() => {
      timedOut = true;
      try {
        child.kill("SIGKILL");
      } catch {
        // exited already
      }
    }, hook.timeout * 1000)
    : undefined;
  const out = await child.output();
  if (timer !== undefined) clearTimeout(timer);
  if (timedOut) {
    throw new FailedPrecondition(`${describe(kind, hook)} timed out after ${hook.timeout}s`);
  }
  if (!out.success) {
    const stderr = new TextDecoder().decode(out.stderr).trim();
    throw new FailedPrecondition(
      `${describe(kind, hook)} failed with exit code ${out.code}${stderr ? `: ${stderr}` : ""}`,
    );
  }
}

/** Runs hooks in order; the first failure stops the rest. */
export async function runHooks(kind: string, hooks: readonly Hook[], state: State): Promise<void> {
  for (const hook of hooks) await runHook(kind, hook, state);
}

/**
 * Forks a hook's process with the State on its stdin (a socket) and returns
 * its pid, for callers that cannot spawn (a forked init, a shim that reaps
 * its children itself). The child exits 127 when the hook cannot be executed.
 */
export function forkHook(sys: Syscall, hook: Hook, state: State): number {
  const [ours, theirs] = sys.socketpair(SOCK_STREAM);
  const pid = sys.fork();
  if (pid === 0) {
    try {
      sys.dup2(theirs, 0);
      sys.resetSignals();
      sys.closeRange(3, 0xffffffff);
      sys.execve(hook.path, hook.args ?? [hook.path], hook.env ?? []);
    } catch {
      // fall through to exit
    }
    sys.exit(127);
  }
  sys.close(theirs);
  try {
    sys.write(ours, new TextEncoder().encode(JSON.stringify(state)));
  } catch {
    // a hook that does not read stdin is fine
  }
  sys.close(ours);
  return pid;
}

/**
 * Runs a hook from synchronous code (the container's init): {@link forkHook},
 * then poll for its exit, killing it at the timeout. Throws
 * FailedPrecondition on failure.
 */
export function runHookSync(sys: Syscall, kind: string, hook: Hook, state: State): void {
  const pid = forkHook(sys, hook, state);
  const deadline = hook.timeout ? Date.now() + hook.timeout * 1000 : Infinity;
  for (;;) {
    const r = sys.waitpid(pid, WNOHANG);
    if (r.pid === pid) {
      const code = exitCodeOf(r.status);
      if (code === 0) return;
      const why = code === 127 ? `it could not be executed` : `exit code ${code}`;
      throw new FailedPrecondition(`${describe(kind, hook)} failed: ${why}`);
    }
    if (Date.now() > deadline) {
      sys.kill(pid, SIGNALS.SIGKILL!);
      sys.waitpid(pid, 0);
      throw new FailedPrecondition(`${describe(kind, hook)} timed out after ${hook.timeout}s`);
    }
    sys.sleep(1);
  }
}
