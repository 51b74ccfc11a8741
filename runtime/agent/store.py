"""The pods the agent holds: their records, parsed manifests and events.

    store.records[key]              PodRecord (runtime/api/record.py), by pod key
    store.save(key)                 write it to RUN/pods/KEY/pod.json (atomic)
    store.event(key, reason, msg)   a Kubernetes-style event on the pod
    store.pod_spec(record)          its manifest, validated, parsed once
    store.container_of(record, n)   one container of that manifest

The lowest of the managers' shared state: every manager reads and writes
records through it, none of them through another manager.
"""
from __future__ import annotations

from minipod.runtime import state
from minipod.runtime.agent.loop import now_iso
from minipod.runtime.api import manifest
from minipod.runtime.api.record import Event, PodRecord
from minipod.runtime.paths import Paths, record_key

MAX_EVENTS = 100


class PodStore:
    """The records of this agent's pods (see the module doc)."""

    def __init__(self, paths: Paths):
        self.paths = paths
        self.records: dict[str, PodRecord] = {}      # pod key -> state record
        self.specs: dict[str, manifest.Pod] = {}     # pod key -> parsed manifest

    def pod_spec(self, record: PodRecord) -> manifest.Pod:
        """The pod's validated manifest, parsed once per agent."""
        spec = self.specs.get(record_key(record))
        if spec is None or spec.raw != record.manifest:
            spec = manifest.load_object(record.manifest, record.source or "<state>")
            self.specs[record_key(record)] = spec
        return spec

    def container_of(self, record: PodRecord, name: str) -> manifest.Container:
        pod = self.pod_spec(record)
        return next(c for c in pod.init_containers + pod.containers if c.name == name)

    def event(self, pod_name: str, reason: str, message: str, warning: bool = False) -> None:
        """Record a Kubernetes-style event on the pod (shown by `describe`).
        A repeat of the last same reason and message only bumps its count."""
        record = self.records.get(pod_name)
        if record is None:
            return
        events = record.events
        now = now_iso()
        for e in events[-5:]:
            if e.reason == reason and e.message == message:
                e.count += 1
                e.last_timestamp = now
                return
        events.append(Event(type="Warning" if warning else "Normal", reason=reason,
                            message=message, count=1, first_timestamp=now, last_timestamp=now))
        del events[:-MAX_EVENTS]

    def save(self, name: str) -> None:
        """Write the pod's record (atomically: runtime/state.py), if its dir is there."""
        record = self.records.get(name)
        if record is not None and self.paths.pod_dir(name).exists():
            state.write(self.paths.pod_dir(name), record)
