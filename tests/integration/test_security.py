"""Escape attempts from a confined container: each must fail, for real.

Each test starts a container the way runtime/container.py does (fork,
unshare mount/PID/UTS/IPC namespaces, fork again for PID 1, overlay root
over a busybox image, /proc /dev /sys, pivot_root), applies a security plan
and execs a busybox script that tries something it must not manage. A
control run with the protection lifted shows that it is the protection
that stops it, not something else on this machine.
"""
from __future__ import annotations

import os
import re
import select
import signal
import time
import traceback

import pytest

from minipod import cgroups
from minipod.linux import namespaces
from minipod.cgroups.v2 import V2Driver
from minipod.rootfs import mounts
from minipod.runtime import security
from minipod.runtime.security import SecuritySpec

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, mounts)")]

TIMEOUT = 20.0


@pytest.fixture(scope="module")
def busybox_root(tmp_path_factory):
    from imagebuild import build_busybox_rootfs
    return build_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


@pytest.fixture
def run(busybox_root, tmp_path):
    """run(script, **securityContext) -> (exit code, output) of `sh -c script`
    in a fresh container; `call=` runs a Python function in the container
    instead of exec (after the plan is applied) and prints its result;
    `cgroup=` is a list of cgroup.procs files to join first."""
    counter = iter(range(1000))

    def _run(script: str = "", call=None, cgroup: list[str] | None = None,
             image_user: str | None = None, **sec) -> tuple[int, str]:
        d = tmp_path / f"c{next(counter)}"
        for sub in ("upper", "work", "merged"):
            (d / sub).mkdir(parents=True)
        rootfs = mounts.plan([str(busybox_root)], str(d / "upper"), str(d / "work"),
                             str(d / "merged"), {})
        passwd = (busybox_root / "etc" / "passwd").read_text()
        group = (busybox_root / "etc" / "group").read_text()
        plan = security.prepare(security.plan_security(SecuritySpec(**sec), image_user,
                                                       passwd, group))
        return _start(rootfs, plan, script, call, cgroup or [])
    return _run


