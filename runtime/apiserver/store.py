"""Pods, Events and Namespaces as API objects, with a resourceVersion-ordered change log.

The agent is the only writer of pod state (one JSON record per pod,
runtime/state.py); this store reads those records, turns each into the Pod
object `minipod get pod X -o json` prints (runtime/api/podstatus.py, with
state.refreshed's kernel check of running containers) and notices changes when the
kernel says the state directory changed (inotify(7): a pod dir made or
removed in RUN/pods, a record renamed into place in RUN/pods/POD), so a
watch hears of a change as soon as the agent has written it; besides, it
looks every POLL_IDLE seconds. A record whose file (inode, mtime, size) is
unchanged is not re-read, except for a full look every LIVENESS_SECONDS
(a container may die while no agent runs; the kernel check is applied
only then, since a running agent records every exit itself). Where inotify
cannot be had (no watches left), it polls every POLL_WATCHED seconds while
someone watches.

Every change gets the next resourceVersion from one counter and goes into
a bounded log of (rv, kind, type, object). A watch from version N replays
the entries after N; a watch from a version older than the log keeps gets
410 Expired (clients relist). The counter starts at the start time in
milliseconds, so versions only grow across server restarts and a version
from a previous server is simply too old.

Events (core/v1) come from the agent's per-pod event list; those of a
deleted pod stay for EVENT_TTL seconds, as a cluster keeps them.

Pods are kept by their key (runtime/paths.py pod_key: the name of their
state dir), so `pod(ns, name)` is one lookup; Namespaces come from the
agent's RUN/namespaces files (runtime/namespaces.py), checked on each look.
"""
from __future__ import annotations

import collections
import contextlib
import os
import select
import threading
import time

from minipod.runtime import namespaces, state

from minipod.runtime.api import accountview, podstatus
from minipod.runtime.api.record import PodRecord, RecordError, as_pod
from minipod.runtime.paths import pod_key
from minipod.runtime.apiserver import objects

LOG_SIZE = 4096
LIVENESS_SECONDS = 2.0
EVENT_TTL = 3600.0
POLL_WATCHED = 0.1      # seconds between looks while someone watches
POLL_IDLE = 1.0


class Entry:
    """An object as the store knows it: obj (the API object), the stamp of
    its file, record (the JSON object as stored) and, for a pod,
    pod_record (its PodRecord, checked against the kernel: readers use it)."""
    __slots__ = ("record", "obj", "stamp", "pod_record")

    def __init__(self, record: dict, obj: dict, stamp, pod_record: PodRecord | None = None):
        self.record, self.obj, self.stamp, self.pod_record = record, obj, stamp, pod_record


class Change:
    """One logged change; pod_record: the PodRecord of a pod's change, else None."""
    __slots__ = ("rv", "kind", "type", "obj", "pod_record")

    def __init__(self, rv: int, kind: str, type_: str, obj: dict, pod_record: PodRecord | None):
        self.rv, self.kind, self.type, self.obj = rv, kind, type_, obj
        self.pod_record = pod_record


def _strip(obj: dict) -> dict:
    meta = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
    return dict(obj, metadata=meta)


def _known_exit(status: dict) -> None:
    """An exit code nobody saw (the agent was away) is null in minipod's own
    output; the API's exitCode is a required integer (the Python client
    refuses a null), so say it the kubelet's way: 137, ContainerStatusUnknown."""
    for key in ("state", "lastState"):
        t = (status.get(key) or {}).get("terminated")
        if t is not None and t.get("exitCode") is None:
            t["exitCode"] = 137
            if t.get("reason") in (None, "Unknown"):
                t["reason"] = "ContainerStatusUnknown"


def pod_object(record: PodRecord | dict) -> dict:
    """The Pod, as `minipod get pod -o json` shows it, plus what the API adds."""
    record = as_pod(record)
    obj = podstatus.pod_object(record)
    for cs in obj["status"].get("containerStatuses", []) + \
            obj["status"].get("initContainerStatuses", []):
        _known_exit(cs)
    accountview.api_view(obj, record)      # what admission adds on a cluster
    meta = obj["metadata"]
    meta["generation"] = 1
    if record.deletion_timestamp:
        meta["deletionGracePeriodSeconds"] = obj["spec"].get("terminationGracePeriodSeconds", 30)
    return obj


