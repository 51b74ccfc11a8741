"""The node agent: one small process for all pods, like the kubelet.

It holds netlink and the image store open, creates each pod's sandbox and
network, starts the containers as its children (it is their subreaper),
copies their output into CRI log files, notices their exits, restarts them
by policy, and tears pods down on delete. One single-threaded event loop
(selectors) serves them all, so namespaces can be changed in forked children
safely and a pod costs the agent a few open files, not a process.

Requests arrive on a unix socket as one JSON line each (see client.py):

    {"op": "ping"} | {"op": "run", "object": {...}, "source": "pod.yaml", "namespace": "a"}
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
import errno
import fcntl
import heapq
import itertools
import json
import os
import selectors
import shutil
import signal
import socket
import sys
import time
import traceback
import uuid
from pathlib import Path

from minipod import cgroups, explain, timings
from minipod.netns import antispoof, bridge, hostport
from minipod.netns.ipam import IPAM
from minipod.rootfs import mounts
from minipod.rootfs.store import ImageStore
from minipod.runtime import container as ctr
from minipod.runtime import configobjects, faults, logs, namespaces, podconfig, probes, process, sandbox, security, serviceaccount, state, volumes
from minipod.runtime import owners
from minipod.runtime.agent import backoff, eviction
from minipod.runtime.api import manifest, podstatus, qos
from minipod.runtime.paths import Paths, pod_key, record_key

IDLE_EXIT_SECONDS = float(os.environ.get("MINIPOD_AGENT_IDLE", "60"))
BACKOFF_BASE = float(os.environ.get("MINIPOD_BACKOFF_BASE", "10"))
BACKOFF_MAX = 300.0  # the cap; 2 × cap (10 min) after a restart, an exit starts over (backoff.py)
MAX_EVENTS = 100


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def log(msg: str) -> None:
    print(f"{now_iso()} {msg}", file=sys.stderr, flush=True)


class RequestError(Exception):
    """An answer for the client: a Kubernetes-style code and a message."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class RunningContainer:
    """What the agent holds for one live container: pid, pidfd, log pipes."""

    def __init__(self, pod: str, name: str):
        self.pod, self.name = pod, name
        self.pid: int | None = None
        self.pidfd: int | None = None       # only for adopted (non-child) pids
        self.fifo_fds: dict[int, str] = {}  # output fd -> "stdout" | "stderr"
        self.out_pos: dict[int, int] = {}   # output file fd -> bytes read (FIFOs: absent)
        self.out_wd: dict[int, int] = {}    # output file fd -> its inotify watch
        self.punched: dict[int, float] = {} # output file fd -> bytes given back (holes)
        self.pos_fd: int | None = None      # the file that keeps out_pos across agents
        self.writer: logs.LogWriter | None = None
        self.probes: dict[str, probes.ProbeState] = {}
        self.stopping = False               # being killed (a probe or hook failed)


