"""The default seccomp profile: the system calls a container may not make.

Docker's and containerd's RuntimeDefault (moby's profiles/seccomp/default.json)
is an allow-list; minipod keeps it turned around, as a deny-list (allow by
default), so it can be read: SECCOMP_DENIED names each refused call and the
capabilities that lift the refusal, and seccomp_rules() gives the rules for
a container holding a set of capabilities. runtime/security.py puts them in
the plan; minipod.linux.seccomp compiles and loads them. By hand: `grep
Seccomp /proc/PID/status` (2: a filter is on).
"""
from __future__ import annotations

import errno

from minipod.linux import namespaces
from minipod.linux.seccomp import SyscallRule

# moby profiles/seccomp/default.json turned around: the system calls it never
# allows (on x86_64 and aarch64), mapped to the capabilities that make it
# allow them (its "includes": {"caps": …} entries). Computed once from the
# profile and libseccomp's syscall table; kept here as data so it can be read.
# Syscalls newer than the profile (e.g. statmount, 6.8) are refused by moby's
# allow-list and allowed by this deny-list.
SECCOMP_DENIED: dict[str, tuple[str, ...]] = {
    # never allowed
    "_sysctl": (), "add_key": (), "afs_syscall": (), "create_module": (),
    "get_kernel_syms": (), "getpmsg": (), "kexec_file_load": (), "kexec_load": (),
    "keyctl": (), "migrate_pages": (), "move_pages": (), "nfsservctl": (),
    "pivot_root": (), "putpmsg": (), "query_module": (), "request_key": (),
    "security": (), "swapoff": (), "swapon": (), "sysfs": (), "tuxcall": (),
    "uselib": (), "userfaultfd": (), "ustat": (), "vserver": (),
    # allowed only with a capability the container holds
    "bpf": ("CAP_SYS_ADMIN", "CAP_BPF"),
    "fanotify_init": ("CAP_SYS_ADMIN",), "fsconfig": ("CAP_SYS_ADMIN",),
    "fsmount": ("CAP_SYS_ADMIN",), "fsopen": ("CAP_SYS_ADMIN",),
    "fspick": ("CAP_SYS_ADMIN",), "lookup_dcookie": ("CAP_SYS_ADMIN",),
    "mount": ("CAP_SYS_ADMIN",), "mount_setattr": ("CAP_SYS_ADMIN",),
    "move_mount": ("CAP_SYS_ADMIN",), "open_tree": ("CAP_SYS_ADMIN",),
    "perf_event_open": ("CAP_SYS_ADMIN", "CAP_PERFMON"),
    "quotactl": ("CAP_SYS_ADMIN",), "quotactl_fd": ("CAP_SYS_ADMIN",),
    "setdomainname": ("CAP_SYS_ADMIN",), "sethostname": ("CAP_SYS_ADMIN",),
    "setns": ("CAP_SYS_ADMIN",), "syslog": ("CAP_SYS_ADMIN", "CAP_SYSLOG"),
    "umount": ("CAP_SYS_ADMIN",), "umount2": ("CAP_SYS_ADMIN",),
    "unshare": ("CAP_SYS_ADMIN",),
    "open_by_handle_at": ("CAP_DAC_READ_SEARCH",),
    "reboot": ("CAP_SYS_BOOT",),
    "chroot": ("CAP_SYS_CHROOT",),
    "delete_module": ("CAP_SYS_MODULE",), "init_module": ("CAP_SYS_MODULE",),
    "finit_module": ("CAP_SYS_MODULE",),
    "acct": ("CAP_SYS_PACCT",),
    "kcmp": ("CAP_SYS_PTRACE",), "pidfd_getfd": ("CAP_SYS_PTRACE",),
    "process_madvise": ("CAP_SYS_PTRACE",),
    "iopl": ("CAP_SYS_RAWIO",), "ioperm": ("CAP_SYS_RAWIO",),
    "settimeofday": ("CAP_SYS_TIME",), "stime": ("CAP_SYS_TIME",),
    "clock_settime": ("CAP_SYS_TIME",), "clock_settime64": ("CAP_SYS_TIME",),
    "vhangup": ("CAP_SYS_TTY_CONFIG",),
    "get_mempolicy": ("CAP_SYS_NICE",), "mbind": ("CAP_SYS_NICE",),
    "set_mempolicy": ("CAP_SYS_NICE",), "set_mempolicy_home_node": ("CAP_SYS_NICE",),
}

# clone(2) may not make namespaces without CAP_SYS_ADMIN (moby: allowed only
# when flags & 0x7E020000 == 0). One rule per flag: libseccomp ANDs the
# comparisons of a rule and allows one comparison per argument.
CLONE_NAMESPACE_FLAGS = [namespaces.CLONE_NEWNS, namespaces.CLONE_NEWCGROUP,
                         namespaces.CLONE_NEWUTS, namespaces.CLONE_NEWIPC,
                         namespaces.CLONE_NEWUSER, namespaces.CLONE_NEWPID,
                         namespaces.CLONE_NEWNET]
AF_VSOCK = 40

# Not reproduced: moby allows personality(2) for five values only; "none of
# these five" needs five comparisons of one argument, which a libseccomp 2.5
# rule cannot hold. personality changes only the caller's own process image.


def seccomp_rules(caps: list[str]) -> list[SyscallRule]:
    """The default filter's rules for a container holding `caps`."""
    held = set(caps)
    rules = [SyscallRule(name) for name, lifted_by in SECCOMP_DENIED.items()
             if not held.intersection(lifted_by)]
    if "CAP_SYS_ADMIN" not in held:
        rules += [SyscallRule("clone", arg=0, value=flag, mask=flag)
                  for flag in CLONE_NAMESPACE_FLAGS]
        # clone3 passes its flags in memory, out of a filter's reach: ENOSYS
        # makes the C library fall back to clone(2), which the rules above see.
        rules.append(SyscallRule("clone3", errno=errno.ENOSYS))
    rules.append(SyscallRule("socket", arg=0, value=AF_VSOCK))
    return rules
