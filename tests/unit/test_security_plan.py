"""The security plan (pure): which capabilities, which system calls, which
paths, which user. Nothing here needs root; the filter is compiled with
libseccomp but never loaded."""
import errno

import pytest

from minipod.linux import seccomp
from minipod.runtime import seccomp_profile
from minipod.runtime import security as sec
from minipod.runtime.process import ProcessError
from minipod.runtime.security import SecuritySpec as Spec

PASSWD = "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
GROUP = "root:x:0:\napp:x:1000:\nstaff:x:50:app,other\naudio:x:29:other\n"


def plan(**kw):
    image_user = kw.pop("image_user", None)
    return sec.plan_security(Spec(**kw), image_user, PASSWD, GROUP)


def denied(p):
    return {r.name for r in p.seccomp if r.arg is None}


# ---- capabilities -------------------------------------------------------------

def test_default_capabilities_are_containerds_fourteen():
    p = plan()
    assert sorted(p.capabilities) == sorted(sec.DEFAULT_CAPABILITIES)
    assert len(p.capabilities) == 14
    # the well-known mask Docker containers show as CapEff
    assert sec.capability_mask(p.capabilities) == 0xA80425FB


@pytest.mark.parametrize("add, drop, expect_in, expect_out", [
    (["NET_ADMIN"], None, ["CAP_NET_ADMIN", "CAP_CHOWN"], []),
    (None, ["NET_RAW", "MKNOD"], ["CAP_CHOWN"], ["CAP_NET_RAW", "CAP_MKNOD"]),
    (["cap_sys_time"], None, ["CAP_SYS_TIME"], []),
    (["NET_BIND_SERVICE"], ["ALL"], ["CAP_NET_BIND_SERVICE"], ["CAP_CHOWN", "CAP_KILL"]),
    (["ALL"], ["SYS_ADMIN"], ["CAP_SYS_MODULE", "CAP_BPF"], ["CAP_SYS_ADMIN"]),
])
def test_add_and_drop_like_containerd(add, drop, expect_in, expect_out):
    caps = plan(capabilities_add=add, capabilities_drop=drop).capabilities
    assert set(expect_in) <= set(caps) and not set(expect_out) & set(caps)


def test_drop_all_leaves_nothing():
    assert plan(capabilities_drop=["ALL"]).capabilities == []


def test_unknown_capability_is_refused_with_the_field():
    with pytest.raises(sec.SecurityError, match=r'unknown capability "NET_ADMINN".*add'):
        plan(capabilities_add=["NET_ADMINN"])


def test_privileged_keeps_everything_and_lifts_the_rest():
    p = plan(privileged=True)
    assert p.capabilities == sec.CAPABILITIES
    assert p.seccomp is None and p.masked_paths == [] and p.readonly_paths == []
    assert not p.no_new_privs


# ---- no_new_privs ---------------------------------------------------------------

@pytest.mark.parametrize("kw, nnp", [
    ({}, True),
    ({"allow_privilege_escalation": False}, True),
    ({"allow_privilege_escalation": True}, False),
    ({"capabilities_add": ["SYS_ADMIN"]}, False),   # Kubernetes: SYS_ADMIN implies it
    ({"capabilities_add": ["SYS_ADMIN"], "allow_privilege_escalation": False}, True),
    ({"privileged": True, "allow_privilege_escalation": False}, False),
])
def test_no_new_privs(kw, nnp):
    assert plan(**kw).no_new_privs is nnp


# ---- seccomp ----------------------------------------------------------------------

def test_default_filter_blocks_the_escape_hatches():
    names = denied(plan())
    for name in ("mount", "umount2", "unshare", "setns", "keyctl", "add_key", "request_key",
                 "kexec_load", "kexec_file_load", "init_module", "finit_module",
                 "delete_module", "reboot", "swapon", "swapoff", "pivot_root", "bpf",
                 "perf_event_open", "open_by_handle_at", "sethostname", "userfaultfd"):
        assert name in names, name
    assert "ptrace" not in names, "ptrace is allowed on kernels >= 4.8, as in moby"
    assert "chroot" not in names, "CAP_SYS_CHROOT is a default capability"


def test_clone_with_namespace_flags_and_clone3():
    rules = plan().seccomp
    clone = [r for r in rules if r.name == "clone"]
    assert sorted(r.value for r in clone) == sorted(seccomp_profile.CLONE_NAMESPACE_FLAGS)
    assert all(r.mask == r.value and r.arg == 0 for r in clone)
    assert sum(r.value for r in clone) == 0x7E020000, "moby's mask"
    clone3 = next(r for r in rules if r.name == "clone3")
    assert clone3.errno == errno.ENOSYS, "so the C library falls back to clone(2)"
    vsock = next(r for r in rules if r.name == "socket")
    assert (vsock.arg, vsock.value, vsock.mask) == (0, 40, 0)


def test_capabilities_lift_their_syscalls_as_in_moby():
    names = denied(plan(capabilities_add=["SYS_MODULE", "SYS_TIME"]))
    assert not {"init_module", "finit_module", "delete_module", "settimeofday",
                "clock_settime"} & names
    assert "mount" in names and "keyctl" in names
    admin = plan(capabilities_add=["SYS_ADMIN"])
    assert "mount" not in denied(admin) and "keyctl" in denied(admin)
    assert not [r for r in admin.seccomp if r.name in ("clone", "clone3")]
    assert "syslog" not in denied(plan(capabilities_add=["SYSLOG"]))