class Agent:
    def __init__(self, paths: Paths):
        self.paths = paths
        self.sel = selectors.DefaultSelector()
        self.timers: list = []
        self._seq = itertools.count()
        self.records: dict[str, dict] = {}           # pod key -> state record
        self.live: dict[tuple[str, str], RunningContainer] = {}
        self.by_pid: dict[int, RunningContainer] = {}
        self.delete_waiters: dict[str, list[socket.socket]] = {}
        self.specs: dict[str, manifest.Pod] = {}       # pod key -> parsed manifest
        self.checks: dict[int, tuple[int, object]] = {}  # probe/hook child pid -> (fd, done)
        self.pulls: dict[str, dict] = {}                 # image ref -> its pull in flight
        self.explain_delete: dict[str, list] = {}        # pod -> --explain steps so far
        self.timings_delete: dict[str, list] = {}        # pod -> --timings marks so far
        self.pull_pids: dict[int, str] = {}
        self.measuring: int | None = None               # the disk usage child's pid
        self.config_timers: set[tuple[str, str, str]] = set()  # (pod, container, uid) waiting
        self.idle_since = time.monotonic()
        self.stopping = False
        self.net = bridge.NetworkConfig(
            bridge=os.environ.get("MINIPOD_BRIDGE", "minipod0"),
            subnet=os.environ.get("MINIPOD_SUBNET", "10.89.0.0/16"))
        self.ipam = IPAM(paths.ipam, self.net.subnet)
        self.images = ImageStore(paths.images)
        self.cgroups = cgroups.detect(parent=paths.cgroup_parent)
        self._ipr = None
        self._nat_ready = False
        self._bridge_ready = False

    # ---- setup -------------------------------------------------------------

    @property
    def ipr(self):
        if self._ipr is None:
            from pyroute2 import IPRoute
            self._ipr = IPRoute()
        return self._ipr

    def serve(self) -> int:
        """Run until stopped or idle; returns the exit code."""
        for d in (self.paths.run, self.paths.pods, self.paths.log):
            d.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(self.paths.agent_lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
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
        self.sel.register(wake_r, selectors.EVENT_READ, self._on_wakeup)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.paths.socket)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        server.bind(str(self.paths.socket))
        os.chmod(self.paths.socket, 0o600)
        server.listen(64)
        self.sel.register(server, selectors.EVENT_READ, self._on_accept)
        self.adopt_all()
        namespaces.ensure_builtin(self.paths)
        self._resume_namespace_deletions()
        try:
            from minipod.runtime.agent import gc
            done = gc.run(self.paths, self.ipr, self.net.bridge, self.records.values(),
                          cgroups=self.cgroups)
            for line in done["removed"]:
                log(f"gc: removed {line}")
            for line in done["kept"] + done["errors"]:
                log(f"gc: {line}")
        except Exception:
            log("gc at start failed:\n" + traceback.format_exc())
        log(f"agent {os.getpid()} listening on {self.paths.socket}; {len(self.records)} pods")
        self._reap()  # exits that happened before the handler was installed
        self.call_later(eviction.EVICTION_PERIOD, self._eviction_tick)
        while not self.stopping:
            timeout = self._run_timers()
            for key, _ in self.sel.select(timeout):
                try:
                    key.data(key.fileobj)
                except Exception:
                    log("error in event handler:\n" + traceback.format_exc())
            if not self.records and time.monotonic() - self.idle_since > IDLE_EXIT_SECONDS:
                log(f"no pods for {IDLE_EXIT_SECONDS:.0f}s; exiting")
                break
        server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.paths.socket)
        for rc in list(self.live.values()):
            self._close_pipes(rc, drain=True)
        if not self.records and self._ipr is not None:
            # no pod left: leave the host as it was before the first pod,
            # unless another minipod's pods are plugged into the same bridge
            with contextlib.suppress(Exception):
                if not bridge.pod_links(self.ipr, self.net):
                    if self._nat_ready:
                        hostport.remove_network(self.net.bridge, self.net.subnet)
                    bridge.delete_bridge(self.ipr, self.net)
                    log(f"no pods left; removed bridge {self.net.bridge}")
        if not self.records:
            with contextlib.suppress(OSError):
                self.cgroups.remove(self.cgroups.parent)
        return 0

    def _on_signal(self, signum, frame) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.stopping = True

    def _on_wakeup(self, fd) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(fd, 4096)
        self._reap()

    # ---- timers ------------------------------------------------------------

    def call_later(self, delay: float, fn, *args) -> None:
        heapq.heappush(self.timers, (time.monotonic() + delay, next(self._seq), fn, args))

    def _run_timers(self) -> float:
        while self.timers and self.timers[0][0] <= time.monotonic():
            _, _, fn, args = heapq.heappop(self.timers)
            try:
                fn(*args)
            except Exception:
                log("error in timer:\n" + traceback.format_exc())
        if self.timers:
            return max(0.0, min(5.0, self.timers[0][0] - time.monotonic()))
        return 5.0

    # ---- requests ----------------------------------------------------------

    def _on_accept(self, server) -> None:
        conn, _ = server.accept()
        conn.settimeout(5)
        try:
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
            request = json.loads(data or b"{}")
            op = request.get("op")
            handler = getattr(self, f"op_{op}", None)
            if handler is None:
                raise RequestError("BadRequest", f"unknown operation {op!r}")
            answer = handler(request, conn)
        except RequestError as e:
            answer = {"ok": False, "code": e.code, "error": str(e)}
        except Exception as e:
            log("request failed:\n" + traceback.format_exc())
            answer = {"ok": False, "code": "InternalError", "error": str(e)}
        if answer is not None:  # None: answered later (delete waits)
            self._answer(conn, answer)

    def _answer(self, conn: socket.socket, answer: dict) -> None:
        with contextlib.suppress(OSError):
            conn.sendall((json.dumps(answer) + "\n").encode())
        conn.close()

    def op_ping(self, request, conn) -> dict:
        return {"ok": True, "pid": os.getpid(), "pods": len(self.records)}

    def op_stop(self, request, conn) -> dict:
        self.stopping = True
        return {"ok": True, "pid": os.getpid()}

    def op_run(self, request, conn) -> dict:
        if request.get("timings"):
            timings.start()
            timings.mark("agent: receive the request")
        obj = request["object"]
        if request.get("namespace"):   # kubectl's -n: the object's own namespace, or this one
            meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
            if meta.get("namespace") not in (None, "", request["namespace"]):
                raise RequestError("BadRequest", namespaces.mismatch(meta["namespace"],
                                                                     request["namespace"]))
            obj = dict(obj, metadata=dict(meta, namespace=request["namespace"]))
        pod = manifest.load_object(obj, request.get("source", "<request>"))
        timings.mark("agent: validate the manifest")
        if request.get("explain"):
            explain.start()
        try:
            record = self.create_pod(pod)
        finally:
            steps = explain.stop()
            marks = timings.stop()
        return {"ok": True, "pod": record, "explain": steps, "timings": marks}

    def op_delete(self, request, conn):
        name = request["name"]
        key = self._key_of(request)
        if key is None:
            raise RequestError("NotFound", f'pods "{name}" not found')
        self.delete_waiters.setdefault(key, []).append(conn)
        if request.get("explain"):
            self.explain_delete[key] = []
            explain.start()
        if request.get("timings"):
            self.timings_delete[key] = []
            timings.start()
            timings.mark("agent: receive the request")
        try:
            self.delete_pod(key, request.get("grace"))
        finally:
            if key in self.explain_delete:
                self.explain_delete[key] += explain.stop()
            if key in self.timings_delete:
                self.timings_delete[key] += timings.stop()
        return None

    def op_update(self, request, conn) -> dict:
        """Change what a pod may change in place (the API server checked the
        rules: runtime/apiserver/podupdate.py): labels, annotations, a few
        spec fields, container images. A new image restarts that container
        as the kubelet does: killed (its grace period), then started with
        the new image (pulled as its imagePullPolicy says), restartCount + 1."""
        name = request["name"]
        pkey = self._key_of(request)
        record = self.records.get(pkey)
        if record is None or (request.get("uid") and record["uid"] != request["uid"]):
            raise RequestError("NotFound", f'pods "{name}" not found')
        images = request.get("images") or {}
        if images and record.get("deletionTimestamp"):
            raise RequestError("Conflict", f'pod "{name}" is being deleted: its containers '
                                           f"are not restarted with a new image")
        from minipod.rootfs import reference
        for cname, image in images.items():
            if not any(c["name"] == cname for c in record["containers"]
                       + record.get("initContainers", [])):
                raise RequestError("BadRequest", f'pod "{name}" has no container {cname}')
            try:
                reference.parse(image)
            except ValueError as e:
                raise RequestError("InvalidImageName", f"container {cname}: {e}") from None
        new = json.loads(json.dumps(record["manifest"]))   # a new object: pod_spec re-parses
        meta = new.setdefault("metadata", {})
        for key in ("labels", "annotations"):
            if key in request:
                if request[key]:
                    meta[key] = dict(request[key])
                else:
                    meta.pop(key, None)
        spec = new.setdefault("spec", {})
        for key, value in (request.get("spec") or {}).items():
            if key not in ("activeDeadlineSeconds", "tolerations",
                           "terminationGracePeriodSeconds"):
                raise RequestError("BadRequest", f"spec.{key} cannot change in a running pod")
            if value is None:
                spec.pop(key, None)
            else:
                spec[key] = value
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            if c.get("name") in images:
                c["image"] = images[c["name"]]
        try:
            pod = manifest.load_object(new, record.get("source", "<update>"))
        except manifest.ManifestError as e:
            raise RequestError("Invalid", str(e)) from None
        record["manifest"] = new
        record["terminationGracePeriodSeconds"] = pod.termination_grace_period_seconds
        if record.get("volumes"):   # downwardAPI files of labels and annotations
            podconfig.write_volumes(self.paths, record, pod)
        for cname, image in images.items():
            cs = _find(record, cname)
            if cs.get("image") == image:
                continue
            cs["image"] = image
            cs.pop("pulled", None)
            if (pkey, cname) in self.live:
                cs["respec"] = True             # _after_exit starts it again at once
                self.event(pkey, "Killing", f"Container {cname} definition changed, will be "
                                            f"restarted")
                self._kill_container(pkey, cname, "definition changed")
        self._save(pkey)
        return {"ok": True}

    def op_put_object(self, request, conn) -> dict:
        """Create or replace a ConfigMap or Secret (configobjects.py), then
        bring the pods that use it up to date."""
        try:
            obj, _ = configobjects.load_object(request["object"], request.get("source",
                                                                              "<request>"))
        except manifest.ManifestError as e:
            raise RequestError("Invalid", str(e)) from None
        if obj.resource == "configmaps" and obj.name == configobjects.ROOT_CA:
            raise RequestError("Forbidden", f'configmaps "{obj.name}" is forbidden: minipod '
                                            f"makes it (the API server's CA) in every namespace")
        ns = namespaces.read(self.paths, obj.namespace)
        if ns is None:
            raise RequestError("NotFound", f'namespaces "{obj.namespace}" not found')
        if ns.get("deletionTimestamp") and configobjects.read(
                self.paths, obj.resource, obj.namespace, obj.name) is None:
            # a terminating namespace takes no new object; one it has may still change
            raise RequestError("Forbidden", f'{obj.resource} "{obj.name}" is forbidden: unable '
                                            f"to create new content in namespace "
                                            f"{obj.namespace} because it is being terminated")
        try:
            stored, created = configobjects.put(self.paths, obj.obj)
        except configobjects.Conflict as e:
            raise RequestError("Invalid", str(e)) from None
        self._config_changed(obj.resource, obj.namespace, obj.name)
        return {"ok": True, "object": stored, "created": created}

    def op_delete_object(self, request, conn) -> dict:
        resource, ns, name = request["resource"], request["namespace"], request["name"]
        if resource not in configobjects.RESOURCE_KINDS:
            raise RequestError("BadRequest", f"unknown resource {resource!r}")
        try:
            old = configobjects.remove(self.paths, resource, ns, name)
        except ValueError as e:
            raise RequestError("BadRequest", str(e)) from None
        if old is None:
            raise RequestError("NotFound", f'{resource} "{name}" not found')
        return {"ok": True, "object": old}

    def _config_changed(self, resource: str, ns: str, name: str) -> None:
        """Write the object's new content into the volumes of the pods that
        use it, and start their containers that waited for it."""
        for pod_name, record in list(self.records.items()):
            if record.get("deletionTimestamp") or not podconfig.uses(
                    self.pod_spec(record), resource, ns, name):
                continue
            if record.get("volumes"):
                podconfig.write_volumes(self.paths, record, self.pod_spec(record))
            for cs in record.get("initContainers", []) + record["containers"]:
                self._retry_config(pod_name, cs["name"], record["uid"])

    def _retry_config(self, pod_name: str, name: str, uid: str) -> None:
        """Try again a container that waits for a ConfigMap or Secret."""
        record = self.records.get(pod_name)
        if record is None or record["uid"] != uid or record.get("deletionTimestamp"):
            return
        cs = _find(record, name)
        if cs["state"] != "waiting" or not cs.get("configWait"):
            return
        if cs.get("restartCount"):
            self.start_container(pod_name, name)
        else:       # a first start goes through sync: init containers come first
            cs["reason"] = "PodInitializing" if cs in record.get("initContainers", []) \
                else "ContainerCreating"
            self.sync(pod_name)

    def _key_of(self, request) -> str | None:
        """The key of the live pod a request names (its "namespace" and
        "name"), None if there is none: a key is the pod's only if its record
        has that namespace and name ("a_web" in default is not web in a)."""
        ns, name = request.get("namespace") or namespaces.DEFAULT, request.get("name")
        key = pod_key(ns, name or "")
        record = self.records.get(key)
        if record is None or record["name"] != name or \
                (record.get("namespace") or namespaces.DEFAULT) != ns:
            return None
        return key

    def op_gc(self, request, conn) -> dict:
        """Remove what no live pod owns (runtime/agent/gc.py)."""
        from minipod.runtime.agent import gc
        return gc.run(self.paths, self.ipr, self.net.bridge, self.records.values(),
                      dry_run=bool(request.get("dryRun")), cgroups=self.cgroups)

    # ---- pod creation ------------------------------------------------------

    def create_pod(self, pod: manifest.Pod) -> dict:
        """Create the sandbox, network and containers of a validated pod.

        Each acquisition registers its undo at once; if any step fails,
        the undo runs in reverse order and the first error is reported."""
        key = pod_key(pod.namespace, pod.name)
        if key in self.records or self.paths.pod_dir(key).exists():
            raise RequestError("AlreadyExists", f'pods "{pod.name}" already exists')
        ns = namespaces.read(self.paths, pod.namespace)
        if ns is None:
            raise RequestError("NotFound", f'namespaces "{pod.namespace}" not found')
        if ns.get("deletionTimestamp"):
            raise RequestError("Forbidden", f'pods "{pod.name}" is forbidden: unable to create '
                                            f"new content in namespace {pod.namespace} because "
                                            f"it is being terminated")
        from minipod.rootfs import reference
        for c in pod.init_containers + pod.containers:
            try:
                reference.parse(c.image)
            except ValueError as e:
                raise RequestError("InvalidImageName", f"container {c.name}: {e}") from None
        first_wait = "PodInitializing" if pod.init_containers else "ContainerCreating"
        pod_dir = self.paths.pod_dir(key)
        uid = str(uuid.uuid4())
        record = {
            "name": pod.name, "namespace": pod.namespace, "uid": uid,
            "manifest": pod.raw, "source": pod.source,
            "creationTimestamp": now_iso(), "phase": "Pending",
            "restartPolicy": pod.restart_policy,
            "terminationGracePeriodSeconds": pod.termination_grace_period_seconds,
            "nodeName": socket.gethostname(), "netns": self.paths.netns_name(key),
            "containers": [{"name": c.name, "image": c.image, "imageID": "",
                            "state": "waiting", "reason": first_wait,
                            "restartCount": 0} for c in pod.containers],
            "initContainers": [{"name": c.name, "image": c.image,
                                "imageID": "", "state": "waiting",
                                "reason": "PodInitializing", "restartCount": 0,
                                "sidecar": c.restart_policy == "Always"}
                               for c in pod.init_containers],
        }
        netns_path = self.paths.netns_path(key)
        with contextlib.ExitStack() as undo:
            pod_dir.mkdir(parents=True)
            undo.callback(owners.dirs.remove_pod_dir, self.paths, key, True)
            faults.point("create:dir")
            # 0. hostPorts claimed first: a clash fails before any kernel work
            mappings = [hostport.Mapping(host_port=p.host_port, container_port=p.container_port,
                                         protocol=p.protocol, host_ip=p.host_ip or "")
                        for c in pod.containers + pod.init_containers for p in c.ports
                        if p.host_port]
            if mappings:
                api = serviceaccount.api_port(self.paths)
                taken = next((m for m in mappings if m.host_port == api and m.protocol == "TCP"
                              and m.host_ip in ("", "0.0.0.0", "127.0.0.1")), None)
                if taken is not None:   # its DNAT would take the API over from kubectl and pods
                    raise RequestError("Conflict", f"hostPort {api} is the port of minipod's "
                                                   f"Kubernetes API server; choose another "
                                                   f"hostPort")
                undo.callback(owners.network.remove_hostports, self.paths, uid, rules=False)
                try:
                    hostport.claim(self.paths.hostports, uid, namespaces.display(
                        pod.namespace, pod.name), mappings)
                except hostport.HostPortConflict as e:
                    raise RequestError("Conflict", str(e)) from None
            self.records[key] = record
            undo.callback(self.records.pop, key, None)
            self.event(key, "Scheduled", f"Successfully assigned {pod.namespace}/{pod.name} "
                                         f"to {record['nodeName']}")
            timings.mark("agent: pod dir, hostPorts claimed")
            self._save(key)
            timings.mark("agent: state saved (Pending)")
            faults.point("create:state")
            # 1. namespaces: net, ipc, uts, pinned by bind mounts
            undo.callback(owners.pins.remove, self.paths, key)
            owners.pins.create(self.paths, key, pod.name)
            timings.mark("sandbox: net, ipc, uts namespaces made and pinned")
            faults.point("create:namespaces")
            # 2. an IP from the pod network
            undo.callback(self.ipam.release, uid)
            ip = self.ipam.allocate(uid)
            timings.mark("IPAM: lease an IP")
            faults.point("create:ip")
            explain.step(f"echo {uid} > {self.paths.ipam}/{ip}",
                         f"lease an IP from {self.net.subnet}: one file per IP, taken under "
                         f"a lock, so two pods never get the same one")
            # 3. the bridge, and a veth pair into the pod
            ifname = bridge.host_ifname(uid)
            undo.callback(owners.network.remove_veth, self.ipr, ifname)
            link = self._attach(str(netns_path), ifname, str(ip))
            timings.mark("veth: pair made, pod side addressed, host side on the bridge")
            undo.callback(owners.network.remove_filter, self.paths, uid)
            owners.network.add_filter(self.paths, uid, link.host_ifname, link.mac,
                                      str(ip))  # before any process
            timings.mark("anti-spoofing filter (nft)")
            self._ensure_nat(required=bool(mappings))
            record.update(podIP=str(ip), hostIfname=link.host_ifname,
                          hostIP=self._host_ip(), bridge=self.net.bridge)
            timings.mark("NAT, host IP")
            faults.point("create:veth")
            if mappings:
                undo.callback(owners.network.remove_hostport_rules, self.paths, uid)
                try:
                    hostport.add_rules(uid, str(ip), mappings, host_ifname=ifname,
                                       owner=self.paths.identity.tag)
                except hostport.HostPortError as e:
                    raise RequestError("HostPortError", str(e)) from None
                for m in mappings:
                    explain.step(f"nft add rule ip minipod ... {m.protocol.lower()} dport {m.host_port} dnat to "
                                 f"{ip}:{m.container_port}",
                                 f"hostPort {m.host_port}: the kernel rewrites traffic to the "
                                 f"host's port into the pod's")
            # 4. the files every container of the pod sees: hosts, hostname, resolv.conf
            self._write_etc_files(pod_dir, pod.hostname or pod.name, str(ip))
            # and the ServiceAccount token, ca.crt, namespace (runtime/serviceaccount.py)
            record["serviceAccountDir"] = serviceaccount.prepare(self.paths, pod_dir, record)
            timings.mark("/etc files of the pod")
            undo.callback(owners.dirs.remove_container_dir, self.paths, uid, True)
            undo.callback(owners.dirs.remove_log_dir, self.paths, key, True)
            # 5. a cgroup for the pod (limits: the sum of its containers')
            undo.callback(owners.processes.remove_cgroup, self.cgroups, uid)
            running = pod.containers + [c for c in pod.init_containers
                                        if c.restart_policy == "Always"]
            record["cgroup"] = self.cgroups.create_pod(
                uid, cgroups.pod_limits([_limits(c) for c in running]))
            record["qosClass"] = qos.pod_qos([qos.resources_of(c.resources)
                                              for c in pod.init_containers + pod.containers])
            timings.mark("cgroup of the pod")
            faults.point("create:cgroup")
            # shareProcessNamespace: one PID namespace, held by a pause process
            if pod.share_process_namespace:
                undo.callback(owners.processes.stop_pause, record)
                pause = sandbox.start_pause(pod.name, self.paths.pod_dir(key) / "pause-root")
                record["pause"] = {"pid": pause, "pidStart": state.proc_start_time(pause)}
                self._save(key)  # a crash from here on must know to kill it
                self.cgroups.adopt_pause(record["cgroup"], pause)  # it carries our identity
            # 6. volumes: emptyDirs made (tmpfs for medium Memory), hostPaths checked
            vol_base = self.paths.containers / uid / "volumes"
            undo.callback(owners.dirs.unmount_volumes, self.paths, uid)
            try:
                record["volumes"] = volumes.prepare(pod.volumes, vol_base)
            except volumes.VolumeError as e:
                raise RequestError("FailedMount", str(e)) from None
            timings.mark("volumes")
            faults.point("create:volumes")
            undo.pop_all()
        record["phase"] = "Running"
        record["startTime"] = now_iso()
        self.idle_since = time.monotonic()
        # 7. the containers: init containers one by one, then the others in
        # order; a failure here is a container status, not a failed run
        self.sync(key)
        self._save(key)
        timings.mark("agent: state saved (Running)")
        faults.point("create:containers")
        return record

    def sync(self, pod_name: str) -> None:
        """Start whatever should run next (kubelet's computePodActions):
        regular init containers one at a time to completion, sidecars
        (restartPolicy Always init containers) started and kept running,
        then every main container that has not started yet."""
        record = self.records.get(pod_name)
        if record is None or record.get("deletionTimestamp") or record.get("phase") == "Failed":
            return  # deleted, or evicted: nothing starts again
        for cs in record.get("initContainers", []):
            if cs["state"] == "running":
                if cs.get("sidecar"):
                    continue
                return  # wait for this init container to finish
            if cs["state"] == "terminated" and cs.get("exitCode") == 0 and not cs.get("sidecar"):
                continue
            if cs["state"] == "waiting" and cs.get("reason") in ("PodInitializing",
                                                                 "ContainerCreating") \
                    and not cs.get("restartCount"):
                self.start_container(pod_name, cs["name"])
                if cs["state"] == "running" and cs.get("sidecar"):
                    continue
            return  # failed, backing off, or just started
        for cs in record["containers"]:
            if cs["state"] == "waiting" and cs.get("reason") in ("PodInitializing",
                                                                 "ContainerCreating") \
                    and not cs.get("restartCount"):
                self.start_container(pod_name, cs["name"])

    # ---- images: the pull policy, pulls in child processes ------------------

    def _image_ready(self, pod_name: str, name: str):
        """The container's image, if the store has it and imagePullPolicy is
        satisfied; otherwise a pull is started (or joined) and None returned.

            Always        pulled once per container of the pod (a restart reuses it)
            IfNotPresent  pulled only when the store lacks it
            Never         never pulled: ErrImageNeverPull when missing
        """
        from minipod.rootfs.store import ImageNotFound
        record = self.records[pod_name]
        cs = _find(record, name)
        c = self.container_of(record, name)
        try:
            image = self.images.get(c.image)
        except ImageNotFound:
            image = None
        if c.image_pull_policy == "Never" and image is None:
            msg = f'Container image "{c.image}" is not present with pull policy of Never'
            cs.update(state="waiting", reason="ErrImageNeverPull", message=msg)
            self.event(pod_name, "ErrImageNeverPull", msg, warning=True)
            return None
        if image is not None and (c.image_pull_policy != "Always" or cs.get("pulled")):
            if not cs.get("pulled"):
                cs["pulled"] = True
                self.event(pod_name, "Pulled", f'Container image "{c.image}" already present '
                                               f"on machine")
            return image
        self._pull(c.image, pod_name, name)
        return None

    def _pull(self, ref: str, pod_name: str, name: str) -> None:
        """`minipod pull -q REF` as a child process: the loop never waits on
        the network, and several containers needing one image share it."""
        entry = self.pulls.get(ref)
        if entry is None:
            r, w = os.pipe()
            pid = os.posix_spawn(sys.executable, [sys.executable, "-m", "minipod", "pull",
                                                  "-q", ref], dict(os.environ), file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, w, 2)])
            os.close(w)
            os.set_blocking(r, False)
            entry = self.pulls[ref] = {"pid": pid, "fd": r, "out": b"", "waiters": set(),
                                       "start": time.monotonic()}
            self.pull_pids[pid] = ref
            self.sel.register(r, selectors.EVENT_READ, self._on_pull_output)
            self.event(pod_name, "Pulling", f'Pulling image "{ref}"')
        entry["waiters"].add((pod_name, name))
        _find(self.records[pod_name], name).update(state="waiting", reason="ContainerCreating",
                                                   message=None)

    def _on_pull_output(self, fd: int) -> None:
        entry = next((e for e in self.pulls.values() if e["fd"] == fd), None)
        with contextlib.suppress(BlockingIOError):
            data = os.read(fd, 65536)
            if entry is not None:
                entry["out"] = (entry["out"] + data)[-8192:]
            if not data:
                self.sel.unregister(fd)

    def _pull_done(self, pid: int, code: int) -> None:
        ref = self.pull_pids.pop(pid)
        entry = self.pulls.pop(ref)
        with contextlib.suppress(BlockingIOError, OSError):
            entry["out"] += os.read(entry["fd"], 65536)
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(entry["fd"])
        os.close(entry["fd"])
        lines = [line for line in entry["out"].decode(errors="replace").splitlines()
                 if line.startswith("error:")]
        reason = lines[-1].split(":", 2)[-1].strip() if lines else f"pull exited with {code}"
        seconds = time.monotonic() - entry["start"]
        for pod_name, name in entry["waiters"]:
            record = self.records.get(pod_name)
            if record is None or record.get("deletionTimestamp"):
                continue
            cs = _find(record, name)
            if code == 0:
                cs.update(pulled=True, pullBackoff=0)
                self.event(pod_name, "Pulled", f'Successfully pulled image "{ref}" in '
                                               f"{seconds:.3f}s")
                self.sync(pod_name)
                if cs["state"] == "waiting" and cs.get("restartCount"):
                    self.start_container(pod_name, name)  # a restart that waited for it
            else:
                delay = min(BACKOFF_BASE * 2 ** cs.get("pullBackoff", 0), BACKOFF_MAX)
                cs["pullBackoff"] = cs.get("pullBackoff", 0) + 1
                cs.update(state="waiting", reason="ErrImagePull", message=reason)
                self.event(pod_name, "Failed", f'Failed to pull image "{ref}": {reason}',
                           warning=True)
                self.call_later(min(1.0, delay), self._pull_backoff, pod_name, name,
                                record["uid"], delay)
                self.call_later(delay, self._retry_pull, pod_name, name, record["uid"])
            self._save(pod_name)

    def _pull_backoff(self, pod_name: str, name: str, uid: str, delay: float) -> None:
        record = self.records.get(pod_name)
        if record is not None and record["uid"] == uid:
            cs = _find(record, name)
            if cs.get("reason") == "ErrImagePull":
                cs.update(reason="ImagePullBackOff",
                          message=f'Back-off pulling image "{cs["image"]}" ({delay:.0f}s)')
                self.event(pod_name, "BackOff", f'Back-off pulling image "{cs["image"]}"')
                self._save(pod_name)

    def _retry_pull(self, pod_name: str, name: str, uid: str) -> None:
        record = self.records.get(pod_name)
        if record is not None and record["uid"] == uid and not record.get("deletionTimestamp"):
            cs = _find(record, name)
            if cs["state"] == "waiting" and cs.get("reason") in ("ErrImagePull",
                                                                 "ImagePullBackOff"):
                self.start_container(pod_name, name)

    def _attach(self, netns_path: str, ifname: str, ip: str):
        """Plug the pod into the bridge, making the bridge the first time (or
        again, if someone deleted it while the agent ran)."""
        for attempt in (1, 2):
            if not self._bridge_ready:
                bridge.ensure_bridge(self.ipr, self.net, str(self.ipam.gateway),
                                     self.ipam.prefixlen)
                self._bridge_ready = True
            try:
                return bridge.attach_pod(self.ipr, self.net, netns_path, ifname, ip,
                                         self.ipam.prefixlen, str(self.ipam.gateway),
                                         alias=self.paths.identity.tag)
            except bridge.NetworkError as e:
                if attempt == 2 or "look up bridge" not in str(e):
                    raise
                self._bridge_ready = self._nat_ready = False

    def _ensure_nat(self, required: bool) -> None:
        """The pod network's NAT table (masquerade out, hostPort hairpin),
        once per agent. Only pods with hostPorts fail without it."""
        if self._nat_ready:
            return
        try:
            hostport.add_network(self.net.bridge, self.net.subnet)
            self._nat_ready = True
        except hostport.HostPortError as e:
            if required:
                raise RequestError("HostPortError", str(e)) from None
            log(f"warning: no NAT for the pod network (pods cannot reach out): {e}")

    def _host_ip(self) -> str | None:
        for addr in self.ipr.get_addr(family=socket.AF_INET):
            ip = addr.get_attr("IFA_ADDRESS")
            label = addr.get_attr("IFA_LABEL") or ""
            if not ip.startswith("127.") and label != self.net.bridge:
                return ip
        return str(self.ipam.gateway)

    def _write_etc_files(self, pod_dir: Path, name: str, ip: str) -> None:
        (pod_dir / "hostname").write_text(name + "\n")
        (pod_dir / "hosts").write_text(
            "# Kubernetes-managed hosts file (written by minipod).\n"
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            "fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\n"
            f"fe00::2\tip6-allrouters\n{ip}\t{name}\n")
        lines = []
        with contextlib.suppress(OSError):
            for line in Path("/etc/resolv.conf").read_text().splitlines():
                # a loopback resolver (systemd-resolved's stub) is unreachable in the pod
                if line.startswith("nameserver") and line.split()[1:2] and \
                        line.split()[1].startswith("127."):
                    continue
                lines.append(line)
        (pod_dir / "resolv.conf").write_text("\n".join(lines) + "\n")

    # ---- containers --------------------------------------------------------

    def pod_spec(self, record: dict) -> manifest.Pod:
        """The pod's validated manifest, parsed once per agent."""
        spec = self.specs.get(record_key(record))
        if spec is None or spec.raw != record["manifest"]:
            spec = manifest.load_object(record["manifest"], record.get("source", "<state>"))
            self.specs[record_key(record)] = spec
        return spec

    def container_of(self, record: dict, name: str) -> manifest.Container:
        pod = self.pod_spec(record)
        return next(c for c in pod.init_containers + pod.containers if c.name == name)

    def _container_spec(self, record: dict, name: str, image) -> ctr.ProcessSpec:
        pod = self.pod_spec(record)
        c = self.container_of(record, name)
        top = image.layer_dirs
        cdir = self.paths.container_dir(record["uid"], name)
        upper, work, merged = cdir / "upper", cdir / "work", cdir / "merged"
        # every start is a new container: a fresh upper dir over the image
        shutil.rmtree(upper, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        for d in (upper, work, merged):
            d.mkdir(parents=True, exist_ok=True)
        passwd = _read_in_layers(top, "etc/passwd")
        group = _read_in_layers(top, "etc/group")
        where = f'pod: "{pod.name}_{pod.namespace}({record["uid"]})", container: {name}'
        sec = security.prepare(security.plan_security(
            c.security_context, image.config.get("User"), passwd, group, where))
        # valueFrom and envFrom: ConfigError while an object or key is missing
        env_list, _ = configobjects.container_env(self.paths, record, pod, c)
        # the `kubernetes` Service's variables first: the container's own env wins
        service = serviceaccount.service_env(str(self.ipam.gateway),
                                             serviceaccount.api_port(self.paths))
        env = process.environment(image.config, service + env_list, pod.name,
                                  process.home(sec.uid, passwd))
        argv = process.argv(c.command, c.args, image.config, env)
        pod_dir = self.paths.pod_dir(record_key(record))
        binds = []
        written = {v.name for v in pod.volumes if v.source is not None}
        for vm in c.volume_mounts:
            if vm.name in written:  # configMap, secret, ...: read-only, as the kubelet does
                from dataclasses import replace
                vm = replace(vm, read_only=True)
            binds.append(volumes.bind_for(record["volumes"][vm.name], vm))
        token = serviceaccount.bind(record, c)
        if token is not None:
            binds.append(token)
        plan = mounts.plan([str(p) for p in top], str(upper), str(work), str(merged), {
            "/etc/hosts": str(pod_dir / "hosts"),
            "/etc/hostname": str(pod_dir / "hostname"),
            "/etc/resolv.conf": str(pod_dir / "resolv.conf"),
        }, binds)
        ns = {n: str(pod_dir / "ns" / n) for n in sandbox.SHARED}
        if record.get("pause"):
            ns["pid"] = f"/proc/{record['pause']['pid']}/ns/pid"
        return ctr.ProcessSpec(
            name=f"{record_key(record)}/{name}", namespaces=ns, rootfs=plan, argv=argv, env=env,
            cwd=c.working_dir or image.config.get("WorkingDir") or "/",
            stdout=str(self._output_path(record["uid"], name, "stdout")),
            stderr=str(self._output_path(record["uid"], name, "stderr")),
            uid=sec.uid, gid=sec.gid, groups=sec.groups, security=sec)

    def start_container(self, pod_name: str, name: str) -> None:
        """Start (or restart) one container; a failure becomes its status."""
        record = self.records[pod_name]
        if record.get("phase") == "Failed":
            return  # evicted: its containers stay terminated
        cs = _find(record, name)
        rc = RunningContainer(pod_name, name)
        if record.get("volumes"):   # configMap, secret, ... volumes: written before any start
            failed = podconfig.write_volumes(self.paths, record, self.pod_spec(record))
            if failed:
                return self._config_wait(pod_name, cs, "ContainerCreating", failed,
                                         "FailedMount")
        image = self._image_ready(pod_name, name)
        if image is None:  # pulling, or the policy forbids it: a waiting status
            self._save(pod_name)
            return
        cs["imageID"] = image.digest
        timings.mark(f"container {pod_name}/{name}: image looked up")
        try:
            try:
                spec = self._container_spec(record, name, image)
            except security.SecurityError as e:
                # the kubelet's status for a container it refuses to create
                cs.update(state="waiting", reason="CreateContainerConfigError", message=str(e))
                self.event(pod_name, "Failed", f"Error: {e}", warning=True)
                self._save(pod_name)
                return
            except configobjects.ConfigError as e:
                return self._config_wait(pod_name, cs, "CreateContainerConfigError", str(e),
                                         "Failed")
            # what exec, exec probes and hooks run with (a Secret's values: 0600 file)
            podconfig.save_env(self.paths, record, cs, spec.env, configobjects.uses_secret_env(
                self.container_of(record, name)))
            cs["user"] = {"uid": spec.uid, "gid": spec.gid, "groups": list(spec.groups)}
            timings.mark(f"container {pod_name}/{name}: upper dir, security, env, mount plan")
            c = self.container_of(record, name)
            cg = self.cgroups.create_container(record["cgroup"], name, _limits(c),
                                               c.security_context.privileged)
            cs["cgroup"] = cg
            spec.cgroup_procs = self.cgroups.join_paths(cg)
            timings.mark(f"container {pod_name}/{name}: cgroup")
            rc.writer = logs.LogWriter(self.paths.log_path(pod_name, name, cs["restartCount"]))
            self._open_pipes(rc)
            timings.mark(f"container {pod_name}/{name}: log file, output files")
            self.event(pod_name, "Created", f"Created container {name}")
            pid = ctr.start(spec)
        except (ctr.StartError, process.ProcessError, volumes.VolumeError, OSError) as e:
            self._close_pipes(rc, drain=True)
            step = getattr(e, "step", "create")
            log(f"pod {pod_name} container {name}: start failed at {step}: {e}")
            cs.update(state="terminated", reason="StartError", message=str(e),
                      exitCode=128, startedAt=None, finishedAt=now_iso(), pid=None)
            cs.pop("containerID", None)
            self.event(pod_name, "Failed", f"Error: {e}", warning=True)
            self._after_exit(pod_name, name)
            return
        cs.update(state="running", pid=pid, pidStart=state.proc_start_time(pid),
                  startedAt=now_iso(), containerID=f"{record['uid'][:8]}-{name}",
                  reason=None, message=None, exitCode=None, signal=None, finishedAt=None)
        cs.pop("configWait", None)
        rc.pid = pid
        self.live[(pod_name, name)] = rc
        self.by_pid[pid] = rc
        self.event(pod_name, "Started", f"Started container {name}")
        self._start_probes(pod_name, name, rc)
        timings.mark(f"container {pod_name}/{name}: pidfd, probes")
        self._save(pod_name)
        timings.mark(f"container {pod_name}/{name}: state saved (running)")

    def _config_wait(self, pod_name: str, cs: dict, reason: str, message: str,
                     event: str) -> None:
        """The container waits for a ConfigMap, Secret or key (the kubelet's
        reasons and messages); tried again in RETRY_SECONDS, or as soon as
        the object is put."""
        record = self.records[pod_name]
        cs.update(state="waiting", reason=reason, message=message, configWait=True)
        self.event(pod_name, event, message if event == "FailedMount" else f"Error: {message}",
                   warning=True)
        self._save(pod_name)
        key = (pod_name, cs["name"], record["uid"])
        if key not in self.config_timers:   # one timer per waiting container
            self.config_timers.add(key)
            self.call_later(podconfig.RETRY_SECONDS, self._config_timer, key)

    def _config_timer(self, key: tuple[str, str, str]) -> None:
        self.config_timers.discard(key)
        self._retry_config(*key)

    # ---- container output: files that never block ---------------------------
    #
    # A container's stdout and stderr are two plain files, CDIR/stdout and
    # CDIR/stderr (CDIR = LIB/containers/UID/NAME), which it holds open with
    # O_APPEND: a write never blocks and never fails with EPIPE, whether an
    # agent runs or not (a pipe blocks its writer once 64 KiB wait unread, so
    # a server that logs froze while the agent was down). The agent reads
    # each file from where it left off, when inotify says it grew, and turns
    # the bytes into CRI lines (logs.LogWriter: the timestamps are those of
    # reading, so output written while no agent ran is stamped when the next
    # agent reads it). CDIR/output.pos keeps how far it got, up to the last
    # full line, so the next agent continues there: no line is lost (one
    # killed between writing lines and saving the position writes those lines
    # twice). What is read is given back to the file system with
    # fallocate(PUNCH_HOLE): the file keeps its size, not its blocks, so the
    # disk holds only output that no agent read yet.
    # Pods started by an agent before this had FIFOs in their pod dir; those
    # are still read the old way until their container ends.

    PUNCH_EVERY = 1 << 20       # give read blocks back once this much was read
    DRAIN_BUDGET = 4 << 20      # bytes per turn of the loop, then the others' turn

    def _output_path(self, uid: str, name: str, stream: str) -> Path:
        return self.paths.container_dir(uid, name) / stream

    def _open_pipes(self, rc: RunningContainer, fresh: bool = True) -> None:
        """Open the container's output for reading: fresh=True (a start)
        makes new empty files first; otherwise (adoption) it opens what the
        container writes to and continues from the saved position."""
        uid = self.records[rc.pod]["uid"]
        fifo = self.paths.pod_dir(rc.pod) / f"{rc.name}.stdout"
        if not fresh and not self._output_path(uid, rc.name, "stdout").exists() \
                and fifo.exists():
            return self._open_fifos(rc)
        if getattr(self, "_inotify", None) is None:
            from minipod import libc
            self._inotify = libc.inotify_init1()
            self._out_watch: dict[int, tuple[RunningContainer, int]] = {}
            self.sel.register(self._inotify, selectors.EVENT_READ, self._on_output)
        from minipod import libc
        cdir = self.paths.container_dir(uid, rc.name)
        cdir.mkdir(parents=True, exist_ok=True)
        pos_path = cdir / "output.pos"
        saved = [0, 0]
        if fresh:
            for stream in ("stdout", "stderr"):
                path = cdir / stream
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                                 0o600))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(pos_path)
        else:
            with contextlib.suppress(OSError, ValueError):
                saved = [int(n) for n in pos_path.read_text().split()[:2]] + [0, 0]
        rc.pos_fd = os.open(pos_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        for i, stream in enumerate(("stdout", "stderr")):
            path = cdir / stream
            # O_RDWR: fallocate needs a writable fd; we only ever pread
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            rc.fifo_fds[fd] = stream
            rc.out_pos[fd] = saved[i]
            # watch first, then read: nothing written in between is missed
            wd = libc.inotify_add_watch(self._inotify, str(path), libc.IN_MODIFY)
            rc.out_wd[fd] = wd
            self._out_watch[wd] = (rc, fd)
        if not fresh:
            for fd in list(rc.fifo_fds):
                self._drain(rc, fd)     # what it wrote while no agent ran

    def _open_fifos(self, rc: RunningContainer) -> None:
        """A container started before output files: its FIFOs, read+write and
        non-blocking (as a writer ourselves we never see end-of-file)."""
        pod_dir = self.paths.pod_dir(rc.pod)
        for stream in ("stdout", "stderr"):
            fd = os.open(pod_dir / f"{rc.name}.{stream}", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            rc.fifo_fds[fd] = stream
            self.sel.register(fd, selectors.EVENT_READ, self._on_output)

    def _on_output(self, fd: int) -> None:
        """inotify says output files grew (or a legacy FIFO has data)."""
        if fd == getattr(self, "_inotify", None):
            ready = []
            while True:
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    break
                from minipod import libc
                for wd, _mask in libc.inotify_events(data):
                    if wd == -1:      # IN_Q_OVERFLOW: events were dropped; read all
                        ready += [t for t in self._out_watch.values() if t not in ready]
                    target = self._out_watch.get(wd)
                    if target is not None and target not in ready:
                        ready.append(target)
            for rc, out_fd in ready:
                if out_fd in rc.fifo_fds:
                    self._drain(rc, out_fd)
            return
        rc = next((r for r in self.live.values() if fd in r.fifo_fds), None)
        if rc is None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(fd)
            return
        self._drain(rc, fd)

    def _drain(self, rc: RunningContainer, fd: int) -> None:
        """Turn what the container wrote since the last read into log lines."""
        if fd not in rc.out_pos:            # a legacy FIFO
            while True:
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    return
                if not data:
                    return
                rc.writer.write(rc.fifo_fds[fd], data)
        stream = rc.fifo_fds[fd]
        pos = rc.out_pos[fd]
        if os.fstat(fd).st_size < pos:
            # the container opened its /dev/stdout again with O_TRUNC (a
            # shell's `> /dev/stdout`): what it writes starts again at 0
            log(f"pod {rc.pod} container {rc.name}: {stream} was truncated; reading it "
                "from the start")
            pos = 0
        budget = self.DRAIN_BUDGET
        while budget > 0:
            # Read data, never holes: a hole is not output (the container
            # grew its file with ftruncate, which a pipe would not allow).
            try:
                data_at = os.lseek(fd, pos, os.SEEK_DATA)
                # skip only what reads as zeros: a file system may show a
                # region being written as a hole for a moment, and output
                # must never be stepped over (then it is read as data below)
                misreported = data_at > pos and not _reads_as_zeros(fd, pos, data_at)
                if not misreported:
                    pos = max(pos, data_at)
            except OSError as e:
                if e.errno != errno.ENXIO:  # ENXIO: only hole (or nothing) after pos
                    raise
                data_at = os.fstat(fd).st_size
                if data_at <= pos or _reads_as_zeros(fd, pos, data_at):
                    pos = max(pos, data_at)
                    break
                misreported = True          # bytes the file system calls a hole
            size = os.fstat(fd).st_size             # first: an append after it makes end > size
            end = data_at if misreported else os.lseek(fd, pos, os.SEEK_HOLE)  # data's end
            while pos < end and budget > 0:
                data = os.pread(fd, min(65536, end - pos), pos)
                if not data:
                    break
                pos += len(data)
                if pos == end and end < size:
                    # the zeros that fill the last block before a hole are
                    # not output either (appends never leave holes)
                    data = data.rstrip(b"\0")
                rc.writer.write(stream, data)
                budget -= len(data) or 1
            if pos >= size:
                break
        rc.out_pos[fd] = pos
        self._save_output_pos(rc)
        if budget <= 0:                     # more to read: after the others' turn
            self.call_later(0, self._drain_more, rc, fd)
        done = pos - len(rc.writer.partial.get(stream, b""))
        block = done - done % (64 << 10)
        if block - rc.punched.get(fd, 0) >= self.PUNCH_EVERY:
            from minipod import libc
            try:
                libc.punch_hole(fd, 0, block, f"{stream} of {rc.pod}/{rc.name}")
                rc.punched[fd] = block
            except OSError as e:
                # a file system without holes: the file just keeps its blocks
                rc.punched[fd] = float("inf")
                log(f"pod {rc.pod} container {rc.name}: cannot free read output: {e}")

    def _drain_more(self, rc: RunningContainer, fd: int) -> None:
        if fd in rc.fifo_fds and rc.writer is not None:
            self._drain(rc, fd)

    def _save_output_pos(self, rc: RunningContainer) -> None:
        """CDIR/output.pos: how far each stream was read, up to its last
        full line (a partial line is read again by the next agent)."""
        if rc.pos_fd is None:
            return
        done = {stream: rc.out_pos[fd] - len(rc.writer.partial.get(stream, b""))
                for fd, stream in rc.fifo_fds.items() if fd in rc.out_pos}
        os.pwrite(rc.pos_fd, b"%020d %020d\n" % (done.get("stdout", 0),
                                                  done.get("stderr", 0)), 0)

    def _close_pipes(self, rc: RunningContainer, drain: bool) -> None:
        """Stop reading a container's output. If the container has ended
        (it is no longer live), the last partial lines are written and its
        output files removed; if it still runs (the agent stops), its files
        and saved positions stay for the next agent."""
        ended = self.live.get((rc.pod, rc.name)) is not rc
        for fd in list(rc.fifo_fds):
            if drain and rc.writer:
                self._drain(rc, fd)
            wd = rc.out_wd.pop(fd, None)
            if wd is not None:
                from minipod import libc
                self._out_watch.pop(wd, None)
                with contextlib.suppress(OSError):
                    libc.inotify_rm_watch(self._inotify, wd)
            else:
                with contextlib.suppress(KeyError, ValueError):
                    self.sel.unregister(fd)
            os.close(fd)
        had_files = bool(rc.out_pos)
        rc.fifo_fds.clear()
        rc.out_pos.clear()
        rc.punched.clear()
        if rc.pos_fd is not None:
            os.close(rc.pos_fd)
            rc.pos_fd = None
        if rc.writer:
            if not ended and had_files:
                rc.writer.partial = {k: b"" for k in rc.writer.partial}  # read again later
            rc.writer.close()
            rc.writer = None
        if ended and had_files and rc.pod in self.records:
            cdir = self.paths.container_dir(self.records[rc.pod]["uid"], rc.name)
            for name in ("stdout", "stderr", "output.pos"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(cdir / name)

    def _reap(self) -> None:
        """waitpid every exited child: containers (adopted by subreaping)
        and the short-lived helper children."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            rc = self.by_pid.get(pid)
            if rc is not None:
                code = os.waitstatus_to_exitcode(status)
                self._container_exited(rc, code)
            elif pid in self.pull_pids:
                self._pull_done(pid, os.waitstatus_to_exitcode(status))
            elif pid in self.checks:
                fd, done = self.checks.pop(pid)
                try:
                    message = os.read(fd, 4096).decode(errors="replace")
                except BlockingIOError:
                    message = ""
                os.close(fd)
                done(os.waitstatus_to_exitcode(status) == 0, message)

    def _on_pidfd(self, fd: int) -> None:
        rc = next((r for r in self.live.values() if r.pidfd == fd), None)
        self.sel.unregister(fd)
        os.close(fd)
        if rc is not None:
            rc.pidfd = None
            self._container_exited(rc, None)

    def _container_exited(self, rc: RunningContainer, code: int | None) -> None:
        """Record the exit (code None: not our child, so unknowable)."""
        self.by_pid.pop(rc.pid, None)
        self.live.pop((rc.pod, rc.name), None)
        self._close_pipes(rc, drain=True)
        record = self.records.get(rc.pod)
        if record is None:
            return
        cs = _find(record, rc.name)
        cs.update(state="terminated", finishedAt=now_iso(), pid=None)
        oom = False
        if cs.get("cgroup"):
            with contextlib.suppress(OSError):
                oom = self.cgroups.oom_killed(cs["cgroup"]) > 0
        if oom:
            cs.update(exitCode=137 if code is None else (128 - code if code < 0 else code),
                      signal=9, reason="OOMKilled",
                      message="the container went over its memory limit")
        elif code is None:
            cs.update(exitCode=None, reason="Unknown",
                      message="the container ended while it was not the agent's child; "
                              "its exit code cannot be known")
        elif code < 0:
            cs.update(exitCode=128 - code, signal=-code, reason="Error")
        else:
            cs.update(exitCode=code, reason="Completed" if code == 0 else "Error")
        log(f"pod {rc.pod} container {rc.name} exited: {cs['exitCode']} ({cs['reason']})")
        self._after_exit(rc.pod, rc.name)

    def _after_exit(self, pod_name: str, name: str) -> None:
        """restartPolicy decides whether; the kubelet's back-off decides when
        (backoff.py): the first restart after an exit is at once, from the
        second on the container waits in CrashLoopBackOff, 10 s doubling to
        5 min, counted from its exit."""
        record = self.records[pod_name]
        cs = _find(record, name)
        if record.get("deletionTimestamp"):
            self._save(pod_name)
            self._maybe_finish_delete(pod_name)
            return
        if cs.pop("respec", False):             # killed for a new image: back at once
            cs["exitedAt"] = time.time()
            self._restart(pod_name, name, record["uid"], True)
            self._save(pod_name)
            return
        if podstatus.will_restart(record, cs):
            exited = time.time()
            cs["exitedAt"] = exited
            delay = backoff.wait(cs.get("backoff"), exited, exited, BACKOFF_MAX)
            if delay > 0:
                self.event(pod_name, "BackOff", f"Back-off restarting failed container {name} "
                                                f"in pod {record['name']}", warning=True)
                cs.update(state="waiting", reason="CrashLoopBackOff",
                          message=f"back-off {backoff.go_duration(delay)} restarting failed "
                                  f"container={name} pod={record['name']}",
                          lastState=self._exit_as_last_state(cs), restartAt=exited + delay)
                self.call_later(delay, self._restart, pod_name, name, record["uid"], True)
            else:
                self._restart(pod_name, name, record["uid"], True)  # a failed start comes back
        else:
            self.sync(pod_name)  # an init container done: start the next
        if podstatus.main_containers_done(record):
            self._stop_sidecars(pod_name)
        self._save(pod_name)

    def _stop_sidecars(self, pod_name: str) -> None:
        """Every main container has ended for good: sidecars end too (SIGTERM)."""
        record = self.records[pod_name]
        for cs in record.get("initContainers", []):
            if cs.get("sidecar") and not cs.get("stopping"):
                cs["stopping"] = True
                rc = self.live.get((pod_name, cs["name"]))
                if rc is not None:
                    self.event(pod_name, "Killing", f"Stopping container {cs['name']}")
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(rc.pid, signal.SIGTERM)
                    self.call_later(record.get("terminationGracePeriodSeconds", 30),
                                    self._kill_one, pod_name, cs["name"], rc.pid)

    def _kill_one(self, pod_name: str, name: str, pid: int) -> None:
        rc = self.live.get((pod_name, name))
        if rc is not None and rc.pid == pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _restart(self, pod_name: str, name: str, uid: str, due: bool = False) -> None:
        """Start an exited container again once its back-off is over (the
        kubelet's doBackOff, then Next: the entry grows for the next exit).
        Not `due` (a new agent adopting a back-off): wait what is left of it."""
        record = self.records.get(pod_name)
        if record is None or record["uid"] != uid or record.get("deletionTimestamp"):
            return
        cs = _find(record, name)
        if cs["state"] == "running" or (cs["state"] == "waiting"
                                        and cs.get("reason") != "CrashLoopBackOff"):
            return
        now = time.time()
        entry = cs.get("backoff") if isinstance(cs.get("backoff"), dict) else {}
        left = min(cs.get("restartAt", 0) - now, entry.get("seconds", BACKOFF_MAX))
        if not due and left > 0:  # never more than the back-off, whatever the clock did
            self.call_later(left, self._restart, pod_name, name, uid, True)
            return
        if cs["state"] == "terminated":
            cs["lastState"] = self._exit_as_last_state(cs)
        cs["backoff"] = backoff.next_entry(cs.get("backoff"), cs.get("exitedAt", now), now,
                                           BACKOFF_BASE, BACKOFF_MAX)
        cs.pop("restartAt", None)
        cs["restartCount"] = cs.get("restartCount", 0) + 1
        self.start_container(pod_name, name)

    @staticmethod
    def _exit_as_last_state(cs: dict) -> dict:
        return {k: cs.get(k) for k in ("exitCode", "signal", "reason", "message",
                                       "startedAt", "finishedAt", "state")}

    # ---- local storage limits: measure, evict (runtime/agent/eviction.py) --------

    def _eviction_tick(self) -> None:
        """Every EVICTION_PERIOD: measure the pods that have storage limits,
        in a child (one at a time); `_evict` those over a limit."""
        self.call_later(eviction.EVICTION_PERIOD, self._eviction_tick)
        if self.measuring is not None:
            return  # the last walk is still going: never two at once
        checks = []
        for name, record in self.records.items():
            if record.get("deletionTimestamp") or record.get("phase") != "Running":
                continue
            uid = record["uid"]
            names = [cs["name"] for cs in record.get("initContainers", []) + record["containers"]]
            try:
                checks += [dataclasses.replace(c, pod=name) for c in eviction.plan(   # by key
                    self.pod_spec(record), uid, record.get("volumes") or {},
                    {n: str(self.paths.container_dir(uid, n) / "upper") for n in names},
                    {n: str(self.paths.pod_logs / name / n) for n in names})]
            except Exception as e:  # one bad record must not hide the others' limits
                log(f"pod {name}: cannot plan its storage checks: {e}")
        if not checks:
            return
        pid, fd = eviction.fork_measure(checks)
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
        if record is None or record["uid"] != check.uid or record.get("deletionTimestamp") \
                or record.get("phase") != "Running":
            return
        log(f"pod {check.pod}: evicted ({used} bytes used): {check.message}")
        record.update(phase="Failed", reason=eviction.REASON, message=check.message)
        self.event(check.pod, eviction.REASON, check.message, warning=True)
        for rc in self._live_of(check.pod):
            self.event(check.pod, "Killing", f"Stopping container {rc.name}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(rc.pid, signal.SIGTERM)
            self.call_later(eviction.EVICTION_GRACE, self._kill_one, check.pod, rc.name, rc.pid)
        self._save(check.pod)

    # ---- probes and lifecycle hooks ----------------------------------------

    def spawn_check(self, pod_name: str, name: str, handler, timeout: float, done) -> None:
        """Run one probe or hook check in a forked child; `done(ok, message)`
        is called when it is reaped."""
        rc = self.live.get((pod_name, name))
        record = self.records[pod_name]
        target = probes.Target(record, dict(_find(record, name), pid=rc.pid),
                               self.paths) if rc else None
        pid, fd = probes.fork_check(handler, record.get("podIP"), target, timeout)
        os.set_blocking(fd, False)
        self.checks[pid] = (fd, done)

    def _start_probes(self, pod_name: str, name: str, rc: RunningContainer,
                      post_start: bool = True) -> None:
        record = self.records[pod_name]
        cs = _find(record, name)
        c = self.container_of(record, name)
        cs["started"] = c.startup_probe is None
        cs["ready"] = c.readiness_probe is None
        kinds = ["startup"] if c.startup_probe else ["liveness", "readiness"]
        for kind in kinds:
            self._schedule_probe(pod_name, name, kind, rc)
        hook = c.lifecycle.post_start
        if hook is not None and post_start:
            def after_hook(ok: bool, message: str, pid=rc.pid) -> None:
                live = self.live.get((pod_name, name))
                if not ok and live is not None and live.pid == pid:
                    self.event(pod_name, "FailedPostStartHook", message, warning=True)
                    self._kill_container(pod_name, name, "FailedPostStartHook")
            self.spawn_check(pod_name, name, hook,
                             record.get("terminationGracePeriodSeconds", 30), after_hook)

    def _schedule_probe(self, pod_name: str, name: str, kind: str, rc: RunningContainer) -> None:
        probe = getattr(self.container_of(self.records[pod_name], name), f"{kind}_probe")
        if probe is None:
            return
        rc.probes[kind] = probes.ProbeState(kind, str(rc.pid))
        self.call_later(probe.initial_delay_seconds, self._probe_tick, pod_name, name, kind,
                        rc.pid)

    def _probe_tick(self, pod_name: str, name: str, kind: str, pid: int) -> None:
        """One period of one probe (the kubelet's prober worker). Liveness and
        startup probes stop while the container is being killed and once its
        pod is being deleted; readiness goes on until the container ends."""
        rc = self.live.get((pod_name, name))
        record = self.records.get(pod_name)
        if rc is None or rc.pid != pid or record is None:
            return  # the container instance this probe was for is gone
        if kind != "readiness" and (rc.stopping or record.get("deletionTimestamp")):
            return
        if kind == "startup" and _find(record, name).get("started"):
            return
        probe = getattr(self.container_of(record, name), f"{kind}_probe")
        st = rc.probes[kind]
        if not st.running:
            st.running = True
            self.spawn_check(pod_name, name, probe.handler, probe.timeout_seconds,
                             lambda ok, msg: self._probe_result(pod_name, name, kind, pid, ok, msg))
        self.call_later(probe.period_seconds, self._probe_tick, pod_name, name, kind, pid)

    def _probe_result(self, pod_name: str, name: str, kind: str, pid: int, ok: bool,
                      message: str) -> None:
        rc = self.live.get((pod_name, name))
        if rc is None or rc.pid != pid:
            return
        record = self.records[pod_name]
        cs = _find(record, name)
        probe = getattr(self.container_of(record, name), f"{kind}_probe")
        st = rc.probes[kind]
        st.running = False
        if kind != "readiness" and (rc.stopping or record.get("deletionTimestamp")):
            return  # a check that was in flight when the kill began: no second verdict
        if ok:
            st.successes, st.failures = st.successes + 1, 0
        else:
            st.successes, st.failures = 0, st.failures + 1
            self.event(pod_name, "Unhealthy", f"{kind.capitalize()} probe failed: {message}",
                       warning=True)
        if kind == "readiness":
            if ok and st.successes >= probe.success_threshold:
                cs["ready"] = True
            elif not ok and st.failures >= probe.failure_threshold:
                cs["ready"] = False
        elif kind == "startup" and ok:
            cs["started"] = True
            for k in ("liveness", "readiness"):
                self._schedule_probe(pod_name, name, k, rc)
        elif not ok and st.failures >= probe.failure_threshold:
            # kuberuntime's computePodActions: ", will be restarted" only if it will be
            restart = "" if record.get("restartPolicy") == "Never" and not cs.get("sidecar") \
                else ", will be restarted"
            self.event(pod_name, "Killing", f"Container {name} failed {kind} probe{restart}")
            st.failures = 0
            self._kill_container(pod_name, name, f"{kind} probe failed",
                                 probe.termination_grace_period_seconds)
        self._save(pod_name)

    def _kill_container(self, pod_name: str, name: str, why: str,
                        grace: int | None = None) -> None:
        """SIGTERM one container, SIGKILL after the grace period; its exit
        then follows restartPolicy like any other. Once: a container being
        killed is not killed again, and its liveness and startup probes hold
        (the kubelet's worker onHold) until the next container starts."""
        rc = self.live.get((pod_name, name))
        if rc is None or rc.stopping:
            return
        rc.stopping = True
        if grace is None:
            grace = self.records[pod_name].get("terminationGracePeriodSeconds", 30)
        log(f"pod {pod_name} container {name}: stopping ({why})")
        with contextlib.suppress(ProcessLookupError):
            os.kill(rc.pid, signal.SIGTERM)
        self.call_later(grace, self._kill_one, pod_name, name, rc.pid)

    # ---- deletion ----------------------------------------------------------

    def delete_pod(self, name: str, grace: int | None) -> None:
        """SIGTERM every container, SIGKILL after the grace period, then
        tear the sandbox down (kubelet's killPod)."""
        record = self.records[name]
        if grace is None:
            grace = record.get("terminationGracePeriodSeconds", 30)
        first = not record.get("deletionTimestamp")
        record.setdefault("deletionTimestamp", now_iso())
        self._save(name)
        timings.mark("agent: state saved (deletionTimestamp)")
        faults.point("delete:marked")
        if first or grace == 0:
            for rc in self._live_of(name):
                self.event(name, "Killing", f"Stopping container {rc.name}")
                hook = self.container_of(record, rc.name).lifecycle.pre_stop
                if hook is not None and grace > 0:
                    # preStop first, inside the grace period; SIGTERM after it
                    def then_term(ok, message, rc=rc):
                        if not ok:
                            self.event(name, "FailedPreStopHook", message, warning=True)
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(rc.pid, signal.SIGTERM)
                    self.spawn_check(name, rc.name, hook, grace, then_term)
                    continue
                with contextlib.suppress(ProcessLookupError):
                    os.kill(rc.pid, signal.SIGKILL if grace == 0 else signal.SIGTERM)
                explain.step(f"kill -{'KILL' if grace == 0 else 'TERM'} {rc.pid}",
                             f"container {rc.name}: ask its PID 1 to stop"
                             + (f"; SIGKILL after {grace}s if it does not" if grace else ""))
            self.call_later(grace, self._kill_all, name, record["uid"])
            timings.mark("signal the containers")
        self._maybe_finish_delete(name)

    def _live_of(self, name: str) -> list[RunningContainer]:
        return [rc for (pod, _), rc in self.live.items() if pod == name]

    def _kill_all(self, name: str, uid: str) -> None:
        record = self.records.get(name)
        if record is None or record["uid"] != uid:
            return
        for rc in self._live_of(name):
            log(f"pod {name} container {rc.name}: grace period over, SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.kill(rc.pid, signal.SIGKILL)

    def _maybe_finish_delete(self, name: str) -> None:
        if self._live_of(name):
            return
        record = self.records.pop(name)
        self.specs.pop(name, None)
        steps = self.explain_delete.pop(name, None)
        if steps is not None:
            explain.start()
        marks = self.timings_delete.pop(name, None)
        if marks is not None and not timings.active():   # not active: the exits came later
            timings.start(marks)
            timings.mark("wait for the containers to exit")
        try:
            self.teardown(record)
            answer = {"ok": True, "name": name}
        except Exception as e:
            log(f"teardown of pod {name} failed:\n" + traceback.format_exc())
            answer = {"ok": False, "code": "InternalError",
                      "error": f"pod {name} deleted with errors: {e}"}
        if steps is not None:
            answer["explain"] = steps + explain.stop()
        if marks is not None:
            answer["timings"] = timings.stop()
        for conn in self.delete_waiters.pop(name, []):
            self._answer(conn, answer)
        if not self.records:
            self.idle_since = time.monotonic()
        self._finish_namespace(record.get("namespace") or namespaces.DEFAULT)

    def teardown(self, record: dict) -> None:
        """Undo everything create_pod made; each step tolerates 'already gone'.
        Every step runs; the first error is raised at the end."""
        name, uid = record_key(record), record["uid"]
        pod_dir = self.paths.pod_dir(name)
        errors = []
        # What the pod was given is known from its record: no nft listing
        # for a pod without hostPorts, nor for its filter (two nft runs less)
        spec = (record.get("manifest") or {}).get("spec") or {}
        ports = any(p.get("hostPort") for c in spec.get("containers", []) +
                    spec.get("initContainers", []) for p in c.get("ports") or [])
        known = None
        if record.get("podIP") and record.get("hostIfname"):
            known = antispoof.Filter(uid, record["hostIfname"],
                                     bridge.mac_for_ip(record["podIP"]), record["podIP"])
        paths = self.paths
        steps = [
            ("remove hostPort rules", lambda: owners.network.remove_hostports(paths, uid, ports)),
            ("remove anti-spoofing filter", lambda: owners.network.remove_filter(paths, uid,
                                                                                  known)),
            ("remove veth", lambda: owners.network.remove_veth(
                self.ipr, record.get("hostIfname") or bridge.host_ifname(uid))),
            ("release IP", lambda: (self.ipam.release(uid), explain.step(
                f"rm {self.paths.ipam}/{record.get('podIP')}", "return the pod's IP"))),
            ("unpin namespaces", lambda: owners.pins.remove(paths, name)),
            ("stop the pause process", lambda: owners.processes.stop_pause(record)),
            ("remove cgroups", lambda: owners.processes.remove_cgroup(self.cgroups, uid)),
            ("unmount volumes", lambda: owners.dirs.unmount_volumes(paths, uid)),
            ("remove container dirs", lambda: owners.dirs.remove_container_dir(paths, uid)),
            ("remove logs", lambda: owners.dirs.remove_log_dir(paths, name)),
            ("remove state", lambda: owners.dirs.remove_pod_dir(paths, name)),
        ]
        for what, step in steps:
            faults.point(f"teardown:{what}")
            try:
                step()
            except Exception as e:
                errors.append(f"{what}: {e}")
            timings.mark(what)
        explain.step(f"rm -rf {self.paths.containers / uid} {self.paths.pod_logs / name} {pod_dir}",
                     "the containers' upper dirs, the logs, the pod's state: nothing stays")
        log(f"pod {name} deleted" + (f" with errors: {errors}" if errors else ""))
        if errors:
            raise RuntimeError("; ".join(errors))

    # ---- adoption after a restart ------------------------------------------

    def adopt_all(self) -> None:
        """Rebuild the in-memory view from the state records and the kernel."""
        records, errors = state.read_all(self.paths.pods)
        for e in errors:
            log(e)
        # hostPort rules and cgroups of vanished pods: serve()'s gc.run, by their owners
        for record in records:
            name = record_key(record)
            self.records[name] = record
            if record.get("phase") == "Pending":
                # killed half-way through creation: remove what was made
                log(f"pod {name} was half-created; removing it")
                self.records.pop(name)
                with contextlib.suppress(Exception):
                    self.teardown(record)
                continue
            try:   # again: the table may be gone, or older than this agent
                antispoof.add(record["uid"], record["hostIfname"],
                              bridge.mac_for_ip(record["podIP"]), record["podIP"],
                              instance=self.paths.identity.tag)
            except (antispoof.FilterError, KeyError, ValueError) as e:
                log(f"pod {name}: cannot write its anti-spoofing filter again: {e}")
            ended = []
            for cs in record.get("initContainers", []) + record.get("containers", []):
                if cs["state"] == "running":
                    if not self._adopt(record, cs):
                        ended.append(cs["name"])
                elif cs["state"] == "waiting" and cs.get("configWait"):
                    self.call_later(0, self._retry_config, name, cs["name"], record["uid"])
                elif cs["state"] == "waiting" and cs.get("reason") == "CrashLoopBackOff":
                    self.call_later(BACKOFF_BASE, self._restart, name, cs["name"], record["uid"])
                elif cs["state"] == "waiting" and cs.get("reason") in (
                        "ErrImagePull", "ImagePullBackOff") or (
                        cs.get("reason") == "ContainerCreating" and cs.get("restartCount")):
                    self.call_later(0, self._retry_pull, name, cs["name"], record["uid"])
            # exits only once every live container is adopted: a pod being
            # deleted must not be torn down while one of them still runs
            for cname in ended:
                if name in self.records:
                    self._after_exit(name, cname)
            if name not in self.records:
                continue                  # its deletion finished just now
            self._save(name)
            if record.get("deletionTimestamp"):
                self.delete_pod(name, 0)
            elif record.get("phase") == "Failed":
                for rc in self._live_of(name):  # evicted, and the last agent died
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(rc.pid, signal.SIGKILL)
            else:
                self.call_later(0, self.sync, name)   # e.g. a pull the dead agent began

    def _adopt(self, record: dict, cs: dict) -> bool:
        rc = RunningContainer(record_key(record), cs["name"])
        pid = cs.get("pid")
        if state.alive(pid, cs.get("pidStart")):
            try:
                rc.pidfd = os.pidfd_open(pid)
            except ProcessLookupError:
                rc.pidfd = None
        if rc.pidfd is None:
            # what it wrote before it ended, while no agent ran, is still logged
            rc.writer = logs.LogWriter(self.paths.log_path(rc.pod, rc.name,
                                                           cs.get("restartCount", 0)))
            with contextlib.suppress(OSError):
                self._open_pipes(rc, fresh=False)
            self._close_pipes(rc, drain=True)
            cs.update(state="terminated", exitCode=None, reason="Unknown", pid=None,
                      message="the container ended while the agent was not running; "
                              "its exit code is unknown", finishedAt=now_iso())
            return False
        rc.pid = pid
        rc.writer = logs.LogWriter(self.paths.log_path(rc.pod, rc.name, cs.get("restartCount", 0)))
        self._open_pipes(rc, fresh=False)
        self.live[(rc.pod, rc.name)] = rc
        self.by_pid[pid] = rc
        self.sel.register(rc.pidfd, selectors.EVENT_READ, self._on_pidfd)
        self._start_probes(rc.pod, rc.name, rc, post_start=False)
        log(f"re-adopted pod {rc.pod} container {rc.name} (pid {pid})")
        return True

    def event(self, pod_name: str, reason: str, message: str, warning: bool = False) -> None:
        """Record a Kubernetes-style event on the pod (shown by `describe`).
        A repeat of the last same reason and message only bumps its count."""
        record = self.records.get(pod_name)
        if record is None:
            return
        events = record.setdefault("events", [])
        now = now_iso()
        for e in events[-5:]:
            if e["reason"] == reason and e["message"] == message:
                e["count"] += 1
                e["lastTimestamp"] = now
                return
        events.append({"type": "Warning" if warning else "Normal", "reason": reason,
                       "message": message, "count": 1, "firstTimestamp": now,
                       "lastTimestamp": now})
        del events[:-MAX_EVENTS]

    def _save(self, name: str) -> None:
        record = self.records.get(name)
        if record is not None and self.paths.pod_dir(name).exists():
            state.write(self.paths.pod_dir(name), record)

    # ---- namespaces (runtime/namespaces.py) ----------------------------------

    def op_namespace_create(self, request, conn) -> dict:
        """Make namespace NAME (RUN/namespaces/NAME.json); AlreadyExists if it is there."""
        try:
            record = namespaces.create(self.paths, request.get("name"),
                                       request.get("labels"), request.get("annotations"))
        except namespaces.NamespaceError as e:
            raise RequestError(e.code, str(e)) from None
        log(f"namespace {record['name']} created")
        return {"ok": True, "namespace": record}

    def op_namespace_update(self, request, conn) -> dict:
        """Set a namespace's labels and annotations (the API server checked the rest)."""
        try:
            record = namespaces.update(self.paths, request.get("name") or "",
                                       request.get("labels"), request.get("annotations"))
        except namespaces.NamespaceError as e:
            raise RequestError(e.code, str(e)) from None
        return {"ok": True, "namespace": record}

    def op_namespace_delete(self, request, conn) -> dict:
        """Namespace NAME goes Terminating at once, then each of its pods is
        deleted with its own grace period; once the last is gone, so is the
        namespace (the namespace controller's order). Answers at once with
        the Terminating record."""
        name = request.get("name") or ""
        try:
            record = namespaces.mark_terminating(self.paths, name, now_iso())
        except namespaces.NamespaceError as e:
            raise RequestError(e.code, str(e)) from None
        log(f"namespace {name}: deleting its pods")
        self._delete_namespace_pods(name)
        gone = self._finish_namespace(name)
        return {"ok": True, "namespace": record, "gone": gone}

    def _delete_namespace_pods(self, ns: str) -> None:
        for key, record in list(self.records.items()):
            if (record.get("namespace") or namespaces.DEFAULT) == ns and key in self.records \
                    and not record.get("deletionTimestamp"):
                self.delete_pod(key, None)

    def _finish_namespace(self, ns: str) -> bool:
        """Remove a Terminating namespace once it holds no pod; True if it is gone."""
        if any((r.get("namespace") or namespaces.DEFAULT) == ns for r in self.records.values()):
            return False
        try:
            if (namespaces.read(self.paths, ns) or {}).get("deletionTimestamp"):
                for resource, in_ns, name, _ in configobjects.scan(self.paths):
                    if in_ns == ns:     # its ConfigMaps and Secrets go with it
                        configobjects.remove(self.paths, resource, ns, name)
            gone = namespaces.remove_if_terminating(self.paths, ns)
        except OSError as e:
            log(f"namespace {ns}: cannot remove it: {e}")
            return False
        if gone:
            log(f"namespace {ns} deleted")
        return gone

    def _resume_namespace_deletions(self) -> None:
        """A namespace the last agent was deleting: delete the rest of it."""
        for record in namespaces.read_all(self.paths):
            if record.get("deletionTimestamp"):
                self._delete_namespace_pods(record["name"])
                self._finish_namespace(record["name"])


def _limits(c: manifest.Container) -> cgroups.Limits:
    return cgroups.Limits(cpu_limit_milli=c.resources.cpu_limit_milli,
                          cpu_request_milli=c.resources.cpu_request_milli,
                          memory_limit=c.resources.memory_limit)


def _find(record: dict, name: str) -> dict:
    return next(c for c in record.get("initContainers", []) + record["containers"]
                if c["name"] == name)


def _reads_as_zeros(fd: int, start: int, end: int, probe: int = 64 << 10) -> bool:
    """Does [start, end) of fd read as zeros (a hole)? Its first and last
    `probe` bytes are read, so a 1 GiB hole costs two small reads."""
    spans = [(start, min(end, start + probe)), (max(start, end - probe), end)]
    return all(not os.pread(fd, b - a, a).strip(b"\0") for a, b in spans if b > a)


def _read_in_layers(layers: list[Path], rel: str) -> str:
    """A file of the image as the container will see it: the top layer wins."""
    for layer in reversed(layers):
        p = layer / rel
        if p.is_file() and not p.is_symlink():
            return p.read_text(errors="replace")
    return ""


def main(paths: Paths | None = None) -> int:
    """`minipod agent`: serve in the foreground until stopped or idle."""
    paths = paths or Paths()
    try:
        return Agent(paths).serve()
    except OSError as e:
        log(f"agent failed: {e}")
        return 1
