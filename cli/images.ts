/**
 * `tug images`: pull, list (ls), remove (rm), import, export, tag, push,
 * prune, usage, shaped like `ctr images`. Each verb parses its flags and
 * calls one client method.
 *
 * @module
 */

import { InvalidArgument, NotFound, type PullOptions } from "../mod.ts";
import { dirname } from "../util/path.ts";
import { humanSize } from "../util/units.ts";
import { boolFlag, type FlagSpec, type ParsedArgs, stringFlag } from "./args.ts";
import {
  connect,
  forEachName,
  formatLabels,
  JSON_FLAG,
  parseUserFlag,
  positionals,
  printJson,
  printTable,
  runGroup,
  type Verb,
} from "./_common.ts";
import { progressView, pullProgress } from "./_progress.ts";

const REGISTRY_FLAGS: FlagSpec[] = [
  { name: "plain-http", type: "boolean", help: "Use plain HTTP for the registry (not HTTPS)" },
  {
    name: "skip-verify",
    aliases: ["k"],
    type: "boolean",
    help: "Do not verify registries' TLS certificates (hosts.toml's skip_verify overrides)",
  },
  {
    name: "user",
    aliases: ["u"],
    type: "string",
    value: "USER[:PASSWORD]",
    help: "Registry credentials (asked for when only USER is given; USER: means an empty password)",
  },
];

