/**
 * Machine code for one function, `int fork(void)` as glibc has it but preceded
 * by MADV_DOFORK over given address ranges, for x86_64 and aarch64.
 *
 * Why it exists: V8 marks every page it maps MADV_DONTFORK, so a forked child
 * lacks any page the parent mapped after the last MADV_DOFORK pass. A pass made
 * from JavaScript leaves a window before the fork in which V8 can map a page:
 * traced here, V8 mapped a fresh 256 KiB heap page on the main thread between
 * two consecutive FFI calls, and the child died of SIGSEGV when it touched it.
 * This code runs the pass and then jumps to glibc's fork() without returning
 * to JavaScript, so nothing of V8's runs in between (tug runs V8
 * single-threaded: no other thread maps V8 pages).
 *
 * The function takes no arguments; the ranges and fork's address are
 * immediates. It makes raw madvise system calls (their results are ignored, as
 * they were before: holes in a range give ENOMEM after the walk) and
 * tail-jumps to fork, which returns to our caller.
 *
 * Both encodings were checked with objdump (see fork_code_test.ts); the aarch64
 * one also ran, under qemu-aarch64-static, with ffi/libc_test.ts passing.
 *
 * @module
 */

/** Bytes of `value` as a little-endian 64-bit integer. */
function u64(value: bigint): number[] {
  const out: number[] = [];
  for (let i = 0n; i < 8n; i++) out.push(Number((value >> (i * 8n)) & 0xffn));
  return out;
}

function u32(value: number): number[] {
  return [value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, (value >>> 24) & 0xff];
}

function x86_64(
  ranges: readonly (readonly [bigint, bigint])[],
  advice: number,
  forkAddress: bigint,
): number[] {
  const SYS_MADVISE = 28;
  const code: number[] = [];
  for (const [start, length] of ranges) {
    code.push(0x48, 0xbf, ...u64(start)); // mov rdi, start
    code.push(0x48, 0xbe, ...u64(length)); // mov rsi, length
    code.push(0xba, ...u32(advice)); // mov edx, advice
    code.push(0xb8, ...u32(SYS_MADVISE)); // mov eax, SYS_madvise
    code.push(0x0f, 0x05); // syscall (clobbers rax, rcx, r11: all caller-saved)
  }
  code.push(0x48, 0xb8, ...u64(forkAddress)); // mov rax, fork
  code.push(0xff, 0xe0); // jmp rax: fork returns straight to our caller
  return code;
}

/** MOVZ for hw 0 and MOVK for hw 1-3: a 64-bit immediate into register `rd`. */
function aarch64Mov(rd: number, value: bigint): number[] {
  const words: number[] = [];
  for (let hw = 0; hw < 4; hw++) {
    const imm16 = Number((value >> BigInt(16 * hw)) & 0xffffn);
    const op = hw === 0 ? 0xd2800000 : 0xf2800000; // MOVZ / MOVK, 64-bit
    words.push((op | (hw << 21) | (imm16 << 5) | rd) >>> 0);
  }
  return words;
}

function aarch64(
  ranges: readonly (readonly [bigint, bigint])[],
  advice: number,
  forkAddress: bigint,
): number[] {
  const SYS_MADVISE = 233n;
  const words: number[] = [];
  for (const [start, length] of ranges) {
    words.push(...aarch64Mov(0, start), ...aarch64Mov(1, length));
    words.push(...aarch64Mov(2, BigInt(advice)), ...aarch64Mov(8, SYS_MADVISE));
    words.push(0xd4000001); // svc #0
  }
  words.push(...aarch64Mov(16, forkAddress));
  words.push(0xd61f0200); // br x16 (the register a BTI "c" landing pad accepts)
  return words.flatMap(u32);
}

/**
 * The code of `fork` with the pass before it, for `arch` (`Deno.build.arch`).
 * Ranges of length 0 are left out. Throws for any other architecture.
 */
export function forkCode(
  arch: string,
  ranges: readonly (readonly [bigint, bigint])[],
  advice: number,
  forkAddress: bigint,
): Uint8Array {
  const used = ranges.filter(([, length]) => length !== 0n);
  if (arch === "x86_64") return new Uint8Array(x86_64(used, advice, forkAddress));
  if (arch === "aarch64") return new Uint8Array(aarch64(used, advice, forkAddress));
  throw new Error(`no fork code for architecture ${arch}`);
}
