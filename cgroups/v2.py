"""cgroup v2: one hierarchy, controllers switched on per level.

Every cgroup is one directory. A controller's files appear in a child only
when the parent lists it in cgroup.subtree_control, and a cgroup that
hands controllers down may hold no process itself ("no internal
processes"), which is why pods and containers live in their own subtree and
not below the agent. By hand:

    echo "+cpu +memory +pids" > /sys/fs/cgroup/cgroup.subtree_control
    mkdir /sys/fs/cgroup/minipod
    echo "+cpu +memory +pids" > /sys/fs/cgroup/minipod/cgroup.subtree_control
    mkdir /sys/fs/cgroup/minipod/pod1234
    echo "+cpu +memory +pids" > /sys/fs/cgroup/minipod/pod1234/cgroup.subtree_control
    mkdir /sys/fs/cgroup/minipod/pod1234/web
    echo "25000 100000" > /sys/fs/cgroup/minipod/pod1234/web/cpu.max      # limit 250m
    echo 10 > /sys/fs/cgroup/minipod/pod1234/web/cpu.weight              # request 250m
    echo 67108864 > /sys/fs/cgroup/minipod/pod1234/web/memory.max
    echo 0 > /sys/fs/cgroup/minipod/pod1234/web/memory.swap.max
    echo 1 > /sys/fs/cgroup/minipod/pod1234/web/memory.oom.group
    echo 4096 > /sys/fs/cgroup/minipod/pod1234/web/pids.max

memory.oom.group=1 makes an OOM kill take the whole container, as the
kubelet asks for on cgroup v2 since Kubernetes 1.28.

v2 has no devices.allow file: device access is decided by an eBPF program
attached to the cgroup (BPF_CGROUP_DEVICE), which the kernel runs on every
open and mknod of a device node. `device_program` writes it from the same
rules as the v1 driver (runc's libcontainer/cgroups/devices/devicefilter.go
does the same) and minipod.linux.bpf loads and attaches it; `bpftool
cgroup show /sys/fs/cgroup/minipod/pod1234/web` lists it.
"""
from __future__ import annotations

import errno
import os
import struct

from minipod.cgroups.driver import (QUOTA_PERIOD_US, Driver, Limits, Stats, cpu_quota_us,
                                    cpu_shares, cpu_weight, read_file, read_keyed,
                                    write_file)
from minipod.cgroups.v1 import DEVICE_RULES

CONTROLLERS = ("cpu", "memory", "pids")


class V2Driver(Driver):
    version = 2

    def dirs(self, cg: str) -> list[str]:
        return [self.root + cg]

    def path(self, cg: str) -> str:
        return self.root + cg

    def _ensure_parent(self) -> None:
        self._delegate(self.root)
        self._make(self.parent)
        self._delegate(self.path(self.parent))

    def create_pod(self, pod_uid: str, limits: Limits | None = None) -> str:
        cg = super().create_pod(pod_uid, limits)
        self._delegate(self.path(cg))
        return cg

    def create_container(self, pod_cg: str, name: str, limits: Limits,
                         privileged: bool = False) -> str:
        cg = super().create_container(pod_cg, name, limits, privileged)
        group = f"{self.path(cg)}/memory.oom.group"
        if os.path.exists(group):
            write_file(group, "1")
        return cg

    def _delegate(self, d: str) -> None:
        """Switch on, for the children of `d`, the controllers it has."""
        available = read_file(f"{d}/cgroup.controllers").split()
        enabled = read_file(f"{d}/cgroup.subtree_control").split()
        for c in CONTROLLERS:
            if c in available and c not in enabled:
                # one at a time: the error then names the controller refused
                write_file(f"{d}/cgroup.subtree_control", f"+{c}")

    def _write(self, cg: str, name: str, value: str) -> None:
        path = f"{self.path(cg)}/{name}"
        try:
            write_file(path, value)
        except FileNotFoundError as e:
            controller = name.split(".")[0]
            raise OSError(errno.ENOENT, f"cannot set {name}: the {controller} controller "
                          f"is not enabled for this cgroup ({e.strerror})", path) from None

    def _set_limits(self, cg: str, limits: Limits) -> None:
        weight = f"{self.path(cg)}/cpu.weight"
        if limits.cpu_request_milli is not None or os.path.exists(weight):
            # no request: the lowest weight, as the kubelet gives BestEffort
            self._write(cg, "cpu.weight", str(cpu_weight(cpu_shares(limits.cpu_request_milli))))
        if limits.cpu_limit_milli is not None:
            self._write(cg, "cpu.max",
                        f"{cpu_quota_us(limits.cpu_limit_milli)} {QUOTA_PERIOD_US}")
        if limits.memory_limit is not None:
            self._write(cg, "memory.max", str(limits.memory_limit))
            swap = f"{self.path(cg)}/memory.swap.max"
            if os.path.exists(swap):   # absent when the kernel does not account swap
                write_file(swap, "0")
        if limits.pids_max is not None:
            self._write(cg, "pids.max", str(limits.pids_max))

    def _restrict_devices(self, cg: str) -> None:
        self._attach_program(self.path(cg), device_program(DEVICE_RULES))

    def _attach_program(self, path: str, program: bytes) -> None:
        """The kernel seam for device rules (the unit tests record instead)."""
        from minipod.linux import bpf
        bpf.attach_device_program(path, program)

    def stats(self, cg: str) -> Stats:
        d = self.path(cg)
        usage_ns = read_keyed(f"{d}/cpu.stat")["usage_usec"] * 1000
        current = int(read_file(f"{d}/memory.current"))
        inactive = read_keyed(f"{d}/memory.stat").get("inactive_file", 0)
        return Stats(usage_ns, current - inactive if inactive < current else 0)

    def oom_killed(self, cg: str) -> int:
        """memory.events' oom_kill: processes of this cgroup (and below) the
        OOM killer took."""
        return read_keyed(f"{self.path(cg)}/memory.events").get("oom_kill", 0)


