/**
 * A process that swaps two entries of a directory with
 * renameat2(RENAME_EXCHANGE) as fast as it can (python3, ctypes): a directory
 * and a symlink beside it change places, so that whoever walks the path
 * meets the one or the other (tests of symlink races, CVE-2021-30465).
 *
 * @module
 */

const SWAPPER = `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
nr = {"x86_64": 316, "aarch64": 276}[os.uname().machine]
d = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
a, b = sys.argv[2].encode(), sys.argv[3].encode()
while True:
    libc.syscall(nr, d, a, d, b, 2)
`;

/** The python3 the swapper runs on. */
export const PYTHON3 = "/usr/bin/python3";

/** A running swapper. */
export interface Swapper {
  /** True until the swapper exits (it exits only when stopped, or when it failed to start). */
  running(): boolean;
  /** Kills the swapper and waits for it. */
  stop(): Promise<void>;
}

/** Starts swapping `a` and `b` in directory `dir` and returns once they have changed places at least once. */
export async function startSwapper(dir: string, a: string, b: string): Promise<Swapper> {
  const child = new Deno.Command(PYTHON3, {
    args: ["-c", SWAPPER, dir, a, b],
    stdin: "null",
    stdout: "null",
  }).spawn();
  let running = true;
  const done = child.status.then(() => (running = false));
  const type = () => Deno.lstatSync(`${dir}/${a}`).isSymlink;
  const first = type();
  while (running && type() === first) await new Promise((r) => setTimeout(r, 2));
  return {
    running: () => running,
    stop: async () => {
      if (running) child.kill("SIGKILL");
      await done;
    },
  };
}
