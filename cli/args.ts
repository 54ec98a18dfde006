/**
 * Command-line flag parsing shaped like runc's and ctr's: `--flag value`,
 * `--flag=value`, `-f value`, single-dash long names (`-root`), repeatable
 * flags, and parsing that stops after a given number of positionals so that a
 * container's own command (`run IMAGE ID sh -c "…"`) is passed through untouched.
 *
 * @module
 */

import { InvalidArgument } from "../errors.ts";

/** One flag a command accepts. */
export interface FlagSpec {
  /** Long name without dashes, e.g. `bundle`. */
  name: string;
  /** Other names (single letters are used with one dash), e.g. `["b"]`. */
  aliases?: string[];
  /** `boolean` flags take no value; `string` flags take one; `list` flags repeat. */
  type: "boolean" | "string" | "list";
  /** Shown in help. */
  help?: string;
  /** Placeholder for the value in help. */
  value?: string;
}

/** What `parseArgs` found. */
export interface ParsedArgs {
  /** Flag values by long name: boolean, string, or string[] for lists. */
  flags: Record<string, boolean | string | string[] | undefined>;
  /** Positional arguments, in order. */
  positionals: string[];
  /** Everything after the positional limit (or after `--`), untouched. */
  rest: string[];
}

/** Options for {@link parseArgs}. */
export interface ParseOptions {
  /** Stop parsing flags once this many positionals have been read; the remainder goes to `rest`. */
  stopAfterPositionals?: number;
  /** The command's name, for error messages. */
  command?: string;
}

/**
 * Parses `argv` against `specs`. An unknown flag or a missing value throws
 * InvalidArgument naming the flag.
 *
 * @example
 * ```ts
 * const { flags, positionals } = parseArgs(["--bundle", "b", "id1"], [{ name: "bundle", type: "string" }]);
 * ```
 */
export function parseArgs(
  argv: readonly string[],
  specs: readonly FlagSpec[],
  options: ParseOptions = {},
): ParsedArgs {
  const byName = new Map<string, FlagSpec>();
  for (const spec of specs) {
    byName.set(spec.name, spec);
    for (const alias of spec.aliases ?? []) byName.set(alias, spec);
  }
  const flags: ParsedArgs["flags"] = {};
  const positionals: string[] = [];
  const where = options.command ? ` for ${options.command}` : "";
  let i = 0;
  for (; i < argv.length; i++) {
    if (
      options.stopAfterPositionals !== undefined &&
      positionals.length >= options.stopAfterPositionals
    ) break;
    const arg = argv[i]!;
    if (arg === "--") {
      i++;
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      positionals.push(arg);
      continue;
    }
    const body = arg.replace(/^--?/, "");
    const eq = body.indexOf("=");
    const name = eq >= 0 ? body.slice(0, eq) : body;
    const spec = byName.get(name);
    if (!spec) throw new InvalidArgument(`Unknown flag${where}: ${arg}`);
    if (spec.type === "boolean") {
      if (eq >= 0) {
        const v = body.slice(eq + 1);
        if (v !== "true" && v !== "false") {
          throw new InvalidArgument(
            `Invalid value for --${spec.name}${where}: ${JSON.stringify(v)} is not true or false`,
          );
        }
        flags[spec.name] = v === "true";
      } else {
        flags[spec.name] = true;
      }
      continue;
    }
    let value: string;
    if (eq >= 0) {
      value = body.slice(eq + 1);
    } else {
      if (i + 1 >= argv.length) throw new InvalidArgument(`Flag needs a value${where}: ${arg}`);
      value = argv[++i]!;
    }
    if (spec.type === "list") {
      const list = (flags[spec.name] as string[] | undefined) ?? [];
      list.push(value);
      flags[spec.name] = list;
    } else {
      flags[spec.name] = value;
    }
  }
  return { flags, positionals, rest: argv.slice(i) };
}

/** A string flag's value, or `fallback`. */
export function stringFlag(args: ParsedArgs, name: string, fallback?: string): string | undefined {
  const v = args.flags[name];
  return typeof v === "string" ? v : fallback;
}

/** A boolean flag's value (false when absent). */
export function boolFlag(args: ParsedArgs, name: string): boolean {
  return args.flags[name] === true;
}

/** A list flag's values (empty when absent). */
export function listFlag(args: ParsedArgs, name: string): string[] {
  const v = args.flags[name];
  return Array.isArray(v) ? v : [];
}

/** Formats flag help lines for a usage message. */
export function flagHelp(specs: readonly FlagSpec[]): string {
  const rows = specs.map((s) => {
    const names = [
      `--${s.name}`,
      ...(s.aliases ?? []).map((a) => (a.length === 1 ? `-${a}` : `--${a}`)),
    ];
    const left = names.join(", ") + (s.type === "boolean" ? "" : ` ${s.value ?? "VALUE"}`);
    return [left, s.help ?? ""] as const;
  });
  const width = Math.max(0, ...rows.map(([l]) => l.length)) + 2;
  return rows.map(([l, h]) => `  ${l.padEnd(width)}${h}`).join("\n");
}

/** Throws InvalidArgument unless exactly `count` positionals were given. */
export function expectPositionals(
  args: ParsedArgs,
  names: readonly string[],
  command: string,
): string[] {
  if (args.positionals.length < names.length) {
    throw new InvalidArgument(
      `${command} needs ${names.map((n) => n.toUpperCase()).join(" ")}: missing ${
        names[args.positionals.length]!.toUpperCase()
      }`,
    );
  }
  if (args.positionals.length > names.length && args.rest.length === 0) {
    throw new InvalidArgument(
      `${command} takes ${names.length} argument(s), got ${args.positionals.length}: ${
        args.positionals.join(" ")
      }`,
    );
  }
  return args.positionals.slice(0, names.length);
}

/**
 * The long form of a global flag written before a command (`-a` →
 * `--address`, `-n=x` → `--namespace=x`): the globals are handed on to the
 * command's own parser, where a short letter may be one of the command's
 * flags (`containers start -a` attaches).
 */
export function longGlobalFlag(arg: string): string {
  const m = /^-([an])(=.*)?$/.exec(arg);
  return m ? `--${m[1] === "a" ? "address" : "namespace"}${m[2] ?? ""}` : arg;
}
