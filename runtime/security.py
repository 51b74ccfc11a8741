"""A container no more powerful than containerd would make it.

Applied by the container's init after its root is built (pivot_root done)
and just before exec. What containerd (through runc) does, and minipod too:

1. masked paths: /dev/null bound over kernel files a container must not
   read (/proc/kcore, /proc/keys, …), an empty read-only tmpfs over such
   directories (/proc/acpi, /sys/firmware, …)
2. read-only paths: /proc/sys, /proc/sysrq-trigger, /proc/bus, /proc/fs,
   /proc/irq bound over themselves and remounted read-only
3. readOnlyRootFilesystem: the root remounted read-only
4. user: supplementary groups, gid, uid (runAsUser, runAsGroup,
   supplementalGroups, fsGroup), keeping capabilities across setuid
5. capabilities: the bounding, effective and permitted sets cut to
   containerd's 14 defaults (securityContext.capabilities add/drop
   honoured), inheritable and ambient emptied
6. no_new_privs: setuid binaries and file capabilities grant nothing
7. seccomp: a BPF filter returning EPERM for the system calls Docker's and
   containerd's default profile refuses (mount, unshare, keyctl, kexec,
   module loading, …)

`privileged: true` lifts 1, 2, 5 and 7, as in Kubernetes. The same by hand
(util-linux's setpriv, runc's order):

    mount --bind /dev/null /proc/kcore
    mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys
    setpriv --reuid=1000 --regid=1000 --groups=1000 \\
            --bounding-set=-all,+chown,+dac_override,… --inh-caps=-all \\
            --no-new-privs  CMD                      # seccomp: no shell tool

Two defaults are stricter than Kubernetes': no_new_privs is on unless
allowPrivilegeEscalation is true (Kubernetes leaves it off unless false),
and seccomp is RuntimeDefault unless Unconfined (a kubelet with
--seccomp-default). The filter is a deny-list (allow by default) derived
from moby's profiles/seccomp/default.json, which is an allow-list; see
SECCOMP_DENIED for what that changes.

Split in two, like everything that touches the kernel here: plan_security()
is pure (unit-tested without root), apply() performs a plan in the child.
prepare() turns the plan's rules into a BPF program with libseccomp in the
agent, before the fork: after pivot_root the library is out of sight, and
the child then needs one prctl(2) only.
"""
from __future__ import annotations

import errno
import glob
import os
import stat
from dataclasses import dataclass, field

from minipod import libc
from minipod.runtime import process

# ---- the input: a container's effective securityContext ---------------------


@dataclass
class SecuritySpec:
    """The securityContext fields minipod honours (None = not set).

    Pod-level fields (runAsUser, runAsGroup, runAsNonRoot,
    supplementalGroups, fsGroup, seccompProfile) and container-level ones
    share this type; `merge` gives the container's view."""
    privileged: bool | None = None
    allow_privilege_escalation: bool | None = None
    read_only_root_filesystem: bool | None = None
    capabilities_add: list[str] | None = None      # "NET_ADMIN", "ALL", …
    capabilities_drop: list[str] | None = None
    seccomp_profile: str | None = None             # "RuntimeDefault" | "Unconfined"
    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    supplemental_groups: list[int] | None = None
    fs_group: int | None = None


def merge(pod: SecuritySpec | None, container: SecuritySpec | None) -> SecuritySpec:
    """The container's fields win over the pod's where set
    (kubelet DetermineEffectiveSecurityContext)."""
    out = SecuritySpec()
    for src in (pod, container):
        if src is None:
            continue
        for name in SecuritySpec.__dataclass_fields__:
            value = getattr(src, name)
            if value is not None:
                setattr(out, name, value)
    return out


class SecurityError(ValueError):
    """The container must not start (runAsNonRoot, an unknown capability…)."""


# ---- capabilities -----------------------------------------------------------

# <linux/capability.h>, by number
CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]

# containerd's default set (pkg/oci/spec.go defaultUnixCaps), Docker's too
DEFAULT_CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
    "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]


def capability_set(add: list[str] | None, drop: list[str] | None) -> list[str]:
    """containerd's rule: start from the defaults; "ALL" in add takes every
    capability, "ALL" in drop none; then the named adds, then the named drops.
    Names as Kubernetes writes them ("NET_ADMIN"); a "CAP_" prefix is accepted."""
    add, drop = [_cap_name(n, "add") for n in add or []], [_cap_name(n, "drop") for n in drop or []]
    caps = list(DEFAULT_CAPABILITIES)
    if "ALL" in add:
        caps = list(CAPABILITIES)
    if "ALL" in drop:
        caps = []
    for name in add:
        if name != "ALL" and name not in caps:
            caps.append(name)
    caps = [c for c in caps if c not in drop]
    return sorted(caps, key=CAPABILITIES.index)