def test_unconfined_has_no_filter():
    assert plan(seccomp_profile="Unconfined").seccomp is None


def test_localhost_profile_is_refused():
    with pytest.raises(sec.SecurityError, match="Localhost"):
        plan(seccomp_profile="Localhost")


def test_every_rule_names_a_syscall_libseccomp_knows():
    lib = seccomp._seccomp_lib()
    unknown = [r.name for r in plan().seccomp
               if lib.seccomp_syscall_resolve_name(r.name.encode()) == -1]
    assert unknown == []


def test_filter_compiles_to_bpf_and_reads_as_pseudo_code():
    p = sec.prepare(plan())
    assert p.seccomp_bpf and len(p.seccomp_bpf) % 8 == 0
    text = sec.seccomp_text(p)
    assert 'filter for syscall "keyctl"' in text and "action ERRNO(1)" in text
    assert "action ERRNO(38)" in text     # clone3
    assert text.rstrip().endswith("#")


def test_prepare_without_filter_compiles_nothing():
    assert sec.prepare(plan(privileged=True)).seccomp_bpf is None


# ---- masked and read-only paths, read-only root --------------------------------------

def test_masked_and_readonly_paths():
    p = plan()
    assert {"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
            "/sys/firmware", "/proc/scsi", "/proc/acpi"} <= set(p.masked_paths)
    assert p.readonly_paths == ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                "/proc/sysrq-trigger"]
    assert not p.readonly_root and plan(read_only_root_filesystem=True).readonly_root


# ---- users --------------------------------------------------------------------------

@pytest.mark.parametrize("image_user, kw, uid, gid", [
    (None, {}, 0, 0),
    ("app", {}, 1000, 1000),
    ("1000:50", {}, 1000, 50),
    ("app", {"run_as_user": 2000}, 2000, 0),          # not in passwd: gid 0
    ("1000:50", {"run_as_user": 1000}, 1000, 1000),   # the image's group is replaced
    ("app", {"run_as_group": 3000}, 1000, 3000),
    (None, {"run_as_user": 5, "run_as_group": 6}, 5, 6),
])
def test_user_resolution(image_user, kw, uid, gid):
    p = plan(image_user=image_user, **kw)
    assert (p.uid, p.gid) == (uid, gid)


def test_supplementary_groups():
    p = plan(image_user="app", supplemental_groups=[400, 1000], fs_group=2000)
    assert p.groups == [1000, 50, 400, 2000]   # primary, /etc/group, supplemental, fsGroup
    assert plan().groups == [0]


def test_unknown_image_user_is_an_error():
    with pytest.raises(ProcessError, match="nobody"):
        plan(image_user="nobody")


# ---- runAsNonRoot, with the kubelet's messages ----------------------------------------

WHERE = 'pod: "web_default(1234)", container: main'


@pytest.mark.parametrize("image_user, kw, message", [
    (None, {}, "container has runAsNonRoot and image will run as root"),
    ("0", {}, "container has runAsNonRoot and image will run as root"),
    ("root", {}, "container has runAsNonRoot and image has non-numeric user (root), "
                 "cannot verify user is non-root"),
    ("1000", {"run_as_user": 0}, "container's runAsUser breaks non-root policy"),
])
def test_run_as_non_root_refusals(image_user, kw, message):
    with pytest.raises(sec.SecurityError) as e:
        sec.plan_security(Spec(run_as_non_root=True, **kw), image_user, PASSWD, GROUP, WHERE)
    assert str(e.value) == f"{message} ({WHERE})"


@pytest.mark.parametrize("image_user, kw", [
    ("1000", {}), ("1000:0", {}), (None, {"run_as_user": 1000}), ("app", {"run_as_user": 7}),
])
def test_run_as_non_root_allowed(image_user, kw):
    p = sec.plan_security(Spec(run_as_non_root=True, **kw), image_user, PASSWD, GROUP)
    assert p.uid != 0


# ---- merge ------------------------------------------------------------------------

def test_container_fields_win_over_the_pods():
    pod = Spec(run_as_user=1000, run_as_non_root=True, fs_group=5, seccomp_profile="Unconfined")
    ctr = Spec(run_as_user=2000, seccomp_profile="RuntimeDefault", privileged=False)
    m = sec.merge(pod, ctr)
    assert (m.run_as_user, m.run_as_non_root, m.fs_group, m.seccomp_profile, m.privileged) == \
        (2000, True, 5, "RuntimeDefault", False)
    assert sec.merge(None, None) == Spec()


def test_a_manifest_style_security_context_works_as_is():
    from types import SimpleNamespace
    manifest_sc = SimpleNamespace(
        run_as_user=None, run_as_group=None, run_as_non_root=None, fs_group=None,
        supplemental_groups=[], privileged=False, allow_privilege_escalation=None,
        read_only_root_filesystem=False, capabilities_add=[], capabilities_drop=[],
        seccomp_profile="RuntimeDefault")
    assert sec.plan_security(manifest_sc) == plan()