def _start(rootfs, plan, script, call, procs) -> tuple[int, str]:
    import prctl
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:   # [1]: the namespaces, then PID 1 below
        code = 125
        try:
            os.close(r)
            namespaces.unshare(namespaces.CLONE_NEWNS | namespaces.CLONE_NEWPID | namespaces.CLONE_NEWUTS
                         | namespaces.CLONE_NEWIPC)
            init = os.fork()
            if init == 0:   # [2]: the container's PID 1
                try:
                    prctl.set_pdeathsig(signal.SIGKILL)
                    cgroups.join(procs)
                    os.dup2(w, 1)
                    os.dup2(w, 2)
                    mounts.apply(rootfs)
                    security.apply(plan)
                    if call is not None:
                        os.write(1, f"{call()}\n".encode())
                        os._exit(0)
                    os.execve("/bin/sh", ["sh", "-c", script], {"PATH": "/bin"})
                except BaseException:
                    os.write(w, traceback.format_exc().encode())
                os._exit(126)
            _, status = os.waitpid(init, 0)
            code = os.waitstatus_to_exitcode(status)
            code = code if code >= 0 else 128 - code
        except BaseException:
            os.write(w, traceback.format_exc().encode())
        os._exit(code)
    os.close(w)
    out, deadline = b"", time.monotonic() + TIMEOUT
    try:
        while True:
            ready, _, _ = select.select([r], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                os.kill(pid, signal.SIGKILL)   # its child dies with it (pdeathsig)
                raise AssertionError(f"container did not finish in {TIMEOUT}s: {out!r}")
            chunk = os.read(r, 65536)
            if not chunk:
                break
            out += chunk
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def status_fields(text: str) -> dict[str, str]:
    return dict(re.findall(r"^(\w+):\s+(\S+)", text, re.M))


DEFAULT_MASK = security.capability_mask(security.DEFAULT_CAPABILITIES)


# ---- what the container is ------------------------------------------------------

def test_capabilities_are_containerds_default_set(run):
    code, out = run("cat /proc/self/status")
    f = status_fields(out)
    assert code == 0, out
    for s in ("CapBnd", "CapEff", "CapPrm"):
        assert int(f[s], 16) == DEFAULT_MASK, (s, f[s])
    assert int(f["CapInh"], 16) == 0 and int(f["CapAmb"], 16) == 0


def test_no_new_privs_and_seccomp_filter_are_on(run):
    f = status_fields(run("cat /proc/self/status")[1])
    assert f["NoNewPrivs"] == "1" and f["Seccomp"] == "2"


def test_added_and_dropped_capabilities(run):
    f = status_fields(run("cat /proc/self/status", capabilities_add=["NET_ADMIN"],
                          capabilities_drop=["MKNOD", "NET_RAW"])[1])
    want = security.capability_mask(security.capability_set(["NET_ADMIN"], ["MKNOD", "NET_RAW"]))
    assert int(f["CapBnd"], 16) == int(f["CapEff"], 16) == want


def test_run_as_user_has_no_capabilities_left(run):
    code, out = run("id; cat /proc/self/status", run_as_user=1000, run_as_group=1000,
                    supplemental_groups=[4000], fs_group=5000)
    assert "uid=1000 gid=1000 groups=1000,4000,5000" in out, out
    f = status_fields(out)
    assert int(f["CapEff"], 16) == 0 and int(f["CapPrm"], 16) == 0
    assert int(f["CapBnd"], 16) == DEFAULT_MASK


def test_privileged_keeps_the_agents_capabilities_and_no_filter(run):
    f = status_fields(run("cat /proc/self/status", privileged=True)[1])
    mine = status_fields(open("/proc/self/status").read())
    assert f["CapBnd"] == mine["CapBnd"] and f["CapEff"] == mine["CapEff"]
    assert f["Seccomp"] == "0" and f["NoNewPrivs"] == "0"


# ---- escape attempts --------------------------------------------------------------

def test_mount_inside_container_fails(run):
    code, out = run("mount -t tmpfs none /mnt; echo rc=$?; grep -c ' /mnt ' /proc/mounts")
    assert "rc=0" not in out and out.strip().endswith("0"), out


def test_mount_works_when_privileged(run):
    code, out = run("mkdir -p /mnt && mount -t tmpfs none /mnt && echo mounted", privileged=True)
    assert "mounted" in out, out


def test_write_sysrq_trigger_fails(run):
    if not os.path.exists("/proc/sysrq-trigger"):
        pytest.skip("this kernel has no /proc/sysrq-trigger (built without CONFIG_MAGIC_SYSRQ)")
    # "h" only prints help to the kernel log, should the protection ever fail
    code, out = run("echo h > /proc/sysrq-trigger; echo rc=$?")
    assert "Read-only file system" in out and "rc=1" in out, out


def test_readonly_proc_paths_are_read_only_mounts(run):
    present = [p for p in security.READONLY_PATHS if os.path.exists(p)]
    code, out = run("cat /proc/self/mountinfo")
    ro = {f[4] for f in (line.split() for line in out.splitlines())
          if f[5].split(",")[0] == "ro"}
    assert set(present) <= ro, (present, out)


def test_write_proc_sys_fails(run):
    code, out = run("echo evil > /proc/sys/kernel/hostname; echo rc=$?; hostname")
    assert "Read-only file system" in out and "evil" not in out.splitlines()[-1], out


def test_load_module_fails_with_eperm(run):
    # an existing file, so insmod reaches finit_module(2): EPERM, not ENOENT
    code, out = run("insmod /etc/passwd; echo rc=$?")
    assert "Operation not permitted" in out and "rc=1" in out, out


def test_unshare_user_namespace_fails(run):
    code, out = run("unshare -U true; echo rc=$?")
    assert "Operation not permitted" in out and "rc=1" in out, out


def test_unshare_user_namespace_works_unconfined(run):
    if int(open("/proc/sys/user/max_user_namespaces").read()) == 0:
        pytest.skip("user namespaces are disabled on this host (max_user_namespaces=0)")
    code, out = run("unshare -U true; echo rc=$?", seccomp_profile="Unconfined")
    assert "rc=0" in out, out


def _keyctl() -> str:
    # keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0): needs no capability
    from minipod.linux.clib import ffi, lib
    rc = lib.syscall(250, ffi.cast("long", 0), ffi.cast("long", -3), ffi.cast("long", 0))
    return f"keyctl rc={rc} errno={ffi.errno if rc == -1 else 0}"


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="syscall number is x86_64's")
def test_keyctl_fails(run):
    code, out = run(call=_keyctl)
    assert "keyctl rc=-1 errno=1" in out, out
    code, out = run(call=_keyctl, seccomp_profile="Unconfined")
    assert "errno=1" not in out, out


