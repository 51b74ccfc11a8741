"""The agent's pod lifecycle, against a fake node and a clock driven by hand.

The agent's managers are real (runtime/agent/*.py): create, sync, exits,
restarts with back-off, sidecars, delete with grace, adoption, pulls. What
is fake is the node (runtime/agent/node.py, the one object through which
they reach the kernel): FakeNode records every call, hands out pids,
and lets a test end a process with an exit code. The state root is a tmp
dir, so no root and no kernel object is needed; the records, logs and
output files are real files there.
"""
from __future__ import annotations

import itertools
import os
import signal
import types

import pytest

from minipod.netns import bridge
from minipod.netns.ipam import IPAM
from minipod.rootfs.store import ImageNotFound
from minipod.runtime import state
from minipod.runtime.agent.agent import Agent
from minipod.runtime.agent.backoff import Backoff
from minipod.runtime.agent.loop import Loop, find
from minipod.runtime.api import manifest
from minipod.runtime.owners import dirs as owner_dirs
from minipod.runtime.paths import Paths


class Clock:
    """Monotonic and wall time that move only when the test says so."""

    def __init__(self):
        self.mono, self.wall = 1000.0, 1_800_000_000.0


class Recorder:
    """A node library module (sandbox, hostport, an owner ...): each call is
    recorded as ("module.function", args) and answers node.answers.get(that
    name), or, given `real`, is also made on the real module (the pod's
    directories: plain files under the test's tmp dir)."""

    def __init__(self, node: "FakeNode", module: str, real=None):
        self._node, self._module, self._real = node, module, real

    def __getattr__(self, fn):
        name = f"{self._module}.{fn}"

        def call(*args, **kwargs):
            self._node.calls.append((name, args))
            if self._real is not None:
                return getattr(self._real, fn)(*args, **kwargs)
            return self._node.answers.get(name)
        return call


class FakeCgroups:
    parent = "minipod-test"

    def __init__(self, node):
        self.node = node

    def pod_cgroup(self, uid):
        return f"{self.parent}/pod{uid}"

    def create_pod(self, uid, limits):
        self.node.calls.append(("cgroups.create_pod", (uid,)))
        return self.pod_cgroup(uid)

    def create_container(self, pod_cg, name, limits, privileged):
        return f"{pod_cg}/{name}"

    def join_paths(self, cg):
        return []

    def oom_killed(self, cg):
        return 0

    def remove(self, path):
        self.node.calls.append(("cgroups.remove", (path,)))


class FakeImages:
    """An image store that has the refs in `present` (an empty layer each)."""

    def __init__(self, tmp):
        self.present = {"busybox:1.36"}
        self.layer = tmp / "layer"
        self.layer.mkdir()

    def get(self, ref):
        if ref not in self.present:
            raise ImageNotFound(ref)
        return types.SimpleNamespace(layer_dirs=[self.layer], config={}, digest="sha256:" + "0" * 64)


