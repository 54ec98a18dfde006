import { assert, assertEquals, assertMatch, assertStringIncludes } from "../assert.ts";
import { requires } from "../harness.ts";
import { editSpec } from "../bundle.ts";
import { withRuntime } from "./_helpers.ts";

const ignore = requires("root", "busybox", "tug", "cgroup1");

/** Mount options of `point` in the container's mountinfo output. */
function mountLine(mountinfo: string, point: string): string {
  const line = mountinfo.split("\n").find((l) => l.split(" ")[4] === point);
  if (!line) throw new Error(`no mount at ${point} in:\n${mountinfo}`);
  return line;
}

Deno.test({
  name: "the root is read-only and the usual filesystems are mounted with their options",
  ignore,
  fn: () =>
    withRuntime(
      { args: ["sh", "-c", "cat /proc/self/mountinfo; touch /x 2>&1; echo touch=$?"] },
      async (t) => {
        const out = await t.ok(["run", "c1"]);
        assertMatch(mountLine(out, "/"), / ro[, ]/);
        assertMatch(mountLine(out, "/proc"), / - proc /);
        assertMatch(mountLine(out, "/dev"), /nosuid.* - tmpfs .*mode=755/);
        assertMatch(mountLine(out, "/dev/pts"), / - devpts .*ptmxmode=666/);
        assertMatch(mountLine(out, "/dev/shm"), /nosuid,nodev,noexec.* - tmpfs /);
        assertMatch(mountLine(out, "/sys"), / ro,.* - sysfs /);
        assertMatch(mountLine(out, "/sys/fs/cgroup"), / - tmpfs /);
        assertMatch(mountLine(out, "/sys/fs/cgroup/memory"), / - cgroup .*memory/);
        assertStringIncludes(out, "Read-only file system");
        assertStringIncludes(out, "touch=1");
      },
    ),
});

Deno.test({
  name: "bind mounts honour ro, nosuid and file sources, and tmpfs honours size and mode",
  ignore,
  fn: () =>
    withRuntime({
      args: [
        "sh",
        "-c",
        "cat /data/hello /etc/extra.conf; { echo x > /data/new; } 2>&1; grep -E ' /(data|scratch) ' /proc/self/mountinfo; stat -c '%a' /scratch",
      ],
    }, async (t) => {
      await Deno.mkdir(`${t.dir}/data`);
      await Deno.writeTextFile(`${t.dir}/data/hello`, "hello\n");
      await Deno.writeTextFile(`${t.dir}/extra.conf`, "extra\n");
      await editSpec(t.bundle, (s) => {
        s.mounts!.push(
          {
            destination: "/data",
            type: "bind",
            source: `${t.dir}/data`,
            options: ["rbind", "ro", "nosuid"],
          },
          {
            destination: "/etc/extra.conf",
            type: "bind",
            source: `${t.dir}/extra.conf`,
            options: ["bind"],
          },
          {
            destination: "/scratch",
            type: "tmpfs",
            source: "tmpfs",
            options: ["size=1m", "mode=1700"],
          },
        );
      });
      const out = await t.ok(["run", "c1"]);
      assertStringIncludes(out, "hello\nextra\n");
      assertStringIncludes(out, "Read-only file system");
      assertMatch(mountLine(out, "/data"), / ro,nosuid/);
      assertMatch(mountLine(out, "/scratch"), /size=1024k,mode=1700/);
      assertMatch(out, /1700\n$/);
      assert(!(await Deno.stat(`${t.dir}/data/new`).then(() => true, () => false)));
    }),
});

Deno.test({
  name: "rootfsPropagation shared makes the container's root a shared mount",
  ignore,
  fn: () =>
    withRuntime({ args: ["cat", "/proc/self/mountinfo"] }, async (t) => {
      await editSpec(t.bundle, (s) => (s.linux!.rootfsPropagation = "rshared"));
      assertMatch(mountLine(await t.ok(["run", "c1"]), "/"), / shared:\d+/);
      await editSpec(t.bundle, (s) => (s.linux!.rootfsPropagation = "rprivate"));
      const line = mountLine(await t.ok(["run", "c2"]), "/");
      assert(!/shared:|master:/.test(line), line);
    }),
});