def _cap_name(name: str, where: str) -> str:
    upper = name.upper()
    if upper == "ALL":
        return "ALL"
    full = upper if upper.startswith("CAP_") else "CAP_" + upper
    if full not in CAPABILITIES:
        raise SecurityError(f'unknown capability "{name}" in securityContext.capabilities.'
                            f'{where} (names look like NET_ADMIN, SYS_TIME or ALL)')
    return full


def capability_mask(names: list[str]) -> int:
    mask = 0
    for name in names:
        mask |= 1 << CAPABILITIES.index(name)
    return mask


# ---- seccomp ----------------------------------------------------------------

@dataclass(frozen=True)
class SyscallRule:
    """Refuse `name` with `errno`; with `arg` set, only when
    (argument[arg] & mask) == value (SCMP_CMP_MASKED_EQ) or, with mask 0,
    argument[arg] == value (SCMP_CMP_EQ)."""
    name: str
    errno: int = errno.EPERM
    arg: int | None = None
    value: int = 0
    mask: int = 0


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
CLONE_NAMESPACE_FLAGS = [libc.CLONE_NEWNS, libc.CLONE_NEWCGROUP, libc.CLONE_NEWUTS,
                         libc.CLONE_NEWIPC, libc.CLONE_NEWUSER, libc.CLONE_NEWPID,
                         libc.CLONE_NEWNET]
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


# ---- masked and read-only paths ---------------------------------------------

# Kubernetes' DefaultProcMount (pkg/securitycontext/util.go), which the
# kubelet sends to containerd: files get /dev/null, directories a tmpfs.
MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
    "/sys/devices/system/cpu/cpu*/thermal_throttle",   # expanded in the container
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


# ---- the plan -----------------------------------------------------------------

@dataclass
class SecurityPlan:
    """Everything apply() does, decided before the fork (plain values)."""
    uid: int = 0
    gid: int = 0
    groups: list[int] = field(default_factory=list)
    privileged: bool = False
    capabilities: list[str] = field(default_factory=lambda: list(DEFAULT_CAPABILITIES))
    no_new_privs: bool = True
    seccomp: list[SyscallRule] | None = None      # None: unconfined
    seccomp_bpf: bytes | None = None              # prepare() fills it
    masked_paths: list[str] = field(default_factory=list)
    readonly_paths: list[str] = field(default_factory=list)
    readonly_root: bool = False


def plan_security(sec: SecuritySpec, image_user: str | None = None, passwd: str = "",
                  group: str = "", where: str = "") -> SecurityPlan:
    """Decide the container's identity and confinement (pure).

    sec is a SecuritySpec or any object with the same attributes (the
    manifest's effective SecurityContext works as it is);
    image_user is the image config's User ("1000", "app:staff", "" = root);
    passwd and group are the image's /etc/passwd and /etc/group texts;
    where names the container in errors, as the kubelet does
    ('pod: "web_default(uid)", container: main')."""
    check_run_as_non_root(sec, image_user, where)
    uid, gid = process.user(_user_string(sec, image_user), passwd, group)
    groups = supplementary_groups(uid, gid, sec, passwd, group)
    privileged = bool(sec.privileged)
    caps = list(CAPABILITIES) if privileged else \
        capability_set(sec.capabilities_add, sec.capabilities_drop)
    profile = sec.seccomp_profile or "RuntimeDefault"
    if profile not in ("RuntimeDefault", "Unconfined"):
        raise SecurityError(f'seccompProfile type "{profile}" is not supported: '
                            f'use RuntimeDefault or Unconfined')
    escalation = sec.allow_privilege_escalation
    if escalation is None:
        # Kubernetes: CAP_SYS_ADMIN implies allowPrivilegeEscalation
        escalation = "CAP_SYS_ADMIN" in caps
    return SecurityPlan(
        uid=uid, gid=gid, groups=groups, privileged=privileged, capabilities=caps,
        no_new_privs=not (privileged or escalation),
        seccomp=None if privileged or profile == "Unconfined" else seccomp_rules(caps),
        masked_paths=[] if privileged else list(MASKED_PATHS),
        readonly_paths=[] if privileged else list(READONLY_PATHS),
        readonly_root=bool(sec.read_only_root_filesystem))