class FakeNode:
    """The node of runtime/agent/node.py, with processes made up."""

    def __init__(self, paths: Paths, tmp):
        self.calls: list[tuple[str, tuple]] = []
        self.answers = {"volumes.prepare": {}}
        self.net = bridge.NetworkConfig(bridge="fake0", subnet="10.99.0.0/16")
        self.ipam = IPAM(paths.ipam, self.net.subnet)
        self.images = FakeImages(tmp)
        self.cgroups = FakeCgroups(self)
        self.sandbox, self.hostport = Recorder(self, "sandbox"), Recorder(self, "hostport")
        self.volumes = Recorder(self, "volumes")
        self.owners = types.SimpleNamespace(   # runtime/owners/, one per kind
            pins=Recorder(self, "pins"), network=Recorder(self, "network"),
            processes=Recorder(self, "processes"), dirs=Recorder(self, "dirs", real=owner_dirs))
        self.ipr = None
        self.running: dict[int, str] = {}       # pid -> "pod/container"
        self.exits: list[tuple[int, int]] = []  # exits of our children, not yet reaped
        self.pidfds: dict[int, int] = {}        # adopted pid -> write end of its "pidfd"
        self.fds: list[int] = []
        self._pids = itertools.count(4000)

    def attach(self, netns_path, ifname, ip):
        self.calls.append(("attach", (ifname, ip)))
        return types.SimpleNamespace(host_ifname=ifname, mac="02:00:00:00:00:01")

    def ensure_nat(self, required):
        pass

    def nat_in_place(self, required=False):
        pass

    def start_nat(self):
        pass

    def host_ip(self):
        return "192.0.2.1"

    def launch(self, spec):
        pid = next(self._pids)
        self.running[pid] = spec.name
        self.calls.append(("start", (spec.name,)))
        return types.SimpleNamespace(wait=lambda: pid)

    def kill(self, pid, sig):
        self.calls.append(("kill", (self.running.get(pid), sig)))
        if pid not in self.running:
            raise ProcessLookupError(pid)

    def alive(self, pid, start):
        return pid in self.running

    def start_time(self, pid):
        return 1

    def pidfd_open(self, pid):
        r, w = os.pipe()
        self.pidfds[pid] = w
        self.fds += [r, w]
        return r

    def exit(self, pid: int, code: int) -> None:
        """Process pid ends with code (negative: killed by that signal)."""
        del self.running[pid]
        if pid in self.pidfds:
            os.write(self.pidfds.pop(pid), b"x")    # readable, as a pidfd is
        else:
            self.exits.append((pid, code))

    def wait_any(self):
        return self.exits.pop(0) if self.exits else None

    def spawn_pull(self, ref):
        pid = next(self._pids)
        r, self.pull_w = os.pipe()        # the test writes the pull's stderr
        self.running[pid] = f"pull {ref}"
        self.calls.append(("pull", (ref,)))
        return pid, r

    def fork_check(self, handler, pod_ip, target, timeout):
        raise AssertionError("no probes in these tests")

    def fork_measure(self, checks):
        raise AssertionError("no storage limits in these tests")

    def started(self) -> list[str]:
        return [args[0] for name, args in self.calls if name == "start"]

    def kills(self) -> list[tuple[str, int]]:
        return [args for name, args in self.calls if name == "kill"]


@pytest.fixture
def world(tmp_path):
    """(paths, node, clock, make_agent): agents made here are closed at the end."""
    paths = Paths(str(tmp_path / "root"))
    node = FakeNode(paths, tmp_path)
    clock = Clock()
    agents = []

    def make_agent() -> Agent:
        loop = Loop(clock=lambda: clock.mono, wall=lambda: clock.wall)
        agent = Agent(paths, node=node, loop=loop, backoff=Backoff(10, 300))
        for d in (paths.run, paths.pods, paths.log):
            d.mkdir(parents=True, exist_ok=True)
        agent.start(gc=False)
        agents.append(agent)
        return agent

    yield paths, node, clock, make_agent
    for agent in agents:
        stop(agent)
    for fd in node.fds:
        try:
            os.close(fd)
        except OSError:
            pass


def stop(agent: Agent) -> None:
    """The agent ends (as serve() does when stopped): it stops reading output
    and closes its fds; its pods keep running."""
    for rc in list(agent.live.values()):
        agent.output.close(rc, drain=True, ended=False)
    agent.output.shutdown()
    agent.loop.sel.close()


def advance(agent: Agent, clock: Clock, seconds: float) -> None:
    """Time passes: the timers that fall due run."""
    clock.mono += seconds
    clock.wall += seconds
    agent.loop.run_timers()


def settle(agent: Agent) -> None:
    """The agent notices what happened: reaped exits, readable fds (pidfds)."""
    agent._reap()
    for key, _ in agent.loop.sel.select(0):
        key.data(key.fileobj)


def pod(name, containers=("app",), init=(), restart="Always", grace=30, image="busybox:1.36"):
    def c(n, **extra):
        return {"name": n, "image": image, "command": ["sleep", "1000"], **extra}
    spec = {"restartPolicy": restart, "terminationGracePeriodSeconds": grace,
            "automountServiceAccountToken": False,
            "containers": [c(n) for n in containers]}
    if init:
        spec["initContainers"] = [c(n, restartPolicy="Always") if sidecar else c(n)
                                  for n, sidecar in init]
    return manifest.load_object({"apiVersion": "v1", "kind": "Pod",
                                 "metadata": {"name": name}, "spec": spec}, "test.yaml")


def pid_of(agent, key, name):
    return find(agent.records[key], name).pid


