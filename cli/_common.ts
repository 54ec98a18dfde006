/**
 * What the daemon's CLI commands share: the global flags (`-a/--address`,
 * `-n/--namespace`, `--timeout`, from `TUG_ADDRESS` and `TUG_NAMESPACE`
 * too), the client made from them, command groups with verbs (`tug images
 * pull`), tables for people and `--json` for programs.
 *
 * Loads only the client (`mod.ts`): no `node:` built-ins, no HTTP framework.
 *
 * @module
 */

import {
  DEFAULT_ADDRESS,
  DEFAULT_NAMESPACE,
  InvalidArgument,
  TugClient,
  TugError,
} from "../mod.ts";
import { parseDuration } from "../util/units.ts";
import {
  flagHelp,
  type FlagSpec,
  longGlobalFlag,
  parseArgs,
  type ParsedArgs,
  type ParseOptions,
  stringFlag,
} from "./args.ts";

/** The flags every daemon command accepts. */
export const GLOBAL_FLAGS: readonly FlagSpec[] = [
  {
    name: "address",
    aliases: ["a"],
    type: "string",
    value: "SOCK",
    help: `The daemon's socket (TUG_ADDRESS, default ${DEFAULT_ADDRESS})`,
  },
  {
    name: "namespace",
    aliases: ["n"],
    type: "string",
    value: "NS",
    help: "The namespace (TUG_NAMESPACE, default default)",
  },
  {
    name: "timeout",
    type: "string",
    value: "DURATION",
    help: "Give up on a request after this long, e.g. 30s (default: no limit)",
  },
];

/**
 * A command's flags, the global ones and `--help`. A short name the command
 * has for a flag of its own is the command's (`containers start -a` attaches
 * and `tasks kill -a` signals all processes, as in Docker; `-a SOCK` before
 * the command still names the socket): the global `-a` took them, and
 * `start -a ID` took the container's id for the socket.
 */
export function withGlobals(flags: readonly FlagSpec[]): FlagSpec[] {
  const own = new Set(flags.flatMap((f) => f.aliases ?? []));
  const globals = GLOBAL_FLAGS.map((g) =>
    g.aliases?.some((a) => own.has(a)) ? { ...g, aliases: g.aliases.filter((a) => !own.has(a)) } : g
  );
  return [...flags, ...globals, HELP_FLAG];
}

/** `--json` for list and info commands. */
export const JSON_FLAG: FlagSpec = {
  name: "json",
  type: "boolean",
  help: "Print JSON instead of a table",
};

/** `-h/--help`. */
export const HELP_FLAG: FlagSpec = {
  name: "help",
  aliases: ["h"],
  type: "boolean",
  help: "Show this help",
};

/** Names of the global flags as they may appear on the command line, and whether they take a value. */
const GLOBAL_NAMES = new Set([
  "-a",
  "--address",
  "-address",
  "-n",
  "--namespace",
  "-namespace",
  "--timeout",
  "-timeout",
]);

/**
 * Splits leading global flags off `args` (`-n ns images ls` → globals
 * `["-n", "ns"]`, rest `["images", "ls"]`), so they may come before the
 * command as with ctr.
 */
export function splitGlobals(args: readonly string[]): { globals: string[]; rest: string[] } {
  const globals: string[] = [];
  let i = 0;
  while (i < args.length) {
    const a = args[i]!;
    const name = a.includes("=") ? a.slice(0, a.indexOf("=")) : a;
    if (!GLOBAL_NAMES.has(name)) break;
    globals.push(longGlobalFlag(a));
    if (!a.includes("=") && i + 1 < args.length) globals.push(args[++i]!);
    i++;
  }
  return { globals, rest: args.slice(i) };
}

/** Where and how to reach the daemon. */
export interface GlobalOptions {
  address: string;
  namespace: string;
  /** True when the namespace was given (flag or TUG_NAMESPACE), not defaulted. */
  namespaceGiven: boolean;
  /** Milliseconds; 0 for no limit. */
  timeout: number;
}

/** The global options from parsed flags and the environment. */
export function globalOptions(args: ParsedArgs): GlobalOptions {
  const flag = stringFlag(args, "namespace");
  if (flag === "") {
    // As ctr: an empty -n is a mistake (an unset variable), not a request for the default.
    throw new InvalidArgument(
      'Invalid namespace "": -n/--namespace needs a name (leave it out for default)',
    );
  }
  const ns = flag ?? Deno.env.get("TUG_NAMESPACE");
  const timeout = stringFlag(args, "timeout");
  return {
    address: stringFlag(args, "address") ?? Deno.env.get("TUG_ADDRESS") ?? DEFAULT_ADDRESS,
    namespace: ns || DEFAULT_NAMESPACE,
    namespaceGiven: !!ns,
    timeout: timeout === undefined ? 0 : parseDuration(timeout, "--timeout"),
  };
}

