"""The node agent: one small process for all pods, like the kubelet.

It holds netlink and the image store open, creates each pod's sandbox and
network, starts the containers as its children (it is their subreaper),
copies their output into CRI log files, notices their exits, restarts them
by policy, and tears pods down on delete. One single-threaded event loop
(selectors) serves them all, so namespaces can be changed in forked children
safely and a pod costs the agent a few open files, not a process.

Requests arrive on a unix socket as one JSON line each (see client.py):

    {"op": "ping"} | {"op": "run", "object": {...}, "source": "pod.yaml", "namespace": "a"}
    {"op": "apply", "path": "pod.yaml", "text": "<the file>", "namespace": "a",
     "create": false}      (minipod run FILE: the agent checks the text)
    {"op": "delete", "name": "web", "namespace": "a", "grace": null} | {"op": "stop"}
    {"op": "update", "name": "web", "namespace": "a", "uid": "...", "labels": {...},
     "annotations": {...}, "images": {"main": "nginx:1.28"},
     "spec": {"activeDeadlineSeconds": 60}}
    {"op": "namespace_create" | "namespace_update", "name": "a", "labels": {...},
     "annotations": {...}} | {"op": "namespace_delete", "name": "a"}
    {"op": "put_object", "object": {ConfigMap or Secret}}
    {"op": "delete_object", "resource": "configmaps", "namespace": "default", "name": "x"}

and are answered with one JSON line: {"ok": true, ...} or {"ok": false,
"code": "AlreadyExists", "error": "..."}.

A pod is namespace + name ("namespace" absent: default); inside the agent it
is known by its key (runtime/paths.py pod_key: web, a_web), which names its
state dir, logs and netns. Namespaces are files RUN/namespaces/NAME.json
(runtime/namespaces.py); deleting one deletes its pods, then the file.

If the agent dies, pods keep running. The next agent re-adopts them from
their state records and the kernel (pid + start time, pidfd to notice the
exit); an exit it could not see is recorded as unknown, never invented.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import signal
import socket
import traceback

from minipod.runtime import namespaces
from minipod.runtime.agent import eviction
from minipod.runtime.agent.adopt import Adoption
from minipod.runtime.agent.backoff import Backoff
from minipod.runtime.agent.images import Images, Puller
from minipod.runtime.agent.loop import Loop, log, update
from minipod.runtime.agent.node import Node
from minipod.runtime.agent.output import OutputRelay
from minipod.runtime.agent.pods import Pods
from minipod.runtime.agent.prober import Prober
from minipod.runtime.agent.running import RunningContainer
from minipod.runtime.agent.server import Server
from minipod.runtime.agent.store import PodStore
from minipod.runtime.agent.worker import Worker
from minipod.runtime.paths import Paths

IDLE_EXIT_SECONDS = float(os.environ.get("MINIPOD_AGENT_IDLE", "60"))


class Agent(Server, Pods, Adoption, Worker, Images):
    """The agent's state, its loop and its node; the managers' methods come
    from the classes it is made of (server.py, pods.py, adopt.py, worker.py,
    images.py); `output`, `puller` and `prober` are objects of their own
    (output.py, images.py, prober.py)."""

    def __init__(self, paths: Paths, node: Node | None = None, loop: Loop | None = None,
                 backoff: Backoff | None = None):
        self.paths = paths
        self.backoff = backoff or Backoff()   # restarts and pulls (backoff.py)
        self.loop = loop or Loop()
        self.node = node or Node(paths)
        self.store = PodStore(paths)
        self.records = self.store.records            # pod key -> PodRecord
        self.specs = self.store.specs                # pod key -> parsed manifest
        self.live: dict[tuple[str, str], RunningContainer] = {}
        self.by_pid: dict[int, RunningContainer] = {}
        self.delete_waiters: dict[str, list[socket.socket]] = {}
        self.checks: dict[int, tuple[int, object]] = {}  # check child pid -> (fd, done)
        self.explain_delete: dict[str, list] = {}        # pod -> --explain steps so far
        self.timings_delete: dict[str, list] = {}        # pod -> --timings marks so far
        self.measuring: int | None = None               # the disk usage child's pid
        self.config_timers: set[tuple[str, str, str]] = set()  # (pod, container, uid) waiting
        self.idle_since = self.loop.clock()
        self.stopping = False
        self.net = self.node.net
        self.ipam = self.node.ipam
        self.images = self.node.images
        self.cgroups = self.node.cgroups
        # the managers that are objects of their own; they report back by callback
        self.output = OutputRelay(self.loop, paths)
        self.puller = Puller(self.loop, self.node, self._pulled)
        self.prober = Prober(self.loop, self.node, self.store, self.live, self.checks, paths,
                             self._kill_container)
        self.on_deleted_exit = self._maybe_finish_delete   # worker -> pods, by callback

    def call_later(self, delay: float, fn, *args) -> None:
        self.loop.call_later(delay, fn, *args)

    def serve(self) -> int:
        """Run until stopped or idle; returns the exit code."""
        for d in (self.paths.run, self.paths.pods, self.paths.log):
            d.mkdir(parents=True, exist_ok=True)
        from minipod.linux import files
        try:  # held for the agent's life: the fd is never closed
            files.lock(self.paths.agent_lock, fcntl.LOCK_EX | fcntl.LOCK_NB, what="agent lock")
        except BlockingIOError:
            log("another agent is running; exiting")
            return 0
        import prctl  # subreaper: orphaned container processes come to us
        prctl.set_child_subreaper(True)
        # SIGCHLD wakes the loop through a pipe (set_wakeup_fd needs a handler).
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        self.loop.add_reader(wake_r, self._on_wakeup)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.paths.socket)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        server.bind(str(self.paths.socket))
        os.chmod(self.paths.socket, 0o600)
        server.listen(64)
        self.loop.add_reader(server, self._on_accept)
        self.start()
        log(f"agent {os.getpid()} listening on {self.paths.socket}; {len(self.records)} pods")
        self._reap()  # exits that happened before the handler was installed
        while not self.stopping:
            self.loop.run_once()
            if not self.records and self.loop.clock() - self.idle_since > IDLE_EXIT_SECONDS:
                log(f"no pods for {IDLE_EXIT_SECONDS:.0f}s; exiting")
                break
        server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.paths.socket)
        for rc in list(self.live.values()):
            self.output.close(rc, drain=True, ended=False)   # read on by the next agent
        if not self.records:
            with contextlib.suppress(Exception):
                self.node.remove_idle_network()
            with contextlib.suppress(OSError):
                self.cgroups.remove(self.cgroups.parent)
        return 0

    def start(self, gc: bool = True) -> None:
        """What a new agent does before it serves: re-adopt the pods, finish
        namespace deletions, collect orphans (gc), start the eviction timer."""
        self.adopt_all()
        namespaces.ensure_builtin(self.paths)
        self._resume_namespace_deletions()
        if gc:
            self._gc_at_start()
        self.call_later(eviction.EVICTION_PERIOD, self._eviction_tick)

    def _gc_at_start(self) -> None:
        try:
            from minipod.runtime.agent import gc
            done = gc.run(self.paths, self.node.ipr, self.net.bridge, list(self.records.values()),
                          cgroups=self.cgroups)
            for line in done["removed"]:
                log(f"gc: removed {line}")
            for line in done["kept"] + done["errors"]:
                log(f"gc: {line}")
        except Exception:
            log("gc at start failed:\n" + traceback.format_exc())

    def _on_signal(self, signum, frame) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.stopping = True

    def _on_wakeup(self, fd) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(fd, 4096)
        self._reap()

    def _reap(self) -> None:
        """waitpid every exited child: containers (adopted by subreaping)
        and the short-lived helper children."""
        while True:
            reaped = self.node.wait_any()
            if reaped is None:
                return
            pid, code = reaped
            rc = self.by_pid.get(pid)
            if rc is not None:
                self._container_exited(rc, code)
            elif self.puller.owns(pid):
                self.puller.reaped(pid, code)
            elif pid in self.checks:
                fd, done = self.checks.pop(pid)
                try:
                    message = os.read(fd, 4096).decode(errors="replace")
                except BlockingIOError:
                    message = ""
                os.close(fd)
                done(code == 0, message)

    def _on_pidfd(self, fd: int) -> None:
        rc = next((r for r in self.live.values() if r.pidfd == fd), None)
        self.loop.sel.unregister(fd)
        os.close(fd)
        if rc is not None:
            rc.pidfd = None
            self._container_exited(rc, None)

    # ---- local storage limits: measure, evict (runtime/agent/eviction.py) --------

    def _eviction_tick(self) -> None:
        """Every EVICTION_PERIOD: measure the pods that have storage limits,
        in a child (one at a time); `_evict` those over a limit."""
        self.call_later(eviction.EVICTION_PERIOD, self._eviction_tick)
        if self.measuring is not None:
            return  # the last walk is still going: never two at once
        checks = []
        for name, record in self.records.items():
            if record.deletion_timestamp or not record.sandbox_ready or record.evicted:
                continue
            uid = record.uid
            names = [cs.name for cs in record.init_containers + record.containers]
            try:
                checks += [dataclasses.replace(c, pod=name) for c in eviction.plan(   # by key
                    self.store.pod_spec(record), uid, record.volumes or {},
                    {n: str(self.paths.container_dir(uid, n) / "upper") for n in names},
                    {n: str(self.paths.pod_logs / name / n) for n in names})]
            except Exception as e:  # one bad record must not hide the others' limits
                log(f"pod {name}: cannot plan its storage checks: {e}")
        if not checks:
            return
        pid, fd = self.node.fork_measure(checks)
        os.set_blocking(fd, False)
        self.measuring = pid

        def done(ok: bool, report: str) -> None:
            self.measuring = None
            for i, used in eviction.parse_report(report):
                if i < len(checks):
                    self._evict(checks[i], used)
        self.checks[pid] = (fd, done)

    def _evict(self, check: eviction.Check, used: int) -> None:
        """The kubelet's evictPod: a Warning event, the pod Failed with reason
        Evicted, every container stopped (SIGKILL after EVICTION_GRACE), and
        nothing restarted; the pod object stays until deleted."""
        record = self.records.get(check.pod)
        if record is None or record.uid != check.uid or record.deletion_timestamp \
                or not record.sandbox_ready or record.evicted:
            return
        log(f"pod {check.pod}: evicted ({used} bytes used): {check.message}")
        update(record, evicted=True, reason=eviction.REASON, message=check.message)
        self.store.event(check.pod, eviction.REASON, check.message, warning=True)
        for rc in self._live_of(check.pod):
            self.store.event(check.pod, "Killing", f"Stopping container {rc.name}")
            with contextlib.suppress(ProcessLookupError):
                self.node.kill(rc.pid, signal.SIGTERM)
            self.call_later(eviction.EVICTION_GRACE, self._kill_one, check.pod, rc.name, rc.pid)
        self.store.save(check.pod)


def main(paths: Paths | None = None) -> int:
    """`minipod agent`: serve in the foreground until stopped or idle."""
    paths = paths or Paths()
    try:
        return Agent(paths).serve()
    except OSError as e:
        log(f"agent failed: {e}")
        return 1
