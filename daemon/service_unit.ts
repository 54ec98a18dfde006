/**
 * `tug install-service`: the systemd unit that runs `tug daemon` (as
 * containerd's does: `Type=notify`, `KillMode=process` so that stopping the
 * daemon leaves shims and containers running, `Delegate=yes` so the daemon
 * may manage the cgroups below its own, `Restart=always`), and the default
 * configuration file when there is none.
 *
 * @module
 */

import { selfCommand } from "../self.ts";
import { dirname, join } from "../util/path.ts";
import { DEFAULT_CONFIG_PATH, renderDefaultConfig } from "./config.ts";

/** Where the unit goes. */
export const UNIT_PATH = "/etc/systemd/system/tug.service";

/**
 * The command that starts this tug: the compiled binary itself; the bundle's
 * launcher (`dist/tug` beside `dist/tug.js`) when there is one; else the
 * Deno binary with tug's flags and main module.
 */
export function serviceCommand(): string[] {
  if (Deno.build.standalone) return [Deno.execPath()];
  const main = Deno.mainModule;
  if (main.startsWith("file://") && main.endsWith(".js")) {
    const launcher = new URL(main).pathname.replace(/\.js$/, "");
    try {
      const info = Deno.statSync(launcher);
      if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) return [launcher];
    } catch {
      // no launcher: run the bundle with deno
    }
  }
  const cmd = selfCommand();
  return cmd.map((a) => (a.startsWith("file://") ? new URL(a).pathname : a));
}

/** Quotes a word for a systemd command line (docs: systemd.syntax, quoting). */
function quoteWord(word: string): string {
  if (/^[A-Za-z0-9_./:=@+,-]+$/.test(word)) return word.replaceAll("%", "%%");
  return `"${
    word.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("%", "%%").replaceAll("$", "$$")
  }"`;
}

/** The unit file text for a daemon started by `command` with the config file `configPath`. */
export function renderUnit(command: readonly string[], configPath = DEFAULT_CONFIG_PATH): string {
  const exec = [...command, "daemon", "--config", configPath].map(quoteWord).join(" ");
  return `# Written by tug install-service.
[Unit]
Description=tug container runtime
After=network.target local-fs.target
Wants=network.target

[Service]
Type=notify
ExecStartPre=-/sbin/modprobe overlay
ExecStart=${exec}
# Stopping the daemon leaves the shims and their containers running.
KillMode=process
# The daemon creates the containers' cgroups below its own.
Delegate=yes
Restart=always
RestartSec=5
LimitNOFILE=infinity
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
`;
}

/** Options for {@link installService}. */
export interface InstallServiceOptions {
  /** Prefix for every path written (tests use a temporary directory; default `/`). */
  rootDir?: string;
  /** The command in ExecStart (default: {@link serviceCommand}). */
  command?: string[];
}

/** What {@link installService} wrote. */
export interface InstallServiceResult {
  unit: string;
  /** The configuration file, and whether it was written now (false: it existed and was kept). */
  config: { path: string; written: boolean };
}

/** Writes the unit (replacing an older one) and the default configuration (only when absent). */
export async function installService(
  options: InstallServiceOptions = {},
): Promise<InstallServiceResult> {
  const root = options.rootDir ?? "/";
  const unit = join(root, UNIT_PATH);
  const config = join(root, DEFAULT_CONFIG_PATH);
  await Deno.mkdir(dirname(unit), { recursive: true });
  const tmp = `${unit}.tmp`;
  await Deno.writeTextFile(tmp, renderUnit(options.command ?? serviceCommand()), { mode: 0o644 });
  await Deno.rename(tmp, unit);
  await Deno.mkdir(dirname(config), { recursive: true, mode: 0o755 });
  let written = false;
  try {
    await Deno.writeTextFile(config, renderDefaultConfig(), { createNew: true, mode: 0o644 });
    written = true;
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
  }
  return { unit, config: { path: config, written } };
}
