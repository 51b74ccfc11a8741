"""bpf(2): load an eBPF program and attach it to a cgroup.

cgroup v2 has no devices.allow file: device access is decided by an eBPF
program attached to the cgroup (BPF_CGROUP_DEVICE), which the kernel runs
on every open and mknod of a device node. cgroups/v2.py writes the
program; this module hands it to the kernel. By hand: `bpftool prog load
… type cgroup/dev` then `bpftool cgroup attach CGROUP device pinned …`;
`bpftool cgroup show CGROUP` lists what is attached.
"""
from __future__ import annotations

import os

from minipod.linux.clib import fail, ffi, long, syscall

CDEF = """
    struct bpf_prog_load { uint32_t prog_type, insn_cnt; uint64_t insns, license;
                           uint32_t log_level, log_size; uint64_t log_buf;
                           uint32_t kern_version, prog_flags; char prog_name[16];
                           uint32_t prog_ifindex, expected_attach_type; };
    struct bpf_prog_attach { uint32_t target_fd, attach_bpf_fd, attach_type,
                             attach_flags, replace_bpf_fd; };
"""

# <linux/bpf.h>
BPF_PROG_LOAD, BPF_PROG_ATTACH = 5, 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2


def _bpf(cmd: int, attr, what: str, path: str) -> int:
    """bpf(cmd, attr, sizeof attr); an unknown syscall number is said, not guessed."""
    try:
        rc = syscall("bpf", long(cmd), ffi.cast("void *", attr), long(ffi.sizeof(attr[0])))
    except OSError as e:
        raise OSError(e.errno, f"{what}: {e.strerror}", path) from None
    if rc < 0:
        fail(what, path)
    return rc


def attach_device_program(cgroup_dir: str, program: bytes) -> None:
    """Load the program (BPF_PROG_LOAD) and attach it to the cgroup
    (BPF_PROG_ATTACH, BPF_CGROUP_DEVICE). The attachment keeps it alive
    after our file descriptors close, until the cgroup is removed. A
    refused program's error carries the end of the verifier's log."""
    insns = ffi.from_buffer(program)
    license_ = ffi.new("char[]", b"Apache")
    log = ffi.new("char[]", 65536)
    load = ffi.new("struct bpf_prog_load *")
    load.prog_type, load.insn_cnt = BPF_PROG_TYPE_CGROUP_DEVICE, len(program) // 8
    load.insns = int(ffi.cast("uintptr_t", insns))
    load.license = int(ffi.cast("uintptr_t", license_))
    load.log_level, load.log_size = 1, len(log)
    load.log_buf = int(ffi.cast("uintptr_t", log))
    load.prog_name = b"minipod_devices"
    try:
        prog_fd = _bpf(BPF_PROG_LOAD, load, "load device eBPF program", cgroup_dir)
    except OSError as e:
        raise OSError(e.errno, f"{e.strerror}; verifier: "
                      f"{ffi.string(log).decode(errors='replace')[-500:]}", cgroup_dir) from None
    try:
        dir_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            attach = ffi.new("struct bpf_prog_attach *", (dir_fd, prog_fd, BPF_CGROUP_DEVICE,
                                                          BPF_F_ALLOW_MULTI, 0))
            _bpf(BPF_PROG_ATTACH, attach, "attach device eBPF program to cgroup", cgroup_dir)
        finally:
            os.close(dir_fd)
    finally:
        os.close(prog_fd)
