/**
 * Signal names as `kill` accepts them: `TERM`, `SIGTERM`, `15`, `SIGRTMIN+3`.
 *
 * @module
 */

import { SIGNALS, SIGRTMAX, SIGRTMIN } from "../ffi/constants.ts";
import { InvalidArgument } from "../errors.ts";

/**
 * Parses a signal name or number; an unknown one is an InvalidArgument naming
 * it. With `zero`, 0 is taken too: kill(2) then only checks that the process
 * exists (`runc kill ID 0`, a liveness probe).
 */
export function parseSignal(value: string, options: { zero?: boolean } = {}): number {
  const v = value.trim();
  if (/^\d+$/.test(v)) {
    const n = Number(v);
    if ((n >= 1 || (n === 0 && options.zero)) && n <= SIGRTMAX) return n;
    throw new InvalidArgument(`Invalid signal: ${JSON.stringify(value)} is out of range`);
  }
  const upper = v.toUpperCase();
  const name = upper.startsWith("SIG") ? upper : `SIG${upper}`;
  const known = SIGNALS[name];
  if (known !== undefined) return known;
  const rt = /^SIGRTMIN(?:\+(\d+))?$/.exec(name) ?? /^SIGRTMAX(?:-(\d+))?$/.exec(name);
  if (rt) {
    const offset = Number(rt[1] ?? 0);
    const n = name.startsWith("SIGRTMIN") ? SIGRTMIN + offset : SIGRTMAX - offset;
    if (n >= SIGRTMIN && n <= SIGRTMAX) return n;
  }
  throw new InvalidArgument(`Invalid signal: ${JSON.stringify(value)}`);
}

/** The name of a signal number, e.g. `SIGTERM`. */
export function signalName(signal: number): string {
  for (const [name, n] of Object.entries(SIGNALS)) if (n === signal) return name;
  return `signal ${signal}`;
}
