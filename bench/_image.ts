/**
 * The busybox image every end-to-end comparison runs: one layer made by
 * `umoci` from Debian's busybox-static (every applet a symlink, a minimal
 * /etc, as in tests/bundle.ts), pushed with `skopeo` to the benchmark's
 * registry, so that tug and containerd pull the same bytes, written by
 * neither of them.
 *
 * @module
 */

import { join } from "node:path";
import { busyboxRootfs } from "../tests/bundle.ts";
import { check } from "./_proc.ts";

/** Builds the image in `dir` (an OCI layout), pushes it as `<host>/library/busybox:latest`, and returns that reference. */
export async function pushBusybox(dir: string, registryHost: string): Promise<string> {
  const layout = join(dir, "busybox-oci");
  const bundle = join(dir, "busybox-bundle");
  await check("umoci", ["init", "--layout", layout]);
  await check("umoci", ["new", "--image", `${layout}:latest`]);
  await check("umoci", ["unpack", "--image", `${layout}:latest`, bundle]);
  await busyboxRootfs(join(bundle, "rootfs"));
  await check("umoci", ["repack", "--image", `${layout}:latest`, bundle]);
  await Deno.remove(bundle, { recursive: true });
  await check("umoci", [
    "config",
    "--image",
    `${layout}:latest`,
    "--config.cmd",
    "/bin/sh",
    "--config.env",
    "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
  ]);
  const ref = `${registryHost}/library/busybox:latest`;
  await check("skopeo", [
    "copy",
    "--quiet",
    "--dest-tls-verify=false",
    `oci:${layout}:latest`,
    `docker://${ref}`,
  ]);
  await Deno.remove(layout, { recursive: true });
  return ref;
}