/** A client for the global options. */
export function connect(args: ParsedArgs): TugClient {
  const g = globalOptions(args);
  return new TugClient({ address: g.address, namespace: g.namespace, timeout: g.timeout });
}

/** One verb of a command group. */
export interface Verb {
  summary: string;
  /** Usage after `tug <group> <verb>`, e.g. `[flags] REF`. */
  usage: string;
  flags: readonly FlagSpec[];
  /** Extra help text under the flags. */
  help?: string;
  /** Stop flag parsing after this many positionals. */
  stopAfterPositionals?: number;
  aliases?: string[];
  run(args: ParsedArgs, command: string): Promise<number> | number;
}

function verbHelp(group: string, name: string, verb: Verb): string {
  const flags = withGlobals(verb.flags);
  return [
    `Usage: tug ${group} ${name} ${verb.usage}`.trimEnd(),
    "",
    verb.summary,
    ...(verb.help ? ["", verb.help] : []),
    "",
    "Flags:",
    flagHelp(flags),
  ].join("\n");
}

function groupHelp(group: string, summary: string, verbs: Record<string, Verb>): string {
  const width = Math.max(
    ...Object.keys(verbs).map((n) => n.length + (verbs[n]!.aliases?.join(", ").length ?? 0) + 4),
  ) + 2;
  return [
    `Usage: tug ${group} COMMAND [flags]`,
    "",
    summary,
    "",
    "Commands:",
    ...Object.entries(verbs).map(([n, v]) => {
      const names = v.aliases?.length ? `${n} (${v.aliases.join(", ")})` : n;
      return `  ${names.padEnd(width)}${v.summary}`;
    }),
    "",
    `Run 'tug ${group} COMMAND --help' for a command's flags.`,
  ].join("\n");
}

/** Parses a verb's arguments (its flags, the global flags, --help). */
export function parseVerb(
  args: readonly string[],
  flags: readonly FlagSpec[],
  command: string,
  options: ParseOptions = {},
): ParsedArgs {
  return parseArgs(args, withGlobals(flags), { command, ...options });
}

/**
 * Runs a command group: finds the verb (global flags may come first), parses
 * its flags, prints help for `--help`, and runs it.
 */
export async function runGroup(
  group: string,
  summary: string,
  verbs: Record<string, Verb>,
  args: readonly string[],
): Promise<number> {
  const { globals, rest } = splitGlobals(args);
  const [name, ...tail] = rest;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(groupHelp(group, summary, verbs));
    return name === undefined ? 1 : 0;
  }
  const entry = Object.entries(verbs).find(([n, v]) => n === name || v.aliases?.includes(name));
  if (!entry) {
    console.error(
      `tug ${group}: unknown command ${JSON.stringify(name)}\n\n${
        groupHelp(group, summary, verbs)
      }`,
    );
    return 2;
  }
  const [verbName, verb] = entry;
  const command = `tug ${group} ${verbName}`;
  const parsed = parseVerb(
    [...globals, ...tail],
    verb.flags,
    command,
    verb.stopAfterPositionals !== undefined
      ? { stopAfterPositionals: verb.stopAfterPositionals }
      : {},
  );
  if (parsed.flags.help) {
    console.log(verbHelp(group, verbName, verb));
    return 0;
  }
  return await verb.run(parsed, command);
}

/** Runs a single command (no verbs) with its flags, printing help for --help. */
export async function runCommand(
  name: string,
  spec: {
    summary: string;
    usage: string;
    flags: readonly FlagSpec[];
    help?: string;
    global?: boolean;
    /** Stop flag parsing after this many positionals (the rest goes to `rest`). */
    stopAfterPositionals?: number;
  },
  args: readonly string[],
  run: (args: ParsedArgs) => Promise<number> | number,
): Promise<number> {
  const all = spec.global === false ? [...spec.flags, HELP_FLAG] : withGlobals(spec.flags);
  const parsed = parseArgs(args, all, {
    command: `tug ${name}`,
    ...(spec.stopAfterPositionals !== undefined
      ? { stopAfterPositionals: spec.stopAfterPositionals }
      : {}),
  });
  if (parsed.flags.help) {
    console.log(
      [
        `Usage: tug ${name} ${spec.usage}`.trimEnd(),
        "",
        spec.summary,
        ...(spec.help ? ["", spec.help] : []),
        "",
        "Flags:",
        flagHelp(all),
      ].join("\n"),
    );
    return 0;
  }
  return await run(parsed);
}