def test_change_hostname_fails(run):
    code, out = run("hostname evil; echo rc=$?; hostname")
    assert "rc=1" in out and out.splitlines()[-1] != "evil", out


def test_read_masked_kernel_files_sees_nothing(run):
    files = [p for p in security.MASKED_PATHS if os.path.isfile(p) and open(p, "rb").read(1)]
    dirs = [p for p in security.MASKED_PATHS if os.path.isdir(p) and os.listdir(p)]
    assert files and dirs, "nothing on this host to mask: the test proves nothing"
    script = "; ".join([f"wc -c < {p}" for p in files] + [f"ls -A {p} | wc -l" for p in dirs])
    code, out = run(script)
    assert out.split() == ["0"] * (len(files) + len(dirs)), (files, dirs, out)
    code, out = run(script, privileged=True)
    assert "0" != out.split()[0], "privileged containers see them (as in Kubernetes)"


def test_readonly_root_filesystem(run):
    code, out = run("touch /evil; echo rc=$?; touch /dev/shm/ok && echo shm-ok",
                    read_only_root_filesystem=True)
    assert "Read-only file system" in out and "rc=1" in out and "shm-ok" in out, out
    code, out = run("touch /fine && echo root-ok")
    assert "root-ok" in out


def _cgroup2_mount() -> str | None:
    for line in open("/proc/self/mountinfo"):
        fields = line.split()
        if fields[fields.index("-") + 1] == "cgroup2":
            return fields[4]
    return None


@pytest.mark.parametrize("version", [1, 2])
def test_mknod_host_block_device_cannot_be_opened(run, version):
    """v1: devices.deny/allow; v2: the eBPF program (on a hybrid host, on
    the controller-less cgroup2 hierarchy: device programs need none)."""
    parent = f"minipod-test-{os.getpid()}-{time.monotonic_ns()}"
    if version == 1:
        driver = cgroups.detect(parent=parent)
        if driver.version != 1:
            pytest.skip("this host has no cgroup v1 hierarchies")
    else:
        mount = _cgroup2_mount()
        if mount is None:
            pytest.skip("no cgroup2 hierarchy is mounted on this host")
        driver = V2Driver(mount, parent)
    pod = driver.create_pod("sec")
    try:
        cg = driver.create_container(pod, "c", cgroups.Limits())
        # the host's /dev/loop0: a block device root on the host may open
        script = "mknod /dev/hostloop b 7 0; head -c 1 /dev/hostloop >/dev/null; echo rc=$?"
        code, out = run(script, cgroup=driver.join_paths(cg))
        assert "Operation not permitted" in out and "rc=1" in out, out
        # control: without the device rules, the default CAP_MKNOD is enough to
        # open a host device; the cgroup is what stops it
        free = driver.create_container(pod, "free", cgroups.Limits(), privileged=True)
        code, out = run(script, cgroup=driver.join_paths(free))
        assert "rc=0" in out, out
    finally:
        driver.remove(pod)
        driver.remove(driver.parent)


def test_run_as_non_root_refuses_a_root_image(run):
    with pytest.raises(security.SecurityError,
                       match="container has runAsNonRoot and image will run as root"):
        run("true", run_as_non_root=True)
