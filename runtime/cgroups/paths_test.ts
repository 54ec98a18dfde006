import { InvalidArgument } from "../../errors.ts";
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { withTempDir } from "../../tests/harness.ts";
import { fakeLayout } from "./_testing.ts";
import {
  cleanCgroupsPath,
  detectCgroups,
  ownCgroupDir,
  parseProcCgroup,
  resolveCgroupPaths,
} from "./paths.ts";

const HYBRID_MOUNTINFO = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 20 0:40 / /var/lib/elsewhere rw - cgroup cgroup rw,memory
`;

const HYBRID_SELF = `9:name=systemd:/
8:pids:/
4:memory:/process_api/abc
3:cpuset:/
1:cpu:/
2:cpuacct:/
0::/user.slice
`;

Deno.test("detectCgroups() reads a hybrid layout from mountinfo", () => {
  const layout = detectCgroups({ mountinfo: HYBRID_MOUNTINFO });
  assertEquals(layout.mode, "hybrid");
  assertEquals(layout.v1.memory, {
    mountpoint: "/sys/fs/cgroup/memory",
    root: "/",
    controllers: ["memory"],
  });
  assertEquals(layout.v1["name=systemd"]?.mountpoint, "/sys/fs/cgroup/systemd");
  assertEquals(layout.unified?.mountpoint, "/sys/fs/cgroup/unified");
  assertEquals(Object.keys(layout.v1).sort(), [
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "memory",
    "name=systemd",
    "pids",
  ]);
});

Deno.test("detectCgroups() reads co-mounted v1 controllers and a pure v2 host", () => {
  const v1 = detectCgroups({
    mountinfo: "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n",
  });
  assertEquals(v1.mode, "v1");
  assertEquals(v1.v1.cpu, v1.v1.cpuacct);
  assertEquals(v1.v1.cpu?.controllers, ["cpu", "cpuacct"]);
  const v2 = detectCgroups({
    mountinfo: "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n",
  });
  assertEquals(v2.mode, "v2");
  assertEquals(v2.unified?.mountpoint, "/sys/fs/cgroup");
  assertEquals(v2.v1, {});
});

Deno.test("detectCgroups() reads the layout of a plain directory when nothing is mounted there", async () => {
  await withTempDir(async (dir) => {
    for (const d of ["memory", "cpu,cpuacct", "systemd", "unified"]) {
      await Deno.mkdir(`${dir}/${d}`);
      await Deno.writeTextFile(`${dir}/${d}/cgroup.procs`, "");
    }
    await Deno.symlink(`${dir}/cpu,cpuacct`, `${dir}/cpu`);
    await Deno.writeTextFile(`${dir}/unified/cgroup.controllers`, "hugetlb\n");
    const layout = detectCgroups({ root: dir, mountinfo: "" });
    assertEquals(layout.mode, "hybrid");
    assertEquals(layout.v1.cpu?.mountpoint, `${dir}/cpu,cpuacct`);
    assertEquals(layout.v1.cpuacct?.mountpoint, `${dir}/cpu,cpuacct`);
    assertEquals(layout.v1["name=systemd"]?.mountpoint, `${dir}/systemd`);
    assertEquals(layout.unified, {
      mountpoint: `${dir}/unified`,
      root: "/",
      controllers: ["hugetlb"],
    });
  });
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/cgroup.controllers`, "cpu memory pids\n");
    const layout = detectCgroups({ root: dir, mountinfo: "" });
    assertEquals(layout.mode, "v2");
    assertEquals(layout.unified?.controllers, ["cpu", "memory", "pids"]);
  });
});

Deno.test("detectCgroups() fails clearly when nothing is mounted", async () => {
  await withTempDir((dir) => {
    assertThrows(
      () => detectCgroups({ root: dir, mountinfo: "" }),
      InvalidArgument,
      "nothing is mounted",
    );
    return Promise.resolve();
  });
});