/** Throws InvalidArgument unless the positionals number between `min` and `max`. */
export function positionals(
  args: ParsedArgs,
  command: string,
  names: string,
  min: number,
  max = min,
): string[] {
  const p = args.positionals;
  if (p.length < min) throw new InvalidArgument(`${command} needs ${names}`);
  if (p.length > max) {
    throw new InvalidArgument(
      `${command} takes ${names}, got ${p.length} argument${p.length === 1 ? "" : "s"}: ${
        p.join(" ")
      }`,
    );
  }
  return p;
}

/**
 * Runs `fn` for each of `names` in turn (`tug images rm a b c`): a failure
 * the daemon names is reported and the others still run; with a single name,
 * or an error that is not tug's, it is thrown. Resolves to the exit code: 1
 * when any failed.
 */
export async function forEachName(
  names: readonly string[],
  fn: (name: string) => Promise<unknown>,
): Promise<number> {
  let failed = 0;
  for (const name of names) {
    try {
      await fn(name);
    } catch (err) {
      if (!(err instanceof TugError) || names.length === 1) throw err;
      console.error(`tug: ${err.message}`);
      failed++;
    }
  }
  return failed ? 1 : 0;
}

/** Formats rows as a table with a header, columns padded to their widest cell. */
export function formatTable(
  header: readonly string[],
  rows: ReadonlyArray<readonly string[]>,
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join("   ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

/** Prints {@link formatTable}. */
export function printTable(
  header: readonly string[],
  rows: ReadonlyArray<readonly string[]>,
): void {
  console.log(formatTable(header, rows));
}

/** Prints a value as indented JSON. */
export function printJson(value: unknown): void {
  console.log(JSON.stringify(value, null, 2));
}

/** `k=v,k2=v2` of labels, or `-`. */
export function formatLabels(labels: Record<string, string>): string {
  const entries = Object.entries(labels);
  return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join(",") : "-";
}

/** How long ago an RFC 3339 time was, for people: `5 seconds`, `3 minutes`, `2 days`. */
export function age(time: string, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - Date.parse(time)) / 1000));
  const unit = (n: number, u: string) => `${n} ${u}${n === 1 ? "" : "s"}`;
  if (s < 60) return unit(s, "second");
  if (s < 3600) return unit(Math.floor(s / 60), "minute");
  if (s < 86400) return unit(Math.floor(s / 3600), "hour");
  return unit(Math.floor(s / 86400), "day");
}

/** A digest shortened for tables: `sha256:0123456789ab`. */
export function shortDigest(digest: string): string {
  const i = digest.indexOf(":");
  return i < 0 ? digest.slice(0, 12) : digest.slice(0, i + 13);
}

/** Parses `-u user[:password]`; without a password, asks on the terminal. */
export function parseUserFlag(
  value: string | undefined,
): { username: string; password: string } | undefined {
  if (value === undefined) return undefined;
  const i = value.indexOf(":");
  if (i === 0 || value === "") {
    throw new InvalidArgument(`Invalid --user ${JSON.stringify(value)}: expected user[:password]`);
  }
  if (i > 0) return { username: value.slice(0, i), password: value.slice(i + 1) };
  if (!Deno.stdin.isTerminal()) {
    throw new InvalidArgument(
      `--user ${value} needs a password: give user:password, or run on a terminal to be asked`,
    );
  }
  Deno.stdout.writeSync(new TextEncoder().encode("Password: "));
  Deno.stdin.setRaw(true);
  try {
    const buf = new Uint8Array(1024);
    let password = "";
    for (;;) {
      const n = Deno.stdin.readSync(buf);
      if (n === null) break;
      const s = new TextDecoder().decode(buf.subarray(0, n));
      const end = s.search(/[\r\n]/);
      if (s.includes("\x03")) throw new InvalidArgument("Password entry interrupted");
      password += end >= 0 ? s.slice(0, end) : s;
      if (end >= 0) break;
    }
    return { username: value, password };
  } finally {
    Deno.stdin.setRaw(false);
    Deno.stdout.writeSync(new TextEncoder().encode("\n"));
  }
}
