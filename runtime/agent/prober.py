"""Probes (startup, liveness, readiness) and lifecycle hooks (postStart).

    prober = Prober(loop, node, store, live, checks, paths, kill)
    prober.start(key, name, rc)        a container started (or was adopted)
    prober.spawn_check(key, name, handler, timeout, done)   a hook or probe run

Each probe of a live container ticks on a timer (the kubelet's prober
worker); a check runs in a forked child (node.fork_check), registered in
`checks` (pid -> (fd, done)), and its verdict comes back through
`done(ok, message)` when the agent reaps the child. The prober sets the
container's started and ready flags itself; a failed liveness or startup
probe, or a failed postStart hook, it reports through its `kill(key,
name, why, grace)` callback (the worker's _kill_container): the exit then
follows restartPolicy like any other.
"""
from __future__ import annotations

import dataclasses
import os

from minipod.runtime import probes
from minipod.runtime.agent.loop import find
from minipod.runtime.agent.running import RunningContainer


class Prober:
    """The probe workers of every live container (see the module doc)."""

    def __init__(self, loop, node, store, live, checks, paths, kill):
        self.loop, self.node, self.store, self.paths = loop, node, store, paths
        self.live = live          # (pod key, container) -> RunningContainer, the agent's
        self.checks = checks      # check child pid -> (fd, done), reaped by the agent
        self.kill = kill

    def spawn_check(self, pod_name: str, name: str, handler, timeout: float, done) -> None:
        """Run one probe or hook check in a forked child; `done(ok, message)`
        is called when it is reaped."""
        rc = self.live.get((pod_name, name))
        record = self.store.records[pod_name]
        target = probes.Target(record, dataclasses.replace(find(record, name), pid=rc.pid),
                               self.paths) if rc else None
        pid, fd = self.node.fork_check(handler, record.pod_ip, target, timeout)
        os.set_blocking(fd, False)
        self.checks[pid] = (fd, done)

    def start(self, pod_name: str, name: str, rc: RunningContainer,
                      post_start: bool = True) -> None:
        record = self.store.records[pod_name]
        cs = find(record, name)
        c = self.store.container_of(record, name)
        cs.started = c.startup_probe is None
        cs.ready = c.readiness_probe is None
        kinds = ["startup"] if c.startup_probe else ["liveness", "readiness"]
        for kind in kinds:
            self._schedule_probe(pod_name, name, kind, rc)
        hook = c.lifecycle.post_start
        if hook is not None and post_start:
            def after_hook(ok: bool, message: str, pid=rc.pid) -> None:
                live = self.live.get((pod_name, name))
                if not ok and live is not None and live.pid == pid:
                    self.store.event(pod_name, "FailedPostStartHook", message, warning=True)
                    self.kill(pod_name, name, "FailedPostStartHook")
            self.spawn_check(pod_name, name, hook,
                             record.termination_grace_period_seconds, after_hook)

    def _schedule_probe(self, pod_name: str, name: str, kind: str, rc: RunningContainer) -> None:
        probe = getattr(self.store.container_of(self.store.records[pod_name], name), f"{kind}_probe")
        if probe is None:
            return
        rc.probes[kind] = probes.ProbeState(kind, str(rc.pid))
        self.loop.call_later(probe.initial_delay_seconds, self._probe_tick, pod_name, name, kind,
                        rc.pid)

    def _probe_tick(self, pod_name: str, name: str, kind: str, pid: int) -> None:
        """One period of one probe (the kubelet's prober worker). Liveness and
        startup probes stop while the container is being killed and once its
        pod is being deleted; readiness goes on until the container ends."""
        rc = self.live.get((pod_name, name))
        record = self.store.records.get(pod_name)
        if rc is None or rc.pid != pid or record is None:
            return  # the container instance this probe was for is gone
        if kind != "readiness" and (rc.stopping or record.deletion_timestamp):
            return
        if kind == "startup" and find(record, name).started:
            return
        probe = getattr(self.store.container_of(record, name), f"{kind}_probe")
        st = rc.probes[kind]
        if not st.running:
            st.running = True
            self.spawn_check(pod_name, name, probe.handler, probe.timeout_seconds,
                             lambda ok, msg: self._probe_result(pod_name, name, kind, pid, ok, msg))
        self.loop.call_later(probe.period_seconds, self._probe_tick, pod_name, name, kind, pid)

    def _probe_result(self, pod_name: str, name: str, kind: str, pid: int, ok: bool,
                      message: str) -> None:
        rc = self.live.get((pod_name, name))
        if rc is None or rc.pid != pid:
            return
        record = self.store.records[pod_name]
        cs = find(record, name)
        probe = getattr(self.store.container_of(record, name), f"{kind}_probe")
        st = rc.probes[kind]
        st.running = False
        if kind != "readiness" and (rc.stopping or record.deletion_timestamp):
            return  # a check that was in flight when the kill began: no second verdict
        if ok:
            st.successes, st.failures = st.successes + 1, 0
        else:
            st.successes, st.failures = 0, st.failures + 1
            self.store.event(pod_name, "Unhealthy", f"{kind.capitalize()} probe failed: {message}",
                       warning=True)
        if kind == "readiness":
            if ok and st.successes >= probe.success_threshold:
                cs.ready = True
            elif not ok and st.failures >= probe.failure_threshold:
                cs.ready = False
        elif kind == "startup" and ok:
            cs.started = True
            for k in ("liveness", "readiness"):
                self._schedule_probe(pod_name, name, k, rc)
        elif not ok and st.failures >= probe.failure_threshold:
            # kuberuntime's computePodActions: ", will be restarted" only if it will be
            restart = "" if record.restart_policy == "Never" and not cs.sidecar \
                else ", will be restarted"
            self.store.event(pod_name, "Killing", f"Container {name} failed {kind} probe{restart}")
            st.failures = 0
            self.kill(pod_name, name, f"{kind} probe failed",
                                 probe.termination_grace_period_seconds)
        self.store.save(pod_name)
