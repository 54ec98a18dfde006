/**
 * TOML documents (smol-toml, TOML 1.0) with syntax errors that fit on one
 * line and keep where they are: smol-toml's message is a first line, then a
 * code block with a caret, which log lines and error messages cannot carry.
 *
 * @module
 */

import { parse, TomlError } from "smol-toml";

/**
 * Parses a TOML document. Throws a SyntaxError whose message is one line:
 * smol-toml's, with the line and column of the error
 * (`Invalid TOML document: unfinished array at line 3, column 10`).
 */
export function parseTomlDocument(text: string): Record<string, unknown> {
  try {
    return parse(text) as Record<string, unknown>;
  } catch (err) {
    if (!(err instanceof TomlError)) throw err;
    const first = err.message.split("\n")[0] || "invalid TOML";
    throw new SyntaxError(`${first} at line ${err.line}, column ${err.column}`, { cause: err });
  }
}
