"""A small seccomp-BPF deny list for the bwrap backend (x86-64), built without libseccomp.

The sandboxed process already has no capabilities and its own namespaces; this takes away the
kernel interfaces that serve no Python job but are a common way into kernel bugs (the same spirit
as Docker's and Flatpak's default profiles). Denied calls fail with EPERM; any other architecture
(32-bit/x32 entry points) is refused outright.
"""

from __future__ import annotations

import errno
import struct

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

# x86-64 syscall numbers.
DENIED = {
    "uselib": 134, "personality": 135, "ustat": 136, "sysfs": 139, "syslog": 103,
    "ptrace": 101, "vhangup": 153, "pivot_root": 155, "_sysctl": 156, "chroot": 161,
    "acct": 163, "settimeofday": 164, "mount": 165, "umount2": 166, "swapon": 167,
    "swapoff": 168, "reboot": 169, "iopl": 172, "ioperm": 173, "create_module": 174,
    "init_module": 175, "delete_module": 176, "quotactl": 179, "lookup_dcookie": 212,
    "clock_settime": 227, "add_key": 248, "request_key": 249, "keyctl": 250,
    "kexec_load": 246, "unshare": 272, "perf_event_open": 298, "name_to_handle_at": 303,
    "open_by_handle_at": 304, "clock_adjtime": 305, "setns": 308, "process_vm_readv": 310,
    "process_vm_writev": 311, "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
    "fspick": 433, "mount_setattr": 442,
}

_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_RET_K = 0x06
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_RET_KILL_PROCESS = 0x80000000


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def deny_filter(denied: dict[str, int] = DENIED) -> bytes:
    """The compiled filter, as bwrap's --seccomp FD expects it (an array of sock_filter)."""
    nrs = sorted(set(denied.values()))
    eperm = len(nrs) + 1  # jump distance from the x32 check to the final "ret EPERM"
    prog = [
        _insn(_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        _insn(_JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        _insn(_RET_K, 0, 0, _RET_KILL_PROCESS),
        _insn(_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        _insn(_JGE_K, eperm, 0, X32_SYSCALL_BIT),
    ]
    for i, nr in enumerate(nrs):
        prog.append(_insn(_JEQ_K, len(nrs) - i, 0, nr))  # -> the "ret EPERM" after ALLOW
    prog.append(_insn(_RET_K, 0, 0, _RET_ALLOW))
    prog.append(_insn(_RET_K, 0, 0, _RET_ERRNO | errno.EPERM))
    return b"".join(prog)