def _user_string(sec: SecuritySpec, image_user: str | None) -> str:
    """The user the container runs as, as "user[:group]" (containerd's
    generateUserString): runAsUser replaces the image's user, runAsGroup its
    group; without runAsGroup, an overridden user gets its /etc/passwd group."""
    name, _, grp = (image_user or "").partition(":")
    if sec.run_as_user is not None:
        name, grp = str(sec.run_as_user), ""
    if sec.run_as_group is not None:
        grp = str(sec.run_as_group)
    if not name and grp:
        name = "0"
    return f"{name}:{grp}" if grp else name


def check_run_as_non_root(sec: SecuritySpec, image_user: str | None, where: str = "") -> None:
    """The kubelet's verifyRunAsNonRoot, with its messages."""
    if not sec.run_as_non_root:
        return
    suffix = f" ({where})" if where else ""
    if sec.run_as_user is not None:
        if sec.run_as_user == 0:
            raise SecurityError(f"container's runAsUser breaks non-root policy{suffix}")
        return
    user = (image_user or "").partition(":")[0]
    if user and not user.isdigit():
        raise SecurityError(f"container has runAsNonRoot and image has non-numeric user "
                            f"({user}), cannot verify user is non-root{suffix}")
    if not user or int(user) == 0:
        raise SecurityError(f"container has runAsNonRoot and image will run as root{suffix}")


def supplementary_groups(uid: int, gid: int, sec: SecuritySpec, passwd: str = "",
                         group: str = "") -> list[int]:
    """The primary gid, the image's /etc/group memberships of the user,
    then supplementalGroups and fsGroup (containerd WithAdditionalGIDs +
    the kubelet adding fsGroup)."""
    username = next((f[0] for f in (line.split(":") for line in passwd.splitlines())
                     if len(f) >= 3 and f[2] == str(uid)), None)
    out = [gid]
    for line in group.splitlines():
        f = line.split(":")
        if username and len(f) >= 4 and username in f[3].split(",") and f[2].isdigit():
            out.append(int(f[2]))
    out += list(sec.supplemental_groups or [])
    if sec.fs_group is not None:
        out.append(sec.fs_group)
    return list(dict.fromkeys(out))


# ---- libseccomp (agent side) and the syscalls of apply() ----------------------

_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_CMP_EQ = 4
_SCMP_CMP_MASKED_EQ = 7
_EXTRA_ARCHES = {"x86_64": ["x86", "x32"], "aarch64": ["arm"]}

_ffi = None
_libc = None
_libseccomp = None


def _cffi():
    global _ffi, _libc
    if _ffi is None:
        import cffi
        ffi = cffi.FFI()
        ffi.cdef("""
            struct cap_header { uint32_t version; int pid; };
            struct cap_data { uint32_t effective; uint32_t permitted; uint32_t inheritable; };
            int capget(struct cap_header *hdr, struct cap_data *data);
            int capset(struct cap_header *hdr, const struct cap_data *data);
            int prctl(int option, ...);
            struct sock_filter { uint16_t code; uint8_t jt; uint8_t jf; uint32_t k; };
            struct sock_fprog { unsigned short len; struct sock_filter *filter; };

            typedef void *scmp_filter_ctx;
            struct scmp_arg_cmp { unsigned int arg; int op; uint64_t datum_a; uint64_t datum_b; };
            scmp_filter_ctx seccomp_init(uint32_t def_action);
            void seccomp_release(scmp_filter_ctx ctx);
            uint32_t seccomp_arch_resolve_name(const char *arch_name);
            int seccomp_arch_add(scmp_filter_ctx ctx, uint32_t arch_token);
            int seccomp_syscall_resolve_name(const char *name);
            int seccomp_rule_add_array(scmp_filter_ctx ctx, uint32_t action, int syscall,
                                       unsigned int arg_cnt, const struct scmp_arg_cmp *arg_array);
            int seccomp_export_bpf(const scmp_filter_ctx ctx, int fd);
            int seccomp_export_pfc(const scmp_filter_ctx ctx, int fd);
        """)
        _libc = ffi.dlopen(None)
        _ffi = ffi
    return _ffi, _libc


def _seccomp_lib():
    global _libseccomp
    ffi, _ = _cffi()
    if _libseccomp is None:
        try:
            _libseccomp = ffi.dlopen("libseccomp.so.2")
        except OSError as e:
            raise OSError(errno.ENOENT, f"cannot load libseccomp.so.2 ({e}): install it "
                          f"(apt-get install libseccomp2)", "libseccomp.so.2") from None
    return _libseccomp


