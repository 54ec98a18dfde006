/**
 * Image references, parsed and normalised the way Docker does it
 * (distribution/reference's ParseNormalizedNamed + ParseDockerRef):
 *
 * | input                        | normalised                                |
 * |------------------------------|-------------------------------------------|
 * | `busybox`                    | `docker.io/library/busybox:latest`        |
 * | `user/app:1`                 | `docker.io/user/app:1`                    |
 * | `index.docker.io/x`          | `docker.io/library/x:latest`              |
 * | `localhost:5000/x`           | `localhost:5000/x:latest`                 |
 * | `host:5000/a/b@sha256:…`     | `host:5000/a/b@sha256:…`                  |
 * | `x:1@sha256:…`               | keeps the tag for display; resolves by digest |
 *
 * The first path component is a registry host when it contains `.` or `:`,
 * or is `localhost`; otherwise the name is on Docker Hub (as Docker's
 * reference parser since 2023: `UPPER/Case` is a repository named in
 * uppercase, not a host `UPPER`).
 * Docker Hub itself is served by `registry-1.docker.io` (see hosts.ts).
 *
 * @module
 */

import { InvalidArgument } from "../../errors.ts";
import type { Digest } from "../types.ts";
import { parseDigest } from "../content/digest.ts";

/** Docker Hub's name in references. */
export const DEFAULT_DOMAIN = "docker.io";
/** Docker Hub's legacy name, normalised to {@link DEFAULT_DOMAIN}. */
export const LEGACY_DEFAULT_DOMAIN = "index.docker.io";
/** The tag a reference without tag or digest gets. */
export const DEFAULT_TAG = "latest";
const OFFICIAL_PREFIX = "library/";
const NAME_TOTAL_LENGTH_MAX = 255;

/** A parsed, normalised image reference. */
export interface Reference {
  /** Registry host with optional port, e.g. `docker.io`, `localhost:5000`, `[::1]:5000`. */
  domain: string;
  /** Repository path inside the registry, e.g. `library/busybox`. */
  path: string;
  /** Tag; `latest` when the reference had neither a tag nor a digest. */
  tag?: string;
  /** Digest, when the reference pins one; resolution then uses it and ignores the tag. */
  digest?: Digest;
}

// The grammar of distribution/reference (regexp.go), as JavaScript regular expressions.
const alphanumeric = "[a-z0-9]+";
const separator = "(?:[._]|__|[-]+)";
const pathComponent = `${alphanumeric}(?:${separator}${alphanumeric})*`;
const remoteName = `${pathComponent}(?:/${pathComponent})*`;
const domainNameComponent = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const domainName = `${domainNameComponent}(?:\\.${domainNameComponent})*`;
const ipv6address = "\\[(?:[a-fA-F0-9:]+)\\]";
const domainAndPort = `(?:${domainName}|${ipv6address})(?::[0-9]+)?`;
const tagPat = "[\\w][\\w.-]{0,127}";
const digestPat = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}";
const namePat = `(?:${domainAndPort}/)?${remoteName}`;
const REFERENCE = new RegExp(`^(${namePat})(?::(${tagPat}))?(?:@(${digestPat}))?$`);
const ANCHORED_NAME = new RegExp(`^(?:(${domainAndPort})/)?(${remoteName})$`);
const ANCHORED_IDENTIFIER = /^[a-f0-9]{64}$/;
const ANCHORED_TAG = new RegExp(`^${tagPat}$`);

function invalid(ref: string, why: string): InvalidArgument {
  return new InvalidArgument(`parse reference "${ref}" failed: ${why}`);
}

/** Splits a name into registry domain and remainder, as Docker's splitDockerDomain does. */
function splitDockerDomain(name: string): [string, string] {
  const slash = name.indexOf("/");
  if (slash === -1) return [DEFAULT_DOMAIN, OFFICIAL_PREFIX + name];
  const maybeDomain = name.slice(0, slash);
  const rest = name.slice(slash + 1);
  let domain: string;
  let remote: string;
  if (maybeDomain === "localhost") {
    [domain, remote] = [maybeDomain, rest];
  } else if (maybeDomain === LEGACY_DEFAULT_DOMAIN) {
    [domain, remote] = [DEFAULT_DOMAIN, rest];
  } else if (/[.:]/.test(maybeDomain)) {
    [domain, remote] = [maybeDomain, rest];
  } else {
    [domain, remote] = [DEFAULT_DOMAIN, name];
  }
  if (domain === DEFAULT_DOMAIN && !remote.includes("/")) remote = OFFICIAL_PREFIX + remote;
  return [domain, remote];
}

