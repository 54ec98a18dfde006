import { assertEquals, assertThrows } from "../tests/assert.ts";
import { forkCode } from "./fork_code.ts";

// The expected bytes were checked with objdump (binutils, and binutils-aarch64-linux-gnu) to
// disassemble to the instructions in the comments.
const RANGES: [bigint, bigint][] = [[0x1000n, 0x7ffff000n], [0n, 0n], [
  0x7f0000001000n,
  0xffff80ffffffe000n,
]];
const FORK = 0x7f1234567890n;

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("forkCode for x86_64: madvise per non-empty range, then a jump to fork", () => {
  assertEquals(
    hex(forkCode("x86_64", RANGES, 11, FORK)),
    [
      "48bf0010000000000000", // movabs $0x1000,%rdi
      "48be00f0ff7f00000000", // movabs $0x7ffff000,%rsi
      "ba0b000000", // mov $0xb,%edx
      "b81c000000", // mov $0x1c,%eax (SYS_madvise)
      "0f05", // syscall
      "48bf00100000007f0000", // movabs $0x7f0000001000,%rdi
      "48be00e0ffffff80ffff", // movabs $0xffff80ffffffe000,%rsi
      "ba0b000000",
      "b81c000000",
      "0f05",
      "48b890785634127f0000", // movabs $0x7f1234567890,%rax
      "ffe0", // jmp *%rax
    ].join(""),
  );
});

Deno.test("forkCode for aarch64: madvise per non-empty range, then a branch to fork", () => {
  const code = forkCode("aarch64", RANGES, 11, FORK);
  const words = Array.from(
    { length: code.length / 4 },
    (_, i) => new DataView(code.buffer).getUint32(i * 4, true).toString(16).padStart(8, "0"),
  );
  const madvise = (x0: string[], x1: string[]) => [
    ...x0,
    ...x1,
    "d2800162", // mov x2, #0xb
    "f2a00002",
    "f2c00002",
    "f2e00002",
    "d2801d28", // mov x8, #0xe9 (SYS_madvise)
    "f2a00008",
    "f2c00008",
    "f2e00008",
    "d4000001", // svc #0
  ];
  assertEquals(words, [
    ...madvise(
      ["d2820000", "f2a00000", "f2c00000", "f2e00000"], // x0 = 0x1000
      ["d29e0001", "f2afffe1", "f2c00001", "f2e00001"], // x1 = 0x7ffff000
    ),
    ...madvise(
      ["d2820000", "f2a00000", "f2cfe000", "f2e00000"], // x0 = 0x7f0000001000
      ["d29c0001", "f2bfffe1", "f2d01fe1", "f2ffffe1"], // x1 = 0xffff80ffffffe000
    ),
    "d28f1210", // mov x16, #0x7890
    "f2a68ad0", // movk x16, #0x3456, lsl #16
    "f2cfe250", // movk x16, #0x7f12, lsl #32
    "f2e00010", // movk x16, #0x0, lsl #48
    "d61f0200", // br x16
  ]);
});

Deno.test("forkCode refuses an architecture it has no code for", () => {
  assertThrows(
    () => forkCode("riscv64", RANGES, 11, FORK),
    Error,
    "no fork code for architecture riscv64",
  );
});