def _build_filter(rules: list[SyscallRule]):
    """A libseccomp filter context: allow by default, the rules refuse."""
    ffi, _ = _cffi()
    lib = _seccomp_lib()
    ctx = lib.seccomp_init(_SCMP_ACT_ALLOW)
    if ctx == ffi.NULL:
        raise OSError(errno.ENOMEM, "seccomp_init failed")
    try:
        for arch in _EXTRA_ARCHES.get(os.uname().machine, []):
            token = lib.seccomp_arch_resolve_name(arch.encode())
            rc = lib.seccomp_arch_add(ctx, token) if token else 0
            if rc < 0 and -rc != errno.EEXIST:
                raise OSError(-rc, f"seccomp_arch_add({arch}): {os.strerror(-rc)}")
        for rule in rules:
            nr = lib.seccomp_syscall_resolve_name(rule.name.encode())
            if nr == -1:          # __NR_SCMP_ERROR: unknown to this libseccomp
                continue
            action = 0x00050000 | (rule.errno & 0xFFFF)    # SCMP_ACT_ERRNO(errno)
            if rule.arg is None:
                rc = lib.seccomp_rule_add_array(ctx, action, nr, 0, ffi.NULL)
            else:
                op, a, b = (_SCMP_CMP_MASKED_EQ, rule.mask, rule.value) if rule.mask \
                    else (_SCMP_CMP_EQ, rule.value, 0)
                cmp = ffi.new("struct scmp_arg_cmp[1]", [(rule.arg, op, a, b)])
                rc = lib.seccomp_rule_add_array(ctx, action, nr, 1, cmp)
            if rc < 0:
                raise OSError(-rc, f"seccomp rule for {rule.name}: {os.strerror(-rc)}")
        return ctx
    except BaseException:
        lib.seccomp_release(ctx)
        raise


def _export(rules: list[SyscallRule], exporter: str) -> bytes:
    lib = _seccomp_lib()
    ctx = _build_filter(rules)
    fd = os.memfd_create("minipod-seccomp", os.MFD_CLOEXEC)
    try:
        rc = getattr(lib, exporter)(ctx, fd)
        if rc < 0:
            raise OSError(-rc, f"{exporter}: {os.strerror(-rc)}")
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
        lib.seccomp_release(ctx)


def prepare(plan: SecurityPlan) -> SecurityPlan:
    """Agent side, before the fork: load the C bindings apply() uses and
    compile the seccomp rules into a BPF program (libseccomp's
    seccomp_export_bpf) in plan.seccomp_bpf. After pivot_root neither
    libseccomp nor cffi's C parser is in sight any more."""
    _cffi()
    if plan.seccomp is not None and plan.seccomp_bpf is None:
        key = tuple(plan.seccomp)
        bpf = _compiled.get(key)
        if bpf is None:
            bpf = _compiled[key] = _export(plan.seccomp, "seccomp_export_bpf")
        plan.seccomp_bpf = bpf
    return plan


# The programs compiled so far, by their rules: a few (one per set of
# capabilities seen), each compiled once per agent, not once per container.
_compiled: dict[tuple[SyscallRule, ...], bytes] = {}


def seccomp_text(plan: SecurityPlan) -> str:
    """The filter as libseccomp's pseudo-code, for reading (seccomp_export_pfc)."""
    return _export(plan.seccomp or [], "seccomp_export_pfc").decode()


# <linux/prctl.h>, <linux/capability.h>, <linux/seccomp.h>
PR_SET_KEEPCAPS = 8
PR_SET_SECCOMP = 22
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def _prctl(option: int, arg: int, what: str) -> None:
    ffi, lib = _cffi()
    ul = "unsigned long"
    if lib.prctl(option, ffi.cast(ul, arg), ffi.cast(ul, 0), ffi.cast(ul, 0),
                 ffi.cast(ul, 0)) == -1:
        err = ffi.errno
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _capget() -> int:
    """The permitted set of this process."""
    ffi, lib = _cffi()
    hdr = ffi.new("struct cap_header *", (_LINUX_CAPABILITY_VERSION_3, 0))
    data = ffi.new("struct cap_data[2]")
    if lib.capget(hdr, data) == -1:
        raise OSError(ffi.errno, f"capget: {os.strerror(ffi.errno)}")
    return data[0].permitted | (data[1].permitted << 32)


def _capset(mask: int) -> None:
    """Effective = permitted = mask, inheritable empty (capset(2), version 3)."""
    ffi, lib = _cffi()
    hdr = ffi.new("struct cap_header *", (_LINUX_CAPABILITY_VERSION_3, 0))
    lo, hi = mask & 0xFFFFFFFF, mask >> 32
    data = ffi.new("struct cap_data[2]", [(lo, lo, 0), (hi, hi, 0)])
    if lib.capset(hdr, data) == -1:
        err = ffi.errno
        raise OSError(err, f"capset effective=permitted={mask:#x}: {os.strerror(err)}")