Deno.test({
  name: "masked paths are empty and read-only paths refuse writes",
  ignore,
  fn: () =>
    withRuntime({
      args: [
        "sh",
        "-c",
        "wc -c < /proc/version; ls /proc/driver | wc -l; { echo 1 > /proc/sys/kernel/panic; } 2>&1; echo rc=$?",
      ],
    }, async (t) => {
      await editSpec(t.bundle, (s) => s.linux!.maskedPaths!.push("/proc/version", "/proc/driver"));
      const out = (await t.ok(["run", "c1"])).split("\n");
      assertEquals(out[0]!.trim(), "0", "a masked file reads empty");
      assertEquals(out[1]!.trim(), "0", "a masked directory lists empty");
      assertStringIncludes(out[2]!, "Read-only file system");
      assertEquals(out[3], "rc=1");
    }),
});

Deno.test({
  name: "/dev has the default devices, ptmx, the fd links and linux.devices",
  ignore,
  fn: () =>
    withRuntime(
      { args: ["sh", "-c", "ls -l /dev; echo hi > /dev/null && echo null-ok"] },
      async (t) => {
        await editSpec(t.bundle, (s) => {
          s.linux!.devices = [{
            path: "/dev/mydev",
            type: "c",
            major: 1,
            minor: 3,
            fileMode: 0o620,
            uid: 1000,
            gid: 1000,
          }];
        });
        const out = await t.ok(["run", "c1"]);
        for (const dev of ["null", "zero", "full", "random", "urandom", "tty"]) {
          assertMatch(out, new RegExp(`crw-rw-rw-.* ${dev}\\n`));
        }
        assertMatch(out, /ptmx -> pts\/ptmx/);
        assertMatch(out, /fd -> \/proc\/self\/fd/);
        assertMatch(out, /stdin -> \/proc\/self\/fd\/0/);
        assertMatch(out, /crw--w----\s+1 user\s+user\s+1,\s+3 .* mydev/);
        assertStringIncludes(out, "null-ok");
      },
    ),
});

Deno.test({
  name: "tmpcopyup fills the tmpfs with a copy of the directory it covers",
  ignore,
  fn: () =>
    withRuntime({
      args: [
        "sh",
        "-c",
        "grep -E ' /(data|etc) ' /proc/self/mountinfo; cd /data; stat -c '%n %a %u %g %F %Y' . file sub sub/deep fifo null; readlink link; cat file sub/deep; head -n 1 /etc/passwd; echo new > new && echo wrote",
      ],
    }, async (t) => {
      const data = `${t.bundle}/rootfs/data`;
      await Deno.mkdir(`${data}/sub`, { recursive: true });
      await Deno.writeTextFile(`${data}/file`, "hello\n");
      await Deno.writeTextFile(`${data}/sub/deep`, "deep\n");
      await Deno.symlink("file", `${data}/link`);
      const mk = (args: string[]) => new Deno.Command(args[0]!, { args: args.slice(1) }).output();
      await mk(["mkfifo", "-m", "0620", `${data}/fifo`]);
      await mk(["mknod", "-m", "0600", `${data}/null`, "c", "1", "3"]);
      // Owners before modes: chown clears the set-id bits.
      await Deno.chown(`${data}/file`, 1000, 1000);
      await Deno.chmod(`${data}/file`, 0o4755);
      await Deno.utime(`${data}/file`, 1_000_000, 1_000_000);
      await Deno.chown(`${data}/sub`, 1000, 65534);
      await Deno.chmod(`${data}/sub`, 0o2755);
      await Deno.chown(data, 65534, 65534);
      await Deno.chmod(data, 0o1777);
      await editSpec(t.bundle, (s) => {
        s.mounts!.push(
          {
            destination: "/data",
            type: "tmpfs",
            source: "tmpfs",
            options: ["tmpcopyup", "nosuid"],
          },
          { destination: "/etc", type: "tmpfs", source: "tmpfs", options: ["tmpcopyup", "ro"] },
        );
      });
      const out = await t.ok(["run", "c1"]);
      assertMatch(mountLine(out, "/data"), /nosuid.* - tmpfs /);
      assertMatch(mountLine(out, "/etc"), / ro,.* - tmpfs /);
      assertStringIncludes(out, ". 1777 65534 65534 directory");
      assertStringIncludes(out, "file 4755 1000 1000 regular file 1000000\n");
      assertStringIncludes(out, "sub 2755 1000 65534 directory");
      assertStringIncludes(out, "sub/deep 644 0 0 regular file");
      assertStringIncludes(out, "fifo 620 0 0 fifo");
      assertStringIncludes(out, "null 600 0 0 character special file");
      assertStringIncludes(out, "file\nhello\ndeep\nroot:x:0:0:root:/root:/bin/sh\nwrote\n");
      // The copy is the tmpfs's: what the container writes stays out of the rootfs.
      assertEquals(await Deno.stat(`${data}/new`).then(() => true, () => false), false);
    }),
});
