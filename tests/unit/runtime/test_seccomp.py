"""The seccomp program: every jump lands on an instruction, the profile follows capabilities."""

from __future__ import annotations

import pytest

from berth.containers.seccomp_profile import X86_64, default_profile
from berth.shim.seccomp import BPF_RET_K, RET_ALLOW, assemble


def run_filter(program: list[tuple[int, int, int, int]], arch: int, nr: int, arg0: int = 0) -> int:
    """A tiny interpreter for the four opcodes the assembler emits."""
    data = {0: nr, 4: arch, 16: arg0}
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = program[pc]
        if code == 0x20:
            acc, pc = data[k], pc + 1
        elif code == BPF_RET_K:
            return k
        else:
            taken = {0x15: acc == k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += 1 + (jt if taken else jf)


X86 = 0xC000003E


@pytest.mark.parametrize("caps", [set(), {"SYS_ADMIN"}, {"SYS_ADMIN", "SYS_MODULE", "SYS_PTRACE"}])
def test_every_jump_lands_inside_the_program(caps: set[str]) -> None:
    program = assemble(default_profile(caps) or {})
    for i, (code, jt, jf, _k) in enumerate(program):
        if code != BPF_RET_K and code != 0x20:
            assert i + 1 + jt < len(program) and i + 1 + jf < len(program)


def test_denied_calls_get_eperm_others_pass() -> None:
    program = assemble(default_profile(set()) or {})
    assert run_filter(program, X86, X86_64["mount"]) == 0x50000 | 1
    assert run_filter(program, X86, X86_64["clone3"]) == 0x50000 | 38  # ENOSYS: libc falls back
    assert run_filter(program, X86, 0) == RET_ALLOW  # read
    assert run_filter(program, X86, 56, arg0=0x11) == RET_ALLOW  # clone for a thread or fork
    assert run_filter(program, X86, 56, arg0=0x10000000) == 0x50000 | 1  # clone(CLONE_NEWUSER)
    assert run_filter(program, X86, 0x40000000 | 2) == 0x50000 | 38  # the x32 ABI
    assert run_filter(program, 0x40000003, 11) == 0x50000 | 38  # the i386 ABI


def test_capabilities_reenable_their_calls() -> None:
    program = assemble(default_profile({"SYS_ADMIN"}) or {})
    assert run_filter(program, X86, X86_64["mount"]) == RET_ALLOW
    assert run_filter(program, X86, 56, arg0=0x10000000) == RET_ALLOW
    assert run_filter(program, X86, X86_64["init_module"]) == 0x50000 | 1