def _load_seccomp(bpf: bytes) -> None:
    """prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog): from now on the
    kernel runs the program on every system call of this process and its
    children; it cannot be removed."""
    ffi, lib = _cffi()
    prog_filter = ffi.from_buffer("struct sock_filter[]", bpf)
    prog = ffi.new("struct sock_fprog *", (len(bpf) // 8, prog_filter))
    ul = "unsigned long"
    if lib.prctl(PR_SET_SECCOMP, ffi.cast(ul, SECCOMP_MODE_FILTER), ffi.cast("void *", prog),
                 ffi.cast(ul, 0), ffi.cast(ul, 0)) == -1:
        err = ffi.errno
        raise OSError(err, f"load seccomp filter ({len(bpf) // 8} BPF instructions): "
                      f"{os.strerror(err)}")


# ---- apply (in the container's init, after pivot_root, before exec) -----------

def apply(plan: SecurityPlan) -> None:
    """Perform the plan on this process: the steps of the module docstring,
    in runc's order. Raises OSError naming the step and path."""
    if _ffi is None or (plan.seccomp is not None and plan.seccomp_bpf is None):
        raise RuntimeError("security.prepare(plan) must run before the fork")
    # 1-3: mounts, while CAP_SYS_ADMIN is still held
    for pattern in plan.masked_paths:
        for path in sorted(glob.glob(pattern)) if "*" in pattern else [pattern]:
            _mask(path)
    for path in plan.readonly_paths:
        _readonly(path)
    if plan.readonly_root:
        _remount_ro("/")
    # Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: do it now.
    if plan.seccomp_bpf is not None and not plan.no_new_privs:
        _load_seccomp(plan.seccomp_bpf)
    # 4-5: the bounding set, then the user, keeping the permitted set across setuid
    want = capability_mask(plan.capabilities)
    have = _capget()
    if not plan.privileged and want & ~have:
        missing = [c for c in plan.capabilities if capability_mask([c]) & ~have]
        raise OSError(errno.EPERM, f"capabilities {missing} were asked for but the agent "
                      f"does not hold them")
    want &= have      # privileged: all the agent holds
    for cap in range(_cap_last_cap() + 1):
        if not want & (1 << cap):
            try:
                _prctl(PR_CAPBSET_DROP, cap, f"drop capability {cap} from the bounding set")
            except OSError as e:
                if e.errno != errno.EINVAL:   # a capability this kernel lacks
                    raise
    _prctl(PR_SET_KEEPCAPS, 1, "PR_SET_KEEPCAPS")
    try:
        os.setgroups(plan.groups)
    except OSError as e:
        raise OSError(e.errno, f"setgroups {plan.groups}: {e.strerror}") from None
    try:
        os.setresgid(plan.gid, plan.gid, plan.gid)
        os.setresuid(plan.uid, plan.uid, plan.uid)
    except OSError as e:
        raise OSError(e.errno, f"set user {plan.uid}:{plan.gid}: {e.strerror}") from None
    _prctl(PR_SET_KEEPCAPS, 0, "PR_SET_KEEPCAPS")
    _capset(want)
    try:
        _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, "clear ambient capabilities")
    except OSError as e:
        if e.errno != errno.EINVAL:   # kernels before 4.3 have no ambient set
            raise
    # 6-7
    if plan.no_new_privs:
        _prctl(PR_SET_NO_NEW_PRIVS, 1, "PR_SET_NO_NEW_PRIVS")
    if plan.seccomp_bpf is not None and plan.no_new_privs:
        _load_seccomp(plan.seccomp_bpf)   # last: as close to exec as it gets


def _cap_last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(CAPABILITIES) - 1


def _mask(path: str) -> None:
    """runc maskPath: /dev/null over a file, an empty read-only tmpfs over a
    directory; a path this kernel does not have is skipped."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    if stat.S_ISDIR(st.st_mode):
        libc.mount("tmpfs", path, "tmpfs", libc.MS_RDONLY)
    else:
        libc.mount("/dev/null", path, None, libc.MS_BIND)


def _readonly(path: str) -> None:
    """runc readonlyPath: bind the path over itself, then remount the bind
    read-only, keeping its nosuid/nodev/noexec."""
    try:
        libc.mount(path, path, None, libc.MS_BIND | libc.MS_REC)
    except FileNotFoundError:
        return
    _remount_ro(path)


def _remount_ro(path: str) -> None:
    keep = os.statvfs(path).f_flag & (libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC)
    libc.mount(None, path, None, libc.MS_BIND | libc.MS_REMOUNT | libc.MS_RDONLY | keep)
