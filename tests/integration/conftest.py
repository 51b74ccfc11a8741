"""The integration suite: real namespaces, bridges, overlays, as root.

Runs inside the private network namespace tests/run makes. Every test
runs minipod through its real CLI against one MINIPOD_ROOT of the session;
at the end the session checks that nothing was left behind: no process,
mount, link, pinned namespace, lease or state directory.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest


def is_root() -> bool:
    return os.geteuid() == 0


pytestmark = pytest.mark.integration

from podhelpers import BUSYBOX_IMAGE


def pytest_collection_modifyitems(config, items):
    if is_root():
        return
    skip = pytest.mark.skip(reason="integration tests need root (namespaces, mounts, links)")
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(skip)


def _processes_of(root: Path) -> list[int]:
    """Processes of this suite: the agent (MINIPOD_ROOT in its environment),
    containers and pause processes (in a cgroup under the root's identity's
    parent, /minipod-ID/, or with a mount table naming the root).
    Other users of the machine are not counted."""
    from minipod.runtime.paths import Paths
    found = []
    marker = f"MINIPOD_ROOT={root}".encode()
    parent = f"/{Paths(str(root)).cgroup_parent}/"
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                if parent in f.read():
                    found.append(int(pid))
                    continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    found.append(int(pid))
                    continue
            with open(f"/proc/{pid}/mountinfo") as f:
                if str(root) in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


class Minipod:
    """Runs the real CLI with the session's MINIPOD_ROOT."""

    def __init__(self, root: Path):
        self.root = root
        self.env = dict(os.environ, MINIPOD_ROOT=str(root), MINIPOD_AGENT_IDLE="600",
                        MINIPOD_BACKOFF_BASE="1",
                        MINIPOD_LOG_MAX_SIZE=str(64 * 1024), MINIPOD_LOG_MAX_FILES="3")

    def __call__(self, *args, check: bool = True, input: str | None = None,
                 timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "minipod", *args], env=self.env,
                              capture_output=True, text=True, input=input, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"minipod {' '.join(args)} exited {proc.returncode}:\n"
                                 f"{proc.stdout}{proc.stderr}")
        return proc

    def pod(self, name: str) -> dict:
        return json.loads(self("get", "pod", name, "-o", "json").stdout)

    def run_manifest(self, text: str, tmp_path: Path, check: bool = True):
        path = tmp_path / "pod.yaml"
        path.write_text(text)
        return self("run", str(path), check=check)

    def wait_for(self, name: str, predicate, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            pod = self.pod(name)
            if predicate(pod):
                return pod
            if time.monotonic() > deadline:
                raise AssertionError(f"pod {name} did not reach the state in {timeout}s:\n"
                                     f"{json.dumps(pod['status'], indent=1)}")
            time.sleep(0.1)

    def agent_pid(self) -> int | None:
        proc = self("agent", "status", check=False)
        if proc.returncode != 0:
            return None
        return int(proc.stdout.split("pid ")[1].split(",")[0])


@pytest.fixture(scope="session")
def minipod():
    if not is_root():
        pytest.skip("needs root")
    root = Path(tempfile.mkdtemp(prefix="minipod-it-"))
    mp = Minipod(root)
    from imagebuild import build_busybox_rootfs
    rootfs = build_busybox_rootfs(root / "busybox-rootfs")
    mp("image", "import", str(rootfs), BUSYBOX_IMAGE, "--cmd", '["sh"]')
    shutil.rmtree(rootfs)
    yield mp
    # Remove what tests left, then prove nothing leaked.
    names = mp("get", "pods", "-o", "name").stdout.split()
    for name in names:
        mp("delete", name, "--grace-period", "0", check=False)
    # namespaces tests made (and, with them, their pods)
    builtin = {"namespace/default", "namespace/kube-node-lease", "namespace/kube-public",
               "namespace/kube-system"}
    made = [n for n in mp("get", "ns", "-o", "name").stdout.split() if n not in builtin]
    names += mp("get", "pods", "-A", "-o", "name").stdout.split() + made
    for ns in made:
        mp("delete", ns, check=False, timeout=120)
    pid = mp.agent_pid()
    if pid:
        mp("agent", "stop", check=False)
        _wait_gone(pid)
    leaks = find_leaks(root)
    shutil.rmtree(root, ignore_errors=True)
    assert not names, f"tests left pods behind: {names}"
    assert not leaks, "leaked: " + "; ".join(leaks)


def _wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}"):
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)  # the agent this session started, by its pid


def find_leaks(root: Path) -> list[str]:
    leaks = []
    mounts = [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if str(root) in line]
    if mounts:
        leaks.append(f"{len(mounts)} mounts under {root}")
    from minipod.runtime.paths import Paths, read_identity
    # the names below come from the root's identity: it must be the agent's
    if read_identity(Paths(str(root)).identity_file) is None:
        leaks.append(f"no identity in {root}/run: cannot tell its cgroups and netns")
    prefix = Paths(str(root)).netns_prefix
    pinned = [n for n in os.listdir("/run/netns") if n.startswith(prefix)] \
        if os.path.isdir("/run/netns") else []
    if pinned:
        leaks.append(f"pinned netns {pinned}")
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True,
                           text=True).stdout.splitlines()
    links = [line.split(":")[1].strip().split("@")[0] for line in links]
    extra = [name for name in links if name not in ("lo", "minipod0")]
    if extra:
        leaks.append(f"links {extra}")
    stray = _processes_of(root)
    if stray:
        leaks.append(f"processes still using {root}: {stray}")
    import glob
    parent = Paths(str(root)).cgroup_parent
    cgs = glob.glob(f"/sys/fs/cgroup/*/{parent}/pod*") + glob.glob(f"/sys/fs/cgroup/{parent}/pod*")
    if cgs:
        leaks.append(f"cgroups {cgs}")
    from minipod.netns import hostport
    try:
        rules = hostport.rules()
    except hostport.HostPortError as e:
        rules = [f"cannot list: {e}"]
    if rules:
        leaks.append(f"hostPort rules {rules}")
    from minipod.netns import antispoof
    try:
        filters = antispoof.filters(Paths(str(root)).identity.tag)
    except antispoof.FilterError as e:
        filters = [f"cannot list: {e}"]
    if filters:
        leaks.append(f"anti-spoofing filters {filters}")
    for sub in ("run/pods", "lib/containers", "log/pods", "run/ipam", "run/hostports"):
        d = root / sub
        left = [p.name for p in d.iterdir() if not p.name.startswith(".")
                and p.name != "lock"] if d.is_dir() else []
        if left:
            leaks.append(f"{sub}: {left}")
    return leaks
