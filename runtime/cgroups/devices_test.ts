import { InvalidArgument } from "../../errors.ts";
import {
  BPF_CGROUP_DEVICE,
  BPF_PROG_ATTACH,
  BPF_PROG_LOAD,
  BPF_PROG_QUERY,
} from "../../ffi/constants.ts";
import { FakeSyscall } from "../../ffi/fake.ts";
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import {
  attachDeviceFilter,
  deviceFilterProgram,
  type DeviceRuleSet,
  emulateDeviceRules,
  normalizeDeviceRules,
  v1DeviceRuleText,
} from "./devices.ts";

/** Runs a device filter program the way the kernel would, for the few opcodes it uses. */
function run(
  program: Uint8Array,
  type: "b" | "c",
  access: string,
  major: number,
  minor: number,
): boolean {
  const v = new DataView(program.buffer, program.byteOffset, program.byteLength);
  const acc = (access.includes("m") ? 1 : 0) | (access.includes("r") ? 2 : 0) |
    (access.includes("w") ? 4 : 0);
  const ctx = [((acc << 16) | (type === "b" ? 1 : 2)) >>> 0, major, minor];
  const r = new Array<number>(11).fill(0);
  for (let pc = 0; pc < program.length / 8;) {
    const op = v.getUint8(pc * 8), regs = v.getUint8(pc * 8 + 1);
    const dst = regs & 0xf,
      src = regs >> 4,
      off = v.getInt16(pc * 8 + 2, true),
      imm = v.getInt32(pc * 8 + 4, true);
    pc++;
    switch (op) {
      case 0x61: // ldx w
        if (off % 4 !== 0 || off > 8) throw new Error(`bad load offset ${off}`);
        r[dst] = ctx[off / 4]!;
        break;
      case 0x54:
        r[dst] = (r[dst]! & imm) >>> 0;
        break;
      case 0x74:
        r[dst] = r[dst]! >>> imm;
        break;
      case 0xb4:
        r[dst] = imm >>> 0;
        break;
      case 0xbc:
        r[dst] = r[src]! >>> 0;
        break;
      case 0x15:
        if (r[dst] === imm) pc += off;
        break;
      case 0x55:
        if (r[dst] !== imm) pc += off;
        break;
      case 0x5d:
        if (r[dst] !== r[src]) pc += off;
        break;
      case 0x95:
        return r[0] === 1;
      default:
        throw new Error(`unexpected opcode 0x${op.toString(16)}`);
    }
  }
  throw new Error("fell off the end of the program");
}

const DEFAULTS = [
  { allow: false, access: "rwm" },
  { allow: true, type: "c", major: 1, minor: 3, access: "rwm" }, // /dev/null
  { allow: true, type: "c", major: 1, minor: 5, access: "rw" }, // /dev/zero, no mknod
  { allow: true, type: "c", major: 136, access: "rwm" }, // /dev/pts/*
  { allow: true, type: "c", access: "m" }, // mknod of any char device
];

Deno.test("normalizeDeviceRules() fills in defaults and names a bad rule by index", () => {
  assertEquals(normalizeDeviceRules([{ allow: true }]), [
    { allow: true, type: "a", major: null, minor: null, access: "rwm" },
  ]);
  assertEquals(
    normalizeDeviceRules([{ allow: false, type: "c", major: 1, minor: -1, access: "wr" }])[0],
    {
      allow: false,
      type: "c",
      major: 1,
      minor: null,
      access: "rw",
    },
  );
  assertThrows(
    () => normalizeDeviceRules([{ allow: true }, { allow: true, type: "x" }]),
    InvalidArgument,
    "devices[1]",
  );
  assertThrows(
    () => normalizeDeviceRules([{ allow: true, access: "rx" }]),
    InvalidArgument,
    "devices[0]",
  );
  assertThrows(
    () => normalizeDeviceRules([{ allow: true, major: -5 }]),
    InvalidArgument,
    "bad major",
  );
  assertThrows(
    () => normalizeDeviceRules([{ allow: "yes" as unknown as boolean }]),
    InvalidArgument,
    "allow",
  );
});

Deno.test("v1DeviceRuleText() writes the devices.allow syntax", () => {
  const rules = normalizeDeviceRules(DEFAULTS);
  assertEquals(rules.map(v1DeviceRuleText), [
    "a *:* rwm",
    "c 1:3 rwm",
    "c 1:5 rw",
    "c 136:* rwm",
    "c *:* m",
  ]);
});

