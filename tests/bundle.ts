/**
 * OCI bundles for integration tests: a rootfs made from Debian's static
 * busybox (every applet as a symlink, a minimal /etc) and a config.json
 * from tug's default spec, adjusted per test.
 *
 * @module
 */

import { join } from "node:path";
import { defaultSpec } from "../runtime/default_spec.ts";
import type { Spec } from "../runtime/spec.ts";
import { BUSYBOX } from "./harness.ts";

let applets: string[] | undefined;

async function busyboxApplets(): Promise<string[]> {
  if (applets) return applets;
  const out = await new Deno.Command(BUSYBOX, { args: ["--list-full"], stdout: "piped" }).output();
  applets = new TextDecoder().decode(out.stdout).trim().split("\n").filter(Boolean);
  return applets;
}

/** Makes a busybox root filesystem at `rootfs`. */
export async function busyboxRootfs(rootfs: string): Promise<void> {
  for (
    const d of [
      "bin",
      "sbin",
      "usr/bin",
      "usr/sbin",
      "etc",
      "proc",
      "sys",
      "dev",
      "tmp",
      "root",
      "home/user",
      "var",
    ]
  ) {
    await Deno.mkdir(join(rootfs, d), { recursive: true });
  }
  await Deno.chmod(join(rootfs, "tmp"), 0o1777);
  try {
    await Deno.link(BUSYBOX, join(rootfs, "bin/busybox"));
  } catch {
    await Deno.copyFile(BUSYBOX, join(rootfs, "bin/busybox"));
  }
  for (const applet of await busyboxApplets()) {
    const path = join(rootfs, applet);
    if (applet === "bin/busybox") continue;
    const depth = applet.split("/").length - 1;
    await Deno.symlink(`${"../".repeat(depth)}bin/busybox`, path).catch(() => {});
  }
  await Deno.writeTextFile(
    join(rootfs, "etc/passwd"),
    "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
  );
  await Deno.writeTextFile(
    join(rootfs, "etc/group"),
    "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n",
  );
  await Deno.chown(join(rootfs, "home/user"), 1000, 1000);
}

/** Options for {@link busyboxBundle}. */
export interface BundleOptions {
  /** The process's argv (default: `sh`). */
  args?: string[];
  terminal?: boolean;
  /** Adjusts the spec before it is written. */
  modify?: (spec: Spec) => void;
}

/** Writes a bundle (rootfs + config.json) at `dir` and returns `dir`. */
export async function busyboxBundle(dir: string, options: BundleOptions = {}): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  await busyboxRootfs(join(dir, "rootfs"));
  const spec = defaultSpec({ args: options.args ?? ["sh"], terminal: options.terminal ?? false });
  options.modify?.(spec);
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(spec, null, 2));
  return dir;
}

/** Rewrites a bundle's config.json through `modify`. */
export async function editSpec(dir: string, modify: (spec: Spec) => void): Promise<void> {
  const path = join(dir, "config.json");
  const spec = JSON.parse(await Deno.readTextFile(path)) as Spec;
  modify(spec);
  await Deno.writeTextFile(path, JSON.stringify(spec, null, 2));
}
