"""Two minipods with the SAME paths never touch each other's pods (issue 13, item 3).

Two instances whose MINIPOD_ROOT is the same string, each in a mount
namespace of its own (`unshare --mount --propagation private` with a tmpfs
over the root), on one machine: one /proc, one cgroup tree, one /run/netns,
one nftables table. That is a second checkout, a CI job or a test suite run
twice at once. Each runs a pod of the same name with a hostPort; each agent
is killed and started again (its start-up gc runs) and `minipod gc` is run;
the other's container must still run untouched: the same pid and start
time, Running, the same restart count, its hostPort rule still there.

Before each state root had an identity, the second agent's gc recognised
the first one's container by its overlay path (identical) and killed it, and
removed its hostPort rule and cgroup.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from podhelpers import BUSYBOX_IMAGE, pod_manifest

pytestmark = pytest.mark.integration


class Instance:
    """One minipod in its own mount namespace, held by a `sleep` process."""

    def __init__(self, root: Path, tag: str, subnet: str):
        self.root, self.tag = root, tag
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             f'mount -t tmpfs minipod-{tag} "$0" && echo ready && exec sleep infinity',
             str(root)], stdout=subprocess.PIPE, text=True)
        assert self.holder.stdout.readline().strip() == "ready"
        self.env = dict(os.environ, MINIPOD_ROOT=str(root), MINIPOD_AGENT_IDLE="600",
                        MINIPOD_BACKOFF_BASE="1", MINIPOD_BRIDGE=f"mptwin{tag}",
                        MINIPOD_SUBNET=subnet)

    def __call__(self, *args, check: bool = True, timeout: float = 60):
        proc = subprocess.run(["nsenter", f"--mount=/proc/{self.holder.pid}/ns/mnt", "--",
                               sys.executable, "-m", "minipod", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"[{self.tag}] minipod {' '.join(args)} exited "
                                 f"{proc.returncode}:\n{proc.stdout}{proc.stderr}")
        return proc

    def read(self, rel: str) -> str:
        return subprocess.run(["nsenter", f"--mount=/proc/{self.holder.pid}/ns/mnt", "--",
                               "cat", str(self.root / rel)], capture_output=True, text=True,
                              check=True).stdout

    def agent_pid(self) -> int | None:
        proc = self("agent", "status", check=False)
        return int(proc.stdout.split("pid ")[1].split(",")[0]) if proc.returncode == 0 else None

    def container(self, pod: str) -> dict:
        """What a user checks of the pod's container: pid + start, state, restarts."""
        record = json.loads(self.read(f"run/pods/{pod}/pod.json"))
        cs = record["containers"][0]
        status = json.loads(self("get", "pod", pod, "-o", "json").stdout)["status"]
        return {"uid": record["uid"], "pid": cs["pid"], "pidStart": cs["pidStart"],
                "phase": status["phase"],
                "restartCount": status["containerStatuses"][0]["restartCount"]}

    def close(self) -> None:
        pid = self.agent_pid()
        if pid:
            self("agent", "stop", check=False)
            _wait_gone(pid)
        self.holder.kill()       # the sleep this test started; the tmpfs goes with it
        self.holder.wait()


def _wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)


def _start_time(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


@pytest.fixture
def twins(minipod):
    """Two instances with one MINIPOD_ROOT path, each with the test image."""
    from imagebuild import build_busybox_rootfs
    work = Path(tempfile.mkdtemp(prefix="minipod-twins-"))
    rootfs = build_busybox_rootfs(work / "rootfs")
    root = work / "root"
    root.mkdir()
    made = []
    try:
        for tag, subnet in (("a", "10.91.0.0/24"), ("b", "10.92.0.0/24")):
            made.append(Instance(root, tag, subnet))
            made[-1]("image", "import", str(rootfs), BUSYBOX_IMAGE, "--cmd", '["sh"]')
        yield made
    finally:
        for inst in made:
            names = inst("get", "pods", "-o", "name", check=False).stdout.split()
            for name in names:
                inst("delete", name, "--grace-period", "0", check=False)
            inst.close()
        shutil.rmtree(work, ignore_errors=True)


def _untouched(insts, before, by: str) -> None:
    from minipod.netns import hostport
    from minipod.netns.bridge import host_ifname
    for other in insts:
        c = before[other.tag]
        assert _start_time(c["pid"]) == c["pidStart"], (
            f"the container of instance {other.tag} was killed by {by}")
        now = other.container("web")
        assert (now["pid"], now["phase"], now["restartCount"]) == (
            c["pid"], "Running", c["restartCount"]), f"instance {other.tag} after {by}"
        assert any(c["uid"] in rule for rule in hostport.rules()), (
            f"the hostPort rule of instance {other.tag} is gone after {by}")
        assert host_ifname(c["uid"]) in {n for _, n in socket.if_nameindex()}, (
            f"the veth of instance {other.tag} is gone after {by}")
        parent = f"minipod-{other.read('run/identity').split()[0]}"
        assert glob.glob(f"/sys/fs/cgroup/{parent}/pod{c['uid']}") + glob.glob(
            f"/sys/fs/cgroup/*/{parent}/pod{c['uid']}"), (
            f"the cgroup of instance {other.tag} is gone after {by}")


def test_two_instances_with_the_same_paths_never_touch_each_others_pods(twins, tmp_path):
    a, b = twins
    before = {}
    for inst, port in ((a, 18091), (b, 18092)):
        manifest = tmp_path / f"web-{inst.tag}.yaml"
        manifest.write_text(pod_manifest("web", "exec sleep 100000") +
                            f"    ports:\n    - containerPort: 80\n      hostPort: {port}\n")
        inst("run", str(manifest))     # b's run starts b's agent: its start-up gc runs
        before[inst.tag] = inst.container("web")
        assert before[inst.tag]["pid"] is not None
        _untouched([x for x in (a, b) if x.tag in before], before,
                   f"the start of instance {inst.tag}'s agent")
    assert before["a"]["pid"] != before["b"]["pid"]
    for inst in (a, b):
        # the agent dies and comes back (its start-up gc runs), then `minipod gc`
        os.kill(inst.agent_pid(), signal.SIGKILL)   # the agent this test started
        inst("agent", "start")
        inst("gc")
        _untouched((a, b), before, f"instance {inst.tag}'s agent restart and gc")