function registryOptions(args: ParsedArgs) {
  const credentials = parseUserFlag(stringFlag(args, "user"));
  return {
    ...(boolFlag(args, "plain-http") ? { plainHttp: true } : {}),
    ...(boolFlag(args, "skip-verify") ? { skipVerify: true } : {}),
    ...(credentials ? { credentials } : {}),
  };
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

const pull: Verb = {
  summary: "Pull an image from a registry and unpack it",
  usage: "[flags] REF",
  flags: [
    {
      name: "platform",
      type: "string",
      value: "OS/ARCH[/VARIANT]",
      help: "Pull this platform (default: this machine's)",
    },
    {
      name: "all-platforms",
      type: "boolean",
      help: "Pull every platform of the image (this machine's is unpacked)",
    },
    ...REGISTRY_FLAGS,
    {
      name: "snapshotter",
      type: "string",
      value: "NAME",
      help: "Unpack into this snapshotter (default: the daemon's)",
    },
    { name: "no-unpack", type: "boolean", help: "Only fetch the content; do not unpack" },
    { name: "quiet", aliases: ["q"], type: "boolean", help: "Print only the image's digest" },
  ],
  async run(args, command) {
    const [ref] = positionals(args, command, "REF", 1);
    const platform = stringFlag(args, "platform");
    if (platform && boolFlag(args, "all-platforms")) {
      throw new InvalidArgument(`${command}: give --platform or --all-platforms, not both`);
    }
    using client = connect(args);
    const quiet = boolFlag(args, "quiet");
    const view = progressView();
    const start = performance.now();
    const options: PullOptions = {
      ...(platform ? { platform } : {}),
      ...(boolFlag(args, "all-platforms") ? { allPlatforms: true } : {}),
      ...registryOptions(args),
      ...(stringFlag(args, "snapshotter") ? { snapshotter: stringFlag(args, "snapshotter")! } : {}),
      ...(boolFlag(args, "no-unpack") ? { unpack: false } : {}),
      ...(quiet ? {} : { onProgress: pullProgress(view) }),
    };
    if (!quiet) console.log(`${ref}: resolving`);
    let result;
    try {
      result = await client.images.pull(ref!, options);
    } finally {
      view.finish();
    }
    if (quiet) {
      console.log(result.image.target.digest);
      return 0;
    }
    const s = result.stats;
    console.log(
      `${result.image.name}: pulled ${result.image.target.digest} in ${
        seconds(performance.now() - start)
      }: ` +
        `${s.fetched + s.resumed} blobs fetched (${humanSize(s.bytes)}), ${s.existing} present` +
        (result.unpacked ? `, unpacked into ${result.unpacked.snapshotter}` : ""),
    );
    return 0;
  },
};

const list: Verb = {
  summary: "List images",
  usage: "[flags]",
  aliases: ["ls"],
  flags: [JSON_FLAG, {
    name: "quiet",
    aliases: ["q"],
    type: "boolean",
    help: "Print only the names",
  }],
  async run(args, command) {
    positionals(args, command, "no arguments", 0);
    using client = connect(args);
    const images = await client.images.list();
    if (boolFlag(args, "json")) printJson(images);
    else if (boolFlag(args, "quiet")) { for (const i of images) console.log(i.name); }
    else {
      printTable(
        ["REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"],
        images.map((i) => [
          i.name,
          i.target.mediaType,
          i.target.digest,
          humanSize(i.usage.content),
          i.platforms.join(",") || "-",
          formatLabels(i.labels),
        ]),
      );
    }
    return 0;
  },
};

const remove: Verb = {
  summary: "Remove images (their space is freed by garbage collection)",
  usage: "[flags] REF [REF...]",
  aliases: ["rm", "delete", "del"],
  flags: [{
    name: "sync",
    type: "boolean",
    help: "Wait until garbage collection has freed the space",
  }],
  async run(args, command) {
    const refs = positionals(args, command, "at least one REF", 1, Infinity);
    using client = connect(args);
    return await forEachName(refs, async (ref) => {
      await client.images.remove(ref, { sync: boolFlag(args, "sync") });
      console.log(ref);
    });
  },
};

const tag: Verb = {
  summary: "Give an image more names",
  usage: "[flags] SOURCE TARGET [TARGET...]",
  flags: [{
    name: "force",
    aliases: ["f"],
    type: "boolean",
    help: "Repoint TARGET when it names another image",
  }],
  async run(args, command) {
    const [source, ...targets] = positionals(
      args,
      command,
      "SOURCE and at least one TARGET",
      2,
      Infinity,
    );
    using client = connect(args);
    for (const target of targets) {
      const image = await client.images.tag(source!, target, { force: boolFlag(args, "force") });
      console.log(image.name);
    }
    return 0;
  },
};

const push: Verb = {
  summary: "Push an image to a registry",
  usage: "[flags] REMOTE [LOCAL]",
  help: "Pushes the local image LOCAL (default: REMOTE) to the reference REMOTE.",
  flags: [...REGISTRY_FLAGS],
  async run(args, command) {
    const [remote, local] = positionals(args, command, "REMOTE [LOCAL]", 1, 2);
    using client = connect(args);
    const view = progressView();
    const start = performance.now();
    let result;
    try {
      result = await client.images.push(local ?? remote!, {
        remote: remote!,
        ...registryOptions(args),
        onProgress: (p) => view.update(p),
      });
    } finally {
      view.finish();
    }
    console.log(
      `${result.name}: pushed ${result.target.digest} in ${seconds(performance.now() - start)}: ` +
        `${result.uploaded} blobs uploaded, ${result.existing} present, ${result.mounted} mounted`,
    );
    return 0;
  },
};

async function openInput(path: string): Promise<ReadableStream<Uint8Array>> {
  if (path === "-") return Deno.stdin.readable;
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch (err) {
    throw new InvalidArgument(`Open ${path}: ${(err as Error).message}`, { cause: err });
  }
  // Opening a directory succeeds; only reading it fails, inside the request: refused before sending.
  if ((await file.stat()).isDirectory) {
    file.close();
    throw new InvalidArgument(`Open ${path}: is a directory, not an archive`);
  }
  return file.readable;
}

const importVerb: Verb = {
  summary: "Import images from an OCI layout or docker save archive (tar, tar.gz, tar.zst)",
  usage: "[flags] FILE|-",
  flags: [
    {
      name: "name",
      type: "string",
      value: "REF",
      help: "Name the image REF (an archive of one image only)",
    },
    { name: "no-unpack", type: "boolean", help: "Do not unpack the images" },
    JSON_FLAG,
  ],
  async run(args, command) {
    const [file] = positionals(args, command, "FILE (or - for stdin)", 1);
    using client = connect(args);
    const input = await openInput(file!);
    const name = stringFlag(args, "name");
    const result = await client.images.import(input, {
      ...(name ? { name } : {}),
      ...(boolFlag(args, "no-unpack") ? { unpack: false } : {}),
    });
    if (boolFlag(args, "json")) printJson(result);
    else for (const i of result.images) console.log(`${i.name}: imported ${i.target.digest}`);
    return 0;
  },
};

const exportVerb: Verb = {
  summary: "Export images as an archive that docker load and OCI tools read",
  usage: "[flags] FILE|- REF [REF...]",
  flags: [{
    name: "platform",
    type: "string",
    value: "OS/ARCH[/VARIANT]",
    help: "Only this platform of multi-platform images",
  }],
  async run(args, command) {
    const [out, ...refs] = positionals(
      args,
      command,
      "FILE (or - for stdout) and at least one REF",
      2,
      Infinity,
    );
    using client = connect(args);
    const platform = stringFlag(args, "platform");
    const request = () => client.images.export(refs, platform ? { platform } : {});
    if (out === "-") {
      await (await request()).pipeTo(Deno.stdout.writable, { preventClose: true });
      return 0;
    }
    // A regular file (or a new one) is written beside and renamed into place, so that a failed
    // export leaves no half archive; anything else (/dev/null, a FIFO, a symbolic link) is written
    // to as it is: renaming onto /dev/null would replace the device with a file.
    if (!(await isRegularOrMissing(out!))) {
      const stream = await request();
      const file = await Deno.open(out!, { write: true });
      await stream.pipeTo(file.writable);
      return 0;
    }
    const tmp = `${out}.tug-partial`;
    let file: Deno.FsFile;
    try {
      file = await Deno.open(tmp, { write: true, create: true, truncate: true });
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new NotFound(`Export to ${out}: no such directory ${dirname(out!)}`, {
          cause: err,
        });
      }
      throw err;
    }
    // Ctrl-C or SIGTERM removes the half-written file too, then exits as the signal would.
    using _ = removeOnSignal(tmp);
    try {
      await (await request()).pipeTo(file.writable);
      await Deno.rename(tmp, out!);
    } catch (err) {
      try {
        file.close(); // still open when the request failed
      } catch {
        // closed by pipeTo
      }
      await Deno.remove(tmp).catch(() => {});
      throw err;
    }
    return 0;
  },
};