# ---- the device rules as an eBPF program ----------------------------------------
#
# The kernel calls the program with struct bpf_cgroup_dev_ctx
# { u32 access_type (access << 16 | type); u32 major; u32 minor; }
# and allows the access when it returns 1. The program checks the rules in
# order; a rule allows when the type, major and minor match and the access
# asked for is within the rule's.

BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR = 1, 2
BPF_DEVCG_ACC_MKNOD, BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE = 1, 2, 4
_ACCESS = {"m": BPF_DEVCG_ACC_MKNOD, "r": BPF_DEVCG_ACC_READ, "w": BPF_DEVCG_ACC_WRITE}

# eBPF opcodes (<linux/bpf.h>): class | operation | source
_LDX_W = 0x61      # BPF_LDX | BPF_MEM | BPF_W      dst = *(u32 *)(src + off)
_AND32_K = 0x54    # BPF_ALU | BPF_AND | BPF_K      dst &= imm
_RSH32_K = 0x74    # BPF_ALU | BPF_RSH | BPF_K      dst >>= imm
_MOV32_X = 0xBC    # BPF_ALU | BPF_MOV | BPF_X      dst = src
_MOV64_K = 0xB7    # BPF_ALU64 | BPF_MOV | BPF_K    dst = imm
_JNE_K = 0x55      # BPF_JMP | BPF_JNE | BPF_K      if dst != imm: pc += off
_JNE_X = 0x5D      # BPF_JMP | BPF_JNE | BPF_X      if dst != src: pc += off
_EXIT = 0x95       # BPF_JMP | BPF_EXIT             return r0


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """struct bpf_insn: u8 code, u8 dst_reg:4 src_reg:4, s16 off, s32 imm."""
    return struct.pack("<BBhi", code, dst | (src << 4), off, imm)


def parse_device_rule(rule: str) -> tuple[int | None, int | None, int | None, int]:
    """"c 1:3 rwm" -> (type, major, minor, access); None means any."""
    kind, numbers, access = rule.split()
    major, _, minor = numbers.partition(":")
    return ({"c": BPF_DEVCG_DEV_CHAR, "b": BPF_DEVCG_DEV_BLOCK, "a": None}[kind],
            None if major == "*" else int(major), None if minor == "*" else int(minor),
            sum(_ACCESS[a] for a in set(access)))


def device_program(rules: list[str]) -> bytes:
    """An allow-list program for rules written as v1's devices.allow lines."""
    prog = [_insn(_LDX_W, 2, 1, 0), _insn(_AND32_K, 2, imm=0xFFFF),   # r2 = type
            _insn(_LDX_W, 3, 1, 0), _insn(_RSH32_K, 3, imm=16),       # r3 = access
            _insn(_LDX_W, 4, 1, 4),                                   # r4 = major
            _insn(_LDX_W, 5, 1, 8)]                                   # r5 = minor
    everything = BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE
    for rule in rules:
        kind, major, minor, access = parse_device_rule(rule)
        block: list[tuple] = []   # (code, dst, src, imm); jumps go past the block
        if kind is not None:
            block.append((_JNE_K, 2, 0, kind))
        if access != everything:   # r1 = asked & allowed; must equal asked
            block += [(_MOV32_X, 1, 3, 0), (_AND32_K, 1, 0, access), (_JNE_X, 1, 3, 0)]
        if major is not None:
            block.append((_JNE_K, 4, 0, major))
        if minor is not None:
            block.append((_JNE_K, 5, 0, minor))
        block += [(_MOV64_K, 0, 0, 1), (_EXIT, 0, 0, 0)]               # allow
        for i, (code, dst, src, imm) in enumerate(block):
            jump = len(block) - i - 1 if code in (_JNE_K, _JNE_X) else 0
            prog.append(_insn(code, dst, src, jump, imm))
    prog += [_insn(_MOV64_K, 0, imm=0), _insn(_EXIT)]                  # deny the rest
    return b"".join(prog)