Deno.test("emulateDeviceRules() starts from deny-all and folds rules into exceptions", () => {
  const set = emulateDeviceRules(normalizeDeviceRules([
    ...DEFAULTS,
    { allow: true, type: "c", major: 1, minor: 5, access: "m" },
    { allow: false, type: "c", major: 1, minor: 3, access: "w" },
  ]));
  assertEquals(set.defaultAllow, false);
  assertEquals(set.exceptions.map(v1DeviceRuleText), [
    "c 1:3 rm",
    "c 1:5 rwm",
    "c 136:* rwm",
    "c *:* m",
  ]);
  // "a" resets everything before it.
  const open = emulateDeviceRules(
    normalizeDeviceRules([...DEFAULTS, { allow: true }, {
      allow: false,
      type: "b",
      major: 8,
      access: "w",
    }]),
  );
  assertEquals(open.defaultAllow, true);
  assertEquals(open.exceptions.map(v1DeviceRuleText), ["b 8:* w"]);
});

Deno.test("emulateDeviceRules() refuses to punch a hole in a wildcard exception", () => {
  assertThrows(
    () =>
      emulateDeviceRules(
        normalizeDeviceRules([...DEFAULTS, {
          allow: false,
          type: "c",
          major: 136,
          minor: 2,
          access: "r",
        }]),
      ),
    InvalidArgument,
    "devices[5]",
  );
});

Deno.test("deviceFilterProgram() allows exactly what the rules allow", () => {
  const program = deviceFilterProgram(emulateDeviceRules(normalizeDeviceRules(DEFAULTS)));
  assertEquals(run(program, "c", "rw", 1, 3), true);
  assertEquals(run(program, "c", "m", 1, 3), true);
  assertEquals(run(program, "c", "rw", 1, 5), true);
  assertEquals(run(program, "c", "m", 1, 5), true); // the wildcard mknod rule
  assertEquals(run(program, "c", "r", 1, 7), false); // /dev/full is not listed
  assertEquals(run(program, "c", "rw", 136, 9), true);
  assertEquals(run(program, "b", "r", 8, 0), false);
  assertEquals(run(program, "b", "m", 8, 0), false);
});

Deno.test("deviceFilterProgram() denies any requested access a deny exception names", () => {
  const set: DeviceRuleSet = emulateDeviceRules(normalizeDeviceRules([
    { allow: true },
    { allow: false, type: "b", major: 8, access: "w" },
    { allow: false, type: "c", major: 10, minor: 200, access: "rwm" },
  ]));
  const program = deviceFilterProgram(set);
  assertEquals(run(program, "b", "r", 8, 1), true);
  assertEquals(run(program, "b", "rw", 8, 1), false);
  assertEquals(run(program, "b", "w", 9, 1), true);
  assertEquals(run(program, "c", "r", 10, 200), false);
  assertEquals(run(program, "c", "r", 10, 201), true);
});

Deno.test("deviceFilterProgram() of an empty rule list denies everything", () => {
  const program = deviceFilterProgram(emulateDeviceRules([]));
  assertEquals(program.length, 8 * 8);
  assertEquals(run(program, "c", "r", 1, 3), false);
});

Deno.test("attachDeviceFilter() loads, attaches with BPF_F_ALLOW_MULTI and closes what it opened", () => {
  const sys = new FakeSyscall().addFile("/cg/c1", 0o040755);
  const program = deviceFilterProgram(emulateDeviceRules(normalizeDeviceRules(DEFAULTS)));
  attachDeviceFilter("/cg/c1", program, { sys });
  assertEquals(sys.names(), ["open", "bpf", "bpf", "bpf", "close", "close"]);
  const bpf = sys.calls.filter((c) => c.name === "bpf");
  assertEquals(bpf.map((c) => c.args[0]), [BPF_PROG_QUERY, BPF_PROG_LOAD, BPF_PROG_ATTACH]);
  const load = new DataView((bpf[1]!.args[1] as Uint8Array).buffer);
  assertEquals(load.getUint32(0, true), 15); // BPF_PROG_TYPE_CGROUP_DEVICE
  assertEquals(load.getUint32(4, true), program.length / 8);
  const attach = new DataView((bpf[2]!.args[1] as Uint8Array).buffer);
  assertEquals(attach.getUint32(8, true), BPF_CGROUP_DEVICE);
  assertEquals(attach.getUint32(12, true), 2); // BPF_F_ALLOW_MULTI
  assertEquals(sys.fds.size, 0);
});