def test_create_makes_the_sandbox_then_starts_every_container(world):
    paths, node, clock, make_agent = world
    agent = make_agent()
    record = agent.create_pod(pod("web", containers=("app", "helper")))
    names = [name for name, _ in node.calls]
    assert names.index("pins.create") < names.index("attach") \
        < names.index("network.add_filter") < names.index("cgroups.create_pod") \
        < names.index("start")
    assert node.started() == ["web/app", "web/helper"]
    assert record.sandbox_ready and record.pod_ip.startswith("10.99.")
    assert [cs.state for cs in record.containers] == ["running", "running"]
    saved = state.read(paths.pod_dir("web"))         # the record on disk says so too
    assert [cs["pid"] for cs in saved["containers"]] == sorted(node.running)


def test_an_exit_is_recorded_and_never_restarts_under_never(world):
    paths, node, clock, make_agent = world
    agent = make_agent()
    agent.create_pod(pod("job", containers=("a", "b"), restart="Never"))
    node.exit(pid_of(agent, "job", "a"), 3)
    node.exit(pid_of(agent, "job", "b"), -signal.SIGKILL)
    settle(agent)
    a, b = (find(agent.records["job"], n) for n in ("a", "b"))
    assert (a.state, a.exit_code, a.reason) == ("terminated", 3, "Error")
    assert (b.exit_code, b.signal) == (137, 9)
    advance(agent, clock, 600)
    assert node.started() == ["job/a", "job/b"]       # nothing started again
    assert agent.live == {}


def test_restart_back_off_is_at_once_then_10s_doubling(world):
    paths, node, clock, make_agent = world
    agent = make_agent()
    agent.create_pod(pod("crash"))

    def crash():
        node.exit(pid_of(agent, "crash", "app"), 1)
        settle(agent)
        return find(agent.records["crash"], "app")

    cs = crash()                         # the first exit: restarted at once
    assert node.started() == ["crash/app"] * 2 and cs.restart_count == 1
    for wait in (10, 20, 40):            # then CrashLoopBackOff, 10 s doubling
        cs = crash()
        assert cs.state == "waiting" and cs.reason == "CrashLoopBackOff"
        assert f"back-off {wait}s" in cs.message
        starts = len(node.started())
        advance(agent, clock, wait - 0.5)
        assert len(node.started()) == starts, f"restarted before its {wait}s back-off"
        advance(agent, clock, 1)
        assert len(node.started()) == starts + 1 and cs.state == "running"
    assert cs.restart_count == 4


def test_init_sidecar_starts_before_the_main_containers_and_stops_after(world):
    paths, node, clock, make_agent = world
    agent = make_agent()
    agent.create_pod(pod("side", containers=("app",), init=(("proxy", True), ("setup", False)),
                         restart="Never", grace=5))
    assert node.started() == ["side/proxy", "side/setup"]   # app waits for setup
    node.exit(pid_of(agent, "side", "setup"), 0)
    settle(agent)
    assert node.started() == ["side/proxy", "side/setup", "side/app"]
    assert node.kills() == []                                # proxy runs beside app
    proxy = pid_of(agent, "side", "proxy")
    node.exit(pid_of(agent, "side", "app"), 0)
    settle(agent)
    assert node.kills() == [("side/proxy", signal.SIGTERM)]  # after app, not before
    advance(agent, clock, 5.5)                                # it ignored SIGTERM
    assert node.kills()[-1] == ("side/proxy", signal.SIGKILL)
    node.exit(proxy, -signal.SIGKILL)
    settle(agent)
    assert find(agent.records["side"], "proxy").state == "terminated"
    assert len(node.started()) == 3                          # and nothing restarts


def test_delete_sends_sigterm_then_sigkill_after_the_grace_period(world):
    paths, node, clock, make_agent = world
    agent = make_agent()
    agent.create_pod(pod("web", containers=("app", "helper"), grace=30))
    app, helper = pid_of(agent, "web", "app"), pid_of(agent, "web", "helper")
    agent.delete_pod("web", None)
    assert sorted(node.kills()) == [("web/app", signal.SIGTERM), ("web/helper", signal.SIGTERM)]
    node.exit(app, 0)                    # app ends on SIGTERM; helper ignores it
    settle(agent)
    advance(agent, clock, 29)
    assert ("web/helper", signal.SIGKILL) not in node.kills()
    assert "web" in agent.records        # not torn down while helper runs
    advance(agent, clock, 1.5)
    assert node.kills()[-1] == ("web/helper", signal.SIGKILL)
    assert ("web/app", signal.SIGKILL) not in node.kills()
    node.exit(helper, -signal.SIGKILL)
    settle(agent)
    assert "web" not in agent.records and not paths.pod_dir("web").exists()
    names = [name for name, _ in node.calls]
    for step in ("network.remove_filter", "network.remove_veth", "pins.remove",
                 "processes.remove_cgroup", "dirs.unmount_volumes"):
        assert step in names[names.index("kill"):], f"teardown did not {step}"
    assert not list(paths.ipam.glob("10.*"))     # the IP lease went back


