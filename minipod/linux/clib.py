"""The C library, opened once through cffi in ABI mode (no compiler needed).

cffi opens the C library already loaded into the process and calls its
wrappers. The declarations of every module of this floor (each its CDEF)
live in one FFI, parsed ahead of time into _cdefs.py (see __init__.py),
which clib opens the C library with; the modules share three helpers:

    fail(step, obj)        raise OSError(errno, "STEP: strerror", obj) from errno
    retry(call)            call until it does not fail with EINTR (man 7 signal)
    syscall(name, *args)   syscall(2) by name, for calls glibc does not wrap

Syscall numbers: the calls added since Linux 5.0 share one table on every
architecture Linux calls "generic" (424 onwards: open_tree 428, ...); the
older ones differ per architecture. A machine this table does not know is
said plainly at the call (ENOSYS, naming the call and the machine), never
guessed.
"""
from __future__ import annotations

import errno
import os

from minipod.linux._cdefs import ffi

CDEF = """
    long syscall(long number, ...);
    int prctl(int option, ...);
"""
lib = ffi.dlopen(None)

MACHINE = os.uname().machine

# Older system calls: the number differs per architecture (<asm/unistd.h>).
_PER_ARCH = {
    "pivot_root": {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203,
                   "s390x": 217, "i686": 217, "armv7l": 218},
    "bpf": {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361,
            "s390x": 351, "i686": 357, "armv7l": 386},
}
# Added after 4.20: one number on every architecture of the unified table
# (alpha, ia64 and mips add an offset: not listed, so not guessed).
_UNIFIED = {"open_tree": 428, "move_mount": 429, "close_range": 436, "openat2": 437}
_UNIFIED_ARCHES = {"x86_64", "aarch64", "riscv64", "ppc64le", "ppc64", "s390x", "i686",
                   "i386", "armv7l", "armv6l", "loongarch64"}


def syscall_number(name: str, machine: str = MACHINE) -> int:
    """The number of system call `name` on `machine`; OSError(ENOSYS) saying
    so when minipod does not know it there."""
    number = _PER_ARCH.get(name, {}).get(machine)
    if number is None and name in _UNIFIED and machine in _UNIFIED_ARCHES:
        number = _UNIFIED[name]
    if number is None:
        raise OSError(errno.ENOSYS, f"{name}: minipod does not know this system call's "
                      f"number on {machine}", name)
    return number


def fail(step: str, obj: str | None = None) -> None:
    """Raise OSError from the errno the last C call left, naming the step."""
    err = ffi.errno
    raise OSError(err, f"{step}: {os.strerror(err)}", obj)


def retry(call):
    """Call until it does not fail with EINTR (man 7 signal); its result."""
    while True:
        rc = call()
        if rc != -1 or ffi.errno != errno.EINTR:
            return rc


def long(value: int):
    """value as a C long, the type of every argument of syscall(2) here."""
    return ffi.cast("long", value)


def syscall(name: str, *args) -> int:
    """syscall(2) by name, retried on EINTR; its result (-1: see errno)."""
    number = long(syscall_number(name))
    return retry(lambda: lib.syscall(number, *args))