Deno.test("parseProcCgroup() maps each controller and the unified line", () => {
  const self = parseProcCgroup(HYBRID_SELF);
  assertEquals(self.v1.memory, "/process_api/abc");
  assertEquals(self.v1["name=systemd"], "/");
  assertEquals(self.unified, "/user.slice");
  assertEquals(parseProcCgroup("5:cpu,cpuacct:/a\n").v1.cpuacct, "/a");
});

Deno.test("cleanCgroupsPath() keeps absolute and relative paths and defaults to tug/<id>", () => {
  assertEquals(cleanCgroupsPath("/default/web", "web"), "/default/web");
  assertEquals(cleanCgroupsPath("pods//web/./", "web"), "pods/web");
  assertEquals(cleanCgroupsPath(undefined, "web"), "tug/web");
  assertEquals(cleanCgroupsPath("", "web"), "tug/web");
});

Deno.test("cleanCgroupsPath() rejects .. escapes, the root, slice syntax and ids that name directories", () => {
  assertThrows(() => cleanCgroupsPath("/a/../../etc", "x"), InvalidArgument, '".." is not allowed');
  assertThrows(() => cleanCgroupsPath("../x", "x"), InvalidArgument, '".." is not allowed');
  assertThrows(() => cleanCgroupsPath("/", "x"), InvalidArgument, "root cgroup");
  assertThrows(
    () => cleanCgroupsPath("system.slice:tug:web", "x"),
    InvalidArgument,
    "systemd cgroup driver",
  );
  assertThrows(() => cleanCgroupsPath("", "../x"), InvalidArgument, "cannot name a directory");
  assertThrows(() => cleanCgroupsPath("", ".."), InvalidArgument, "cannot name a directory");
});

Deno.test("resolveCgroupPaths() puts an absolute path under each hierarchy's root", () => {
  const layout = fakeLayout("/sys/fs/cgroup", "hybrid");
  const paths = resolveCgroupPaths("/default/web", { layout, self: parseProcCgroup(HYBRID_SELF) });
  assertEquals(paths.v1.memory, "/sys/fs/cgroup/memory/default/web");
  assertEquals(paths.v1.cpu, "/sys/fs/cgroup/cpu/default/web");
  assertEquals(paths.v1["name=systemd"], "/sys/fs/cgroup/systemd/default/web");
  assertEquals(paths.unified, "/sys/fs/cgroup/unified/default/web");
});

Deno.test("resolveCgroupPaths() puts a relative path under the runtime's own cgroup in each hierarchy", () => {
  const layout = fakeLayout("/sys/fs/cgroup", "hybrid");
  const paths = resolveCgroupPaths(cleanCgroupsPath("", "web"), {
    layout,
    self: parseProcCgroup(HYBRID_SELF),
  });
  assertEquals(paths.v1.memory, "/sys/fs/cgroup/memory/process_api/abc/tug/web");
  assertEquals(paths.v1.cpu, "/sys/fs/cgroup/cpu/tug/web");
  assertEquals(paths.v1.pids, "/sys/fs/cgroup/pids/tug/web");
  assertEquals(paths.unified, "/sys/fs/cgroup/unified/user.slice/tug/web");
});

Deno.test("resolveCgroupPaths() strips the root of a mount that shows a sub-cgroup", () => {
  const layout = detectCgroups({
    mountinfo: "35 31 0:32 /docker/c1 /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
  });
  const paths = resolveCgroupPaths("tug/web", {
    layout,
    self: parseProcCgroup("4:memory:/docker/c1\n"),
  });
  assertEquals(paths.v1.memory, "/sys/fs/cgroup/memory/tug/web");
});

Deno.test("ownCgroupDir() is our cgroup in the pids hierarchy, else in the unified one", () => {
  const hybrid = detectCgroups({ mountinfo: HYBRID_MOUNTINFO });
  const self = parseProcCgroup("8:pids:/system.slice/tug.service\n0::/system.slice/tug.service\n");
  assertEquals(ownCgroupDir(hybrid, self), "/sys/fs/cgroup/pids/system.slice/tug.service");
  const v2 = detectCgroups({
    mountinfo: "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n",
  });
  assertEquals(ownCgroupDir(v2, self), "/sys/fs/cgroup/system.slice/tug.service");
});