def test_a_new_agent_adopts_running_containers_and_restarts_the_ended(world):
    paths, node, clock, make_agent = world
    first = make_agent()
    first.create_pod(pod("web", containers=("a", "b")))
    a, b = pid_of(first, "web", "a"), pid_of(first, "web", "b")
    stop(first)                          # the agent dies; the pods keep running
    del node.running[b]                  # b ends while no agent runs
    second = make_agent()
    assert second.live[("web", "a")].pid == a        # a: adopted, same process
    cs_b = find(second.records["web"], "b")
    assert cs_b.last_state.reason == "Unknown"       # its exit code cannot be known
    assert cs_b.last_state.exit_code is None
    assert cs_b.state == "running" and cs_b.restart_count == 1
    assert node.started() == ["web/a", "web/b", "web/b"]
    node.exit(a, 0)                      # not its child: seen through the pidfd
    settle(second)
    cs_a = find(second.records["web"], "a")
    assert cs_a.last_state.reason == "Unknown" and cs_a.restart_count == 1
    assert node.started()[-1] == "web/a" and cs_a.pid != a


def test_a_failed_pull_backs_off_as_restarts_do(world):
    paths, node, clock, make_agent = world
    agent = make_agent()
    agent.create_pod(pod("img", image="example.org/missing:1"))

    def fail_pull():
        pid, w = agent.puller.pulls["example.org/missing:1"]["pid"], node.pull_w
        os.write(w, b"error: not found\n")
        os.close(w)
        node.exit(pid, 1)
        settle(agent)
        return find(agent.records["img"], "app")

    pulls = lambda: [args for name, args in node.calls if name == "pull"]   # noqa: E731
    cs = fail_pull()
    assert cs.reason == "ErrImagePull" and "not found" in cs.message
    for wait in (10, 20):
        advance(agent, clock, 1)
        assert cs.reason == "ImagePullBackOff"
        count = len(pulls())
        advance(agent, clock, wait - 1.5)
        assert len(pulls()) == count, f"pulled again before its {wait}s back-off"
        advance(agent, clock, 1)
        assert len(pulls()) == count + 1
        cs = fail_pull()
    assert node.started() == []


def test_a_new_agent_finishes_a_delete_the_last_one_began(world):
    paths, node, clock, make_agent = world
    first = make_agent()
    first.create_pod(pod("web", grace=30))
    app = pid_of(first, "web", "app")
    first.delete_pod("web", None)
    assert node.kills() == [("web/app", signal.SIGTERM)]
    stop(first)                          # dies within the grace period
    second = make_agent()
    assert node.kills()[-1] == ("web/app", signal.SIGKILL)   # no second grace period
    node.exit(app, -signal.SIGKILL)
    settle(second)
    assert "web" not in second.records and not paths.pod_dir("web").exists()
    assert node.started() == ["web/app"]                     # and nothing restarted


def test_a_new_agent_removes_a_half_created_pod(world):
    paths, node, clock, make_agent = world
    first = make_agent()
    first.create_pod(pod("half"))
    pid = pid_of(first, "half", "app")
    stop(first)
    node.running.pop(pid)
    saved = state.read(paths.pod_dir("half"))    # as if killed before the sandbox was done
    saved.update(sandboxReady=False, phase="Pending")
    state.write(paths.pod_dir("half"), saved)
    calls = len(node.calls)
    second = make_agent()
    assert "half" not in second.records and not paths.pod_dir("half").exists()
    undone = [name for name, _ in node.calls[calls:]]
    for step in ("network.remove_filter", "network.remove_veth", "pins.remove",
                 "processes.remove_cgroup"):
        assert step in undone, f"the half-created pod's {step} was not undone"