class Store:
    """The server's view of the node's pods and events; thread-safe."""

    def __init__(self, paths):
        self.paths = paths
        self.cond = threading.Condition()
        self.rv = int(time.time() * 1000)
        self.horizon = self.rv          # versions below this are gone from the log
        self.log: collections.deque[Change] = collections.deque()
        self.pods: dict[str, Entry] = {}        # pod key -> Entry
        self.namespaces: dict[str, dict] = {}   # name -> Namespace
        self.events: dict[str, dict] = {}       # name -> Event
        self.event_gone: dict[str, float] = {}  # name -> when its pod went away
        self.configs: dict[tuple[str, str, str], Entry] = {}  # ConfigMaps, Secrets: configs.py
        self.watchers = 0
        self._last_full = 0.0
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._inotify = self._watch_dirs()
        self._wds: dict[str, int] = {}          # pod name -> its dir's watch
        with self.cond:
            self._sync()
        self._thread = threading.Thread(target=self._poll, name="store-poll", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._kick()
        os.close(self._wake_w)      # the poller closes the others as it ends

    def _kick(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    def watch_started(self) -> None:
        """Called (cond held) by a new watch: without inotify, look often from
        now on, not in a second."""
        self.watchers += 1
        if self._inotify is None:
            self._kick()

    # ---- reading the agent's state -------------------------------------------

    def _watch_dirs(self) -> int | None:
        """An inotify fd watching RUN/pods (made if missing, as the agent
        would), or None when the kernel gives none (then: polling)."""
        from minipod.linux import inotify
        try:
            self.paths.pods.mkdir(parents=True, exist_ok=True)
            fd = inotify.inotify_init1()
        except OSError:
            return None
        try:
            inotify.inotify_add_watch(fd, str(self.paths.pods), inotify.IN_CREATE | inotify.IN_DELETE
                                   | inotify.IN_MOVED_TO | inotify.IN_MOVED_FROM | inotify.IN_ONLYDIR)
        except OSError:
            os.close(fd)
            return None
        return fd

    def _watch_pod(self, name: str) -> None:
        """Watch RUN/pods/NAME for its record renamed into place (state.write);
        before the record is read, so no write in between is missed."""
        if self._inotify is None or name in self._wds:
            return
        from minipod.linux import inotify
        try:
            self._wds[name] = inotify.inotify_add_watch(
                self._inotify, str(self.paths.pod_dir(name)),
                inotify.IN_MOVED_TO | inotify.IN_CLOSE_WRITE | inotify.IN_DELETE | inotify.IN_ONLYDIR)
        except OSError:
            pass    # gone again, or no watches left: the periodic look finds it

    def _poll(self) -> None:
        fds = [self._wake_r] + ([self._inotify] if self._inotify is not None else [])
        while not self._stop.is_set():
            # inotify covers the pods; namespaces, ConfigMaps and Secrets that
            # other writers change are looked for often while someone watches
            wait = POLL_WATCHED if self.watchers else POLL_IDLE
            ready, _, _ = select.select(fds, [], [], wait)
            for fd in ready:
                while True:     # drain: one look covers every change so far
                    try:
                        if not os.read(fd, 65536):
                            break
                    except BlockingIOError:
                        break
            if not self._stop.is_set():
                self.sync()
        os.close(self._wake_r)
        if self._inotify is not None:
            os.close(self._inotify)

    def sync(self) -> None:
        with self.cond:
            self._sync()

    def listed(self, select):
        """(resourceVersion, SELECT(store)) of one moment: a list and the
        version a watch continues it from (synced, read under the lock)."""
        self.sync()
        with self.cond:
            return str(self.rv), select(self)

    def _agent_runs(self) -> bool:
        """Does an agent hold its lock? Then its records are the truth (it sees
        every exit through a pidfd), and a container whose process just ended is
        not shown as ended-unknown in the moment before the agent writes it."""
        from minipod.runtime.apiendpoint import flock_held
        return flock_held(self.paths.agent_lock)

    def _sync(self) -> None:
        """Bring the objects up to date with the state files; log changes."""
        from minipod.runtime.state import refreshed
        if self._agent_runs():
            def refreshed(record):      # noqa: F811  the agent keeps records true
                return record
        full = time.monotonic() - self._last_full > LIVENESS_SECONDS
        if full:
            self._last_full = time.monotonic()
        try:
            names = set(os.listdir(self.paths.pods))
        except FileNotFoundError:
            names = set()
        changed = False
        for name in set(self._wds) - names:
            del self._wds[name]       # its dir is gone, and with it the watch
        for name in sorted(names):
            self._watch_pod(name)
            path = self.paths.pod_dir(name) / state.RECORD
            try:
                st = os.stat(path)
            except FileNotFoundError:
                names.discard(name)
                continue
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            old = self.pods.get(name)
            if old is not None and old.stamp == stamp and not full:
                continue
            try:
                stored = state.read(self.paths.pod_dir(name))
                record = refreshed(PodRecord.from_dict(stored))
            except FileNotFoundError:
                names.discard(name)
                continue
            except (state.StateError, RecordError):
                continue        # half-migrated or foreign: `minipod get` reports it
            obj = pod_object(record)
            if old is not None and old.pod_record.uid == record.uid and _strip(old.obj) == obj:
                old.stamp = stamp
                continue
            if old is not None and old.pod_record.uid != record.uid:
                self._delete(name)
            obj = self._bump("pods", "ADDED" if name not in self.pods else "MODIFIED",
                             obj, record)
            self.pods[name] = Entry(stored, obj, stamp, record)
            self._sync_events(record)
            changed = True
        for name in set(self.pods) - names:
            self._delete(name)
            changed = True
        changed = self._sync_namespaces() or changed
        now = time.monotonic()
        for ev, since in list(self.event_gone.items()):
            if now - since > EVENT_TTL:
                self._bump("events", "DELETED", self.events.pop(ev), None)
                del self.event_gone[ev]
        from minipod.runtime.apiserver import configs
        if configs.sync(self):
            changed = True
        if changed:
            self.cond.notify_all()

    def _sync_namespaces(self) -> bool:
        """Namespace files to objects; True if any changed."""
        changed = False
        seen = set()
        for record in namespaces.read_all(self.paths):
            name = record["name"]
            seen.add(name)
            obj = namespaces.to_object(record)
            old = self.namespaces.get(name)
            if old is not None and old["metadata"].get("uid") == obj["metadata"]["uid"] \
                    and _strip(old) == obj:
                continue
            if old is not None and old["metadata"].get("uid") != obj["metadata"]["uid"]:
                self._bump("namespaces", "DELETED", self.namespaces.pop(name), None)
            self.namespaces[name] = self._bump("namespaces", "MODIFIED" if name in
                                               self.namespaces else "ADDED", obj, None)
            changed = True
        for name in set(self.namespaces) - seen:
            self._bump("namespaces", "DELETED", self.namespaces.pop(name), None)
            changed = True
        return changed

    def pod(self, ns: str, name: str) -> Entry | None:
        """The pod NS/NAME (cond held, or a moment's view)."""
        entry = self.pods.get(pod_key(ns, name))
        if entry is None or entry.obj["metadata"].get("namespace", "default") != ns \
                or entry.obj["metadata"].get("name") != name:
            return None
        return entry

    def pods_in(self, ns: str | None) -> list[Entry]:
        """Pods of namespace NS (None: all), ordered by namespace, then name."""
        entries = [e for e in self.pods.values()
                   if ns is None or e.obj["metadata"].get("namespace") == ns]
        return sorted(entries, key=lambda e: (e.obj["metadata"].get("namespace", ""),
                                              e.obj["metadata"].get("name", "")))

    def _delete(self, name: str) -> None:
        entry = self.pods.pop(name)
        self._bump("pods", "DELETED", entry.obj, entry.pod_record)
        for ev in self.events.values():
            if ev["involvedObject"]["uid"] == entry.pod_record.uid:
                self.event_gone.setdefault(ev["metadata"]["name"], time.monotonic())

    def _sync_events(self, record: PodRecord) -> None:
        for ev in objects.pod_events(record):
            name = ev["metadata"]["name"]
            old = self.events.get(name)
            if old is not None and _strip(old) == ev:
                continue
            self.events[name] = self._bump("events", "ADDED" if old is None else "MODIFIED",
                                           ev, None)

    def _bump(self, kind: str, type_: str, obj: dict, record: PodRecord | None) -> dict:
        """A copy of obj with the next resourceVersion, logged as a change.
        Logged objects are never changed afterwards (watchers read them)."""
        self.rv += 1
        obj = dict(obj, metadata=dict(obj["metadata"], resourceVersion=str(self.rv)))
        self.log.append(Change(self.rv, kind, type_, obj, record))
        while len(self.log) > LOG_SIZE:
            self.horizon = self.log.popleft().rv
        return obj

    # ---- for the handlers ----------------------------------------------------

    def changes_after(self, rv: int, kind: str) -> list[Change] | None:
        """Logged changes of kind with a version above rv; None if rv is too old.
        Call with self.cond held."""
        if rv < self.horizon:
            return None
        return [c for c in self.log if c.rv > rv and c.kind == kind]

    def expired_message(self, rv: int) -> str:
        return f"too old resource version: {rv} ({self.horizon})"

    def wait(self, timeout: float) -> None:
        """Wait (self.cond held) until a change is logged or timeout passes."""
        self.cond.wait(timeout)