/**
 * Parses and normalises an image reference; throws InvalidArgument naming the
 * reference and why it is invalid. A reference with neither tag nor digest
 * gets the tag `latest`.
 */
export function parseReference(ref: string): Reference {
  if (typeof ref !== "string" || ref === "") {
    throw invalid(String(ref ?? ""), "the reference is empty");
  }
  if (ANCHORED_IDENTIFIER.test(ref)) {
    throw invalid(ref, "a 64-character hexadecimal string is an image ID, not a repository name");
  }
  const [domainPart, remainder] = splitDockerDomain(ref);
  const colon = remainder.indexOf(":");
  const at = remainder.indexOf("@");
  const end = [colon, at].filter((i) => i >= 0).reduce((a, b) => Math.min(a, b), remainder.length);
  const remote = remainder.slice(0, end);
  if (remote.toLowerCase() !== remote) {
    throw invalid(ref, `invalid reference format: repository name "${remote}" must be lowercase`);
  }
  const full = `${domainPart}/${remainder}`;
  const m = REFERENCE.exec(full);
  if (!m) {
    if (/@/.test(full) && !new RegExp(`@${digestPat}$`).test(full)) {
      throw invalid(ref, "the digest is not of the form <algorithm>:<hex>");
    }
    const tagMatch = /:([^/:@]*)(?:@|$)/.exec(remainder);
    if (tagMatch && !ANCHORED_TAG.test(tagMatch[1]!)) {
      throw invalid(
        ref,
        `tag "${tagMatch[1]}" must be 1–128 of [A-Za-z0-9_.-] and not start with . or -`,
      );
    }
    throw invalid(
      ref,
      "it does not match the reference format [registry[:port]/]name[:tag][@digest]",
    );
  }
  const [, name, tag, digest] = m as unknown as [
    string,
    string,
    string | undefined,
    string | undefined,
  ];
  if (name.length > NAME_TOTAL_LENGTH_MAX) {
    throw invalid(ref, `the repository name is longer than ${NAME_TOTAL_LENGTH_MAX} characters`);
  }
  const nm = ANCHORED_NAME.exec(name);
  if (!nm) {
    throw invalid(
      ref,
      "it does not match the reference format [registry[:port]/]name[:tag][@digest]",
    );
  }
  if (nm[1] === undefined) {
    // The first component was taken for a registry host, but is not a valid host name.
    throw invalid(ref, `registry host "${domainPart}" is not a valid host name`);
  }
  const domain = nm[1];
  const path = nm[2]!;
  if (digest !== undefined) {
    try {
      parseDigest(digest);
    } catch (err) {
      throw invalid(ref, (err as Error).message.replace(/^parse digest failed: /, ""));
    }
  }
  const result: Reference = { domain, path };
  if (tag !== undefined) result.tag = tag;
  if (digest !== undefined) result.digest = digest;
  if (tag === undefined && digest === undefined) result.tag = DEFAULT_TAG;
  return result;
}

/** `domain/path`, e.g. `docker.io/library/busybox`. */
export function referenceName(ref: Reference): string {
  return `${ref.domain}/${ref.path}`;
}

/** The full normalised form, e.g. `docker.io/library/busybox:latest` or `host/a@sha256:…`. */
export function formatReference(ref: Reference): string {
  return `${referenceName(ref)}${ref.tag !== undefined ? `:${ref.tag}` : ""}${
    ref.digest ? `@${ref.digest}` : ""
  }`;
}

/** The short form Docker shows: `busybox:latest`, `user/app:1`, `localhost:5000/x:latest`. */
export function familiarReference(ref: Reference): string {
  let name = referenceName(ref);
  if (ref.domain === DEFAULT_DOMAIN) {
    name = ref.path;
    if (name.startsWith(OFFICIAL_PREFIX) && !name.slice(OFFICIAL_PREFIX.length).includes("/")) {
      name = name.slice(OFFICIAL_PREFIX.length);
    }
  }
  return `${name}${ref.tag !== undefined ? `:${ref.tag}` : ""}${
    ref.digest ? `@${ref.digest}` : ""
  }`;
}

/** What a registry request names in the manifest path: the digest when pinned, else the tag. */
export function referenceObject(ref: Reference): string {
  return ref.digest ?? ref.tag ?? DEFAULT_TAG;
}
