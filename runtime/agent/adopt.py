"""Re-adoption: a new agent takes over the pods of the one before it.

From the state records and the kernel: a container whose pid (with its
start time) still runs is adopted (a pidfd tells of its exit, since it is
not our child); one that ended while no agent ran is recorded as ended
with an unknown exit code, never an invented one. Half-created pods are
removed, pending deletions finished, back-offs, pulls and config waits
picked up again.
"""
from __future__ import annotations

import contextlib
import signal

from minipod.netns import antispoof, bridge
from minipod.runtime import logs, state
from minipod.runtime.agent.loop import log, now_iso, update
from minipod.runtime.agent.running import RunningContainer
from minipod.runtime.api.record import ContainerRecord, PodRecord
from minipod.runtime.paths import record_key


class Adoption:
    """Re-adoption (mixed into Agent)."""

    # ---- adoption after a restart ------------------------------------------

    def adopt_all(self) -> None:
        """Rebuild the in-memory view from the state records and the kernel."""
        records, errors = state.read_records(self.paths.pods)
        for e in errors:
            log(e)
        # hostPort rules and cgroups of vanished pods: serve()'s gc.run, by their owners
        for record in records:
            name = record_key(record)
            self.records[name] = record
            if not record.sandbox_ready:
                # killed half-way through creation: remove what was made
                log(f"pod {name} was half-created; removing it")
                self.records.pop(name)
                with contextlib.suppress(Exception):
                    self.teardown(record)
                continue
            try:   # again: the table may be gone, or older than this agent
                self.node.owners.network.add_filter(self.paths, record.uid, record.host_ifname,
                                                    bridge.mac_for_ip(record.pod_ip),
                                                    record.pod_ip)
            except (antispoof.FilterError, KeyError, ValueError) as e:
                log(f"pod {name}: cannot write its anti-spoofing filter again: {e}")
            ended = []
            for cs in record.init_containers + record.containers:
                if cs.state == "running":
                    if not self._adopt(record, cs):
                        ended.append(cs.name)
                elif cs.state == "waiting" and cs.config_wait:
                    self.call_later(0, self._retry_config, name, cs.name, record.uid)
                elif cs.state == "waiting" and cs.reason == "CrashLoopBackOff":
                    self.call_later(self.backoff.base, self._restart, name, cs.name, record.uid)
                elif cs.state == "waiting" and cs.reason in (
                        "ErrImagePull", "ImagePullBackOff") or (
                        cs.reason == "ContainerCreating" and cs.restart_count):
                    self.call_later(0, self._retry_pull, name, cs.name, record.uid)
            # exits only once every live container is adopted: a pod being
            # deleted must not be torn down while one of them still runs
            for cname in ended:
                if name in self.records:
                    self._after_exit(name, cname)
            if name not in self.records:
                continue                  # its deletion finished just now
            self.store.save(name)
            if record.deletion_timestamp:
                self.delete_pod(name, 0)
            elif record.evicted:
                for rc in self._live_of(name):  # evicted, and the last agent died
                    with contextlib.suppress(ProcessLookupError):
                        self.node.kill(rc.pid, signal.SIGKILL)
            else:
                self.call_later(0, self.sync, name)   # e.g. a pull the dead agent began

    def _adopt(self, record: PodRecord, cs: ContainerRecord) -> bool:
        rc = RunningContainer(record_key(record), cs.name)
        pid = cs.pid
        if self.node.alive(pid, cs.pid_start):
            try:
                rc.pidfd = self.node.pidfd_open(pid)
            except ProcessLookupError:
                rc.pidfd = None
        if rc.pidfd is None:
            # what it wrote before it ended, while no agent ran, is still logged
            rc.writer = logs.LogWriter(self.paths.log_path(rc.pod, rc.name,
                                                           cs.restart_count))
            with contextlib.suppress(OSError):
                self.output.open(rc, record.uid, fresh=False)
            self.output.close(rc, drain=True, ended=True)
            update(cs, state="terminated", exit_code=None, reason="Unknown", pid=None,
                      message="the container ended while the agent was not running; "
                              "its exit code is unknown", finished_at=now_iso())
            return False
        rc.pid = pid
        rc.writer = logs.LogWriter(self.paths.log_path(rc.pod, rc.name, cs.restart_count))
        self.output.open(rc, record.uid, fresh=False)
        self.live[(rc.pod, rc.name)] = rc
        self.by_pid[pid] = rc
        self.loop.add_reader(rc.pidfd, self._on_pidfd)
        self.prober.start(rc.pod, rc.name, rc, post_start=False)
        log(f"re-adopted pod {rc.pod} container {rc.name} (pid {pid})")
        return True