/** Until disposed, SIGINT or SIGTERM removes `path` and exits with 128 + the signal's number. */
function removeOnSignal(path: string): Disposable {
  const handlers = (["SIGINT", "SIGTERM"] as const).map((signal) => {
    const handler = () => {
      try {
        Deno.removeSync(path);
      } catch {
        // already gone
      }
      Deno.exit(signal === "SIGINT" ? 130 : 143);
    };
    Deno.addSignalListener(signal, handler);
    return [signal, handler] as const;
  });
  return {
    [Symbol.dispose]: () => {
      for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
    },
  };
}

/** True when `path` is a regular file (not a link to one) or does not exist. */
async function isRegularOrMissing(path: string): Promise<boolean> {
  try {
    return (await Deno.lstat(path)).isFile;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return true;
    throw err;
  }
}

const prune: Verb = {
  summary: "Free the space nothing uses; with --all, also remove images no container uses",
  usage: "[flags]",
  flags: [
    { name: "all", type: "boolean", help: "Remove every image no container uses" },
    JSON_FLAG,
  ],
  async run(args, command) {
    positionals(args, command, "no arguments", 0);
    using client = connect(args);
    const result = await client.images.prune({ all: boolFlag(args, "all") });
    if (boolFlag(args, "json")) printJson(result);
    else {
      for (const name of result.images) console.log(`removed ${name}`);
      console.log(
        `reclaimed ${
          humanSize(result.reclaimed)
        } (${result.gc.blobs} blobs, ${result.gc.snapshots} snapshots)`,
      );
    }
    return 0;
  },
};

const usage: Verb = {
  summary: "Show the disk usage of images",
  usage: "[flags] [REF...]",
  flags: [JSON_FLAG],
  async run(args) {
    using client = connect(args);
    const u = await client.images.usage();
    const wanted = args.positionals;
    let images = u.images;
    if (wanted.length) {
      images = [];
      for (const w of wanted) {
        const image = await client.images.get(w); // NotFound names an unknown image; short names resolve
        const found = u.images.find((i) => i.name === image.name);
        if (found) images.push(found);
      }
    }
    if (boolFlag(args, "json")) {
      printJson(wanted.length ? images : u);
      return 0;
    }
    printTable(
      ["REF", "CONTENT", "SNAPSHOTS", "SIZE", "SHARED", "UNIQUE"],
      images.map((
        i,
      ) => [
        i.name,
        humanSize(i.content),
        humanSize(i.snapshots),
        humanSize(i.size),
        humanSize(i.shared),
        humanSize(i.unique),
      ]),
    );
    if (!wanted.length) {
      console.log(
        `\ntotal ${humanSize(u.size)} (content ${humanSize(u.content.size)}, snapshots ${
          humanSize(u.snapshots.size)
        }, partial downloads ${humanSize(u.ingests.size)}), reclaimable ${
          humanSize(u.reclaimable)
        }`,
      );
    }
    return 0;
  },
};

/** The image verbs. */
export const VERBS: Record<string, Verb> = {
  pull,
  list,
  remove,
  import: importVerb,
  export: exportVerb,
  tag,
  push,
  prune,
  usage,
};

/** `tug images …` */
export function main(args: string[]): Promise<number> {
  return runGroup("images", "Manage images", VERBS, args);
}
