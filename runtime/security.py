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
runtime/seccomp_profile.py for what that changes.

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

from minipod.linux import capabilities, mount, seccomp
from minipod.linux.seccomp import SyscallRule
from minipod.runtime import process
from minipod.runtime.seccomp_profile import seccomp_rules

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


# ---- compiled in the agent, before the fork ----------------------------------


def prepare(plan: SecurityPlan) -> SecurityPlan:
    """Agent side, before the fork: bind the C functions apply() uses and
    compile the seccomp rules into a BPF program (libseccomp's
    seccomp_export_bpf) in plan.seccomp_bpf. After pivot_root neither
    libseccomp nor cffi's C parser is in sight any more."""
    global _prepared
    capabilities.load()
    _prepared = True
    if plan.seccomp is not None and plan.seccomp_bpf is None:
        key = tuple(plan.seccomp)
        bpf = _compiled.get(key)
        if bpf is None:
            bpf = _compiled[key] = seccomp.compile_bpf(plan.seccomp)
        plan.seccomp_bpf = bpf
    return plan


# The programs compiled so far, by their rules: a few (one per set of
# capabilities seen), each compiled once per agent, not once per container.
_compiled: dict[tuple[SyscallRule, ...], bytes] = {}
_prepared = False


def seccomp_text(plan: SecurityPlan) -> str:
    """The filter as libseccomp's pseudo-code, for reading (seccomp_export_pfc)."""
    return seccomp.pseudo_code(plan.seccomp or [])


# ---- apply (in the container's init, after pivot_root, before exec) -----------

def apply(plan: SecurityPlan) -> None:
    """Perform the plan on this process: the steps of the module docstring,
    in runc's order. Raises OSError naming the step and path."""
    if not _prepared or (plan.seccomp is not None and plan.seccomp_bpf is None):
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
        seccomp.load(plan.seccomp_bpf)
    # 4-5: the bounding set, then the user, keeping the permitted set across setuid
    want = capability_mask(plan.capabilities)
    have = capabilities.capget_permitted()
    if not plan.privileged and want & ~have:
        missing = [c for c in plan.capabilities if capability_mask([c]) & ~have]
        raise OSError(errno.EPERM, f"capabilities {missing} were asked for but the agent "
                      f"does not hold them")
    want &= have      # privileged: all the agent holds
    capabilities.drop_bounding(want, len(CAPABILITIES))
    capabilities.prctl(capabilities.PR_SET_KEEPCAPS, 1, "PR_SET_KEEPCAPS")
    try:
        os.setgroups(plan.groups)
    except OSError as e:
        raise OSError(e.errno, f"setgroups {plan.groups}: {e.strerror}") from None
    try:
        os.setresgid(plan.gid, plan.gid, plan.gid)
        os.setresuid(plan.uid, plan.uid, plan.uid)
    except OSError as e:
        raise OSError(e.errno, f"set user {plan.uid}:{plan.gid}: {e.strerror}") from None
    capabilities.prctl(capabilities.PR_SET_KEEPCAPS, 0, "PR_SET_KEEPCAPS")
    capabilities.capset(want)
    capabilities.clear_ambient()
    # 6-7
    if plan.no_new_privs:
        capabilities.prctl(capabilities.PR_SET_NO_NEW_PRIVS, 1, "PR_SET_NO_NEW_PRIVS")
    if plan.seccomp_bpf is not None and plan.no_new_privs:
        seccomp.load(plan.seccomp_bpf)   # last: as close to exec as it gets


def _mask(path: str) -> None:
    """runc maskPath: /dev/null over a file, an empty read-only tmpfs over a
    directory; a path this kernel does not have is skipped."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    if stat.S_ISDIR(st.st_mode):
        mount.mount("tmpfs", path, "tmpfs", mount.MS_RDONLY)
    else:
        mount.mount("/dev/null", path, None, mount.MS_BIND)


def _readonly(path: str) -> None:
    """runc readonlyPath: bind the path over itself, then remount the bind
    read-only, keeping its nosuid/nodev/noexec."""
    try:
        mount.mount(path, path, None, mount.MS_BIND | mount.MS_REC)
    except FileNotFoundError:
        return
    _remount_ro(path)


def _remount_ro(path: str) -> None:
    keep = os.statvfs(path).f_flag & (mount.MS_NOSUID | mount.MS_NODEV | mount.MS_NOEXEC)
    mount.mount(None, path, None, mount.MS_BIND | mount.MS_REMOUNT | mount.MS_RDONLY | keep)
