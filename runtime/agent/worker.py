"""The per-pod sync: what to start next, container starts, exits, restarts.

    sync(key)             the kubelet's computePodActions: regular init containers
                          one at a time, sidecars (restartPolicy Always init
                          containers) started and kept, then the main containers
                          side by side: each _launch'ed (forked), then each waited for
    start_container()     _launch (image, spec, cgroup, output, node.launch), then
                          _running (pid, probes) or _start_failed (a status)
    _container_exited()   the exit as a status (code None: not our child)
    _after_exit()         restartPolicy decides whether, backoff.py when
    _restart()            the back-off is over: start it again
    _stop_sidecars()      every main container is done: SIGTERM the sidecars

"""
from __future__ import annotations

import contextlib
import signal

from minipod.runtime import configobjects, logs, podconfig, process, security, timings, volumes
from minipod.runtime import container as ctr
from minipod.runtime.agent import backoff
from minipod.runtime.agent.loop import find, log, now_iso, update
from minipod.runtime.agent.running import RunningContainer
from minipod.runtime.agent.spec import container_spec, limits_of
from minipod.runtime.api import podstatus
from minipod.runtime.api.record import ContainerRecord, LastState, User


class Worker:
    """The per-pod sync (mixed into Agent). It reports up by callback, as
    the managers that are objects of their own do: `on_deleted_exit(key)`
    when a container of a pod being deleted has ended (Agent wires it to
    pods.py, which finishes the delete once none is left)."""
    on_deleted_exit = None   # (pod key) -> None, set by Agent

    def sync(self, pod_name: str) -> None:
        """Start whatever should run next (kubelet's computePodActions):
        regular init containers one at a time to completion, sidecars
        (restartPolicy Always init containers) started and kept running,
        then every main container that has not started yet."""
        record = self.records.get(pod_name)
        if record is None or record.deletion_timestamp or record.evicted:
            return  # deleted, or evicted: nothing starts again
        for cs in record.init_containers:
            if cs.state == "running":
                if cs.sidecar:
                    continue
                return  # wait for this init container to finish
            if cs.state == "terminated" and cs.exit_code == 0 and not cs.sidecar:
                continue
            if cs.state == "waiting" and cs.reason in ("PodInitializing",
                                                                 "ContainerCreating") \
                    and not cs.restart_count:
                self.start_container(pod_name, cs.name)
                if cs.state == "running" and cs.sidecar:
                    continue
            return  # failed, backing off, or just started
        # side by side: one's children set it up while the next is forked
        launched = [(cs.name, self._launch(pod_name, cs.name)) for cs in record.containers
                    if cs.state == "waiting" and not cs.restart_count
                    and cs.reason in ("PodInitializing", "ContainerCreating")]
        waited = [(name, *_waited(*launch)) for name, launch in launched if launch is not None]
        for name, rc, pid, error in waited:    # the running first: a failure's
            if error is None:                  # _after_exit may sync again
                self._running(pod_name, name, rc, pid)
        for name, rc, pid, error in waited:
            if error is not None:
                self._start_failed(pod_name, name, rc, error)

    def _config_changed(self, resource: str, ns: str, name: str) -> None:
        """Write the object's new content into the volumes of the pods that
        use it, and start their containers that waited for it."""
        for pod_name, record in list(self.records.items()):
            if record.deletion_timestamp or not podconfig.uses(
                    self.store.pod_spec(record), resource, ns, name):
                continue
            if record.volumes:
                podconfig.write_volumes(self.paths, record, self.store.pod_spec(record))
            for cs in record.init_containers + record.containers:
                self._retry_config(pod_name, cs.name, record.uid)

    def _retry_config(self, pod_name: str, name: str, uid: str) -> None:
        """Try again a container that waits for a ConfigMap or Secret."""
        record = self.records.get(pod_name)
        if record is None or record.uid != uid or record.deletion_timestamp:
            return
        cs = find(record, name)
        if cs.state != "waiting" or not cs.config_wait:
            return
        if cs.restart_count:
            self.start_container(pod_name, name)
        else:       # a first start goes through sync: init containers come first
            cs.reason = "PodInitializing" if cs in record.init_containers \
                else "ContainerCreating"
            self.sync(pod_name)

    # ---- containers --------------------------------------------------------

    def start_container(self, pod_name: str, name: str) -> None:
        """Start (or restart) one container; a failure becomes its status."""
        launch = self._launch(pod_name, name)
        if launch is not None:
            rc, pid, error = _waited(*launch)
            if error is None:
                self._running(pod_name, name, rc, pid)
            else:
                self._start_failed(pod_name, name, rc, error)

    def _launch(self, pod_name: str, name: str):
        """Everything up to the fork of the container's children: (its
        RunningContainer, node.launch's handle), or None when it waits (a
        pull, a ConfigMap) or failed (its status says so)."""
        record = self.records[pod_name]
        if record.evicted:
            return None  # evicted: its containers stay terminated
        cs = find(record, name)
        rc = RunningContainer(pod_name, name)
        if record.volumes:   # configMap, secret, ... volumes: written before any start
            failed = podconfig.write_volumes(self.paths, record, self.store.pod_spec(record))
            if failed:
                return self._config_wait(pod_name, cs, "ContainerCreating", failed,
                                         "FailedMount")
        image = self._image_ready(pod_name, name)
        if image is None:  # pulling, or the policy forbids it: a waiting status
            self.store.save(pod_name)
            return None
        cs.image_id = image.digest
        timings.mark(f"container {pod_name}/{name}: image looked up")
        try:
            try:
                spec = container_spec(self.paths, record, self.store.pod_spec(record),
                                      self.store.container_of(record, name), image,
                                      str(self.ipam.gateway))
            except security.SecurityError as e:
                # the kubelet's status for a container it refuses to create
                update(cs, state="waiting", reason="CreateContainerConfigError", message=str(e))
                self.store.event(pod_name, "Failed", f"Error: {e}", warning=True)
                self.store.save(pod_name)
                return None
            except configobjects.ConfigError as e:
                return self._config_wait(pod_name, cs, "CreateContainerConfigError", str(e),
                                         "Failed")
            # what exec, exec probes and hooks run with (a Secret's values: 0600 file)
            podconfig.save_env(self.paths, record, cs, spec.env, configobjects.uses_secret_env(
                self.store.container_of(record, name)))
            cs.user = User(spec.uid, spec.gid, list(spec.groups))
            timings.mark(f"container {pod_name}/{name}: upper dir, security, env, mount plan")
            c = self.store.container_of(record, name)
            cg = self.cgroups.create_container(record.cgroup, name, limits_of(c),
                                               c.security_context.privileged)
            cs.cgroup = cg
            spec.cgroup_procs = self.cgroups.join_paths(cg)
            timings.mark(f"container {pod_name}/{name}: cgroup")
            rc.writer = logs.LogWriter(self.paths.log_path(pod_name, name, cs.restart_count))
            self.output.open(rc, record.uid)
            timings.mark(f"container {pod_name}/{name}: log file, output files")
            self.store.event(pod_name, "Created", f"Created container {name}")
            return rc, self.node.launch(spec)
        except START_ERRORS as e:
            self._start_failed(pod_name, name, rc, e)
            return None

    def _start_failed(self, pod_name: str, name: str, rc: RunningContainer, e: Exception) -> None:
        """A start that failed at some step: a terminated StartError status."""
        cs = find(self.records[pod_name], name)
        self.output.close(rc, drain=True, ended=True)
        step = getattr(e, "step", "create")
        log(f"pod {pod_name} container {name}: start failed at {step}: {e}")
        update(cs, state="terminated", reason="StartError", message=str(e),
                  exit_code=128, started_at=None, finished_at=now_iso(), pid=None)
        cs.container_id = None
        self.store.event(pod_name, "Failed", f"Error: {e}", warning=True)
        self._after_exit(pod_name, name)

    def _running(self, pod_name: str, name: str, rc: RunningContainer, pid: int) -> None:
        """The container exec'd as `pid`: record it running, start its probes."""
        record = self.records[pod_name]
        cs = find(record, name)
        update(cs, state="running", pid=pid, pid_start=self.node.start_time(pid),
                  started_at=now_iso(), container_id=f"{record.uid[:8]}-{name}",
                  reason=None, message=None, exit_code=None, signal=None, finished_at=None)
        cs.config_wait = False
        rc.pid = pid
        self.live[(pod_name, name)] = rc
        self.by_pid[pid] = rc
        self.store.event(pod_name, "Started", f"Started container {name}")
        self.prober.start(pod_name, name, rc)
        timings.mark(f"container {pod_name}/{name}: pidfd, probes")
        self.store.save(pod_name)
        timings.mark(f"container {pod_name}/{name}: state saved (running)")

    def _config_wait(self, pod_name: str, cs: ContainerRecord, reason: str, message: str,
                     event: str) -> None:
        """The container waits for a ConfigMap, Secret or key (the kubelet's
        reasons and messages); tried again in RETRY_SECONDS, or as soon as
        the object is put."""
        record = self.records[pod_name]
        update(cs, state="waiting", reason=reason, message=message, config_wait=True)
        self.store.event(pod_name, event, message if event == "FailedMount" else f"Error: {message}",
                   warning=True)
        self.store.save(pod_name)
        key = (pod_name, cs.name, record.uid)
        if key not in self.config_timers:   # one timer per waiting container
            self.config_timers.add(key)
            self.call_later(podconfig.RETRY_SECONDS, self._config_timer, key)

    def _config_timer(self, key: tuple[str, str, str]) -> None:
        self.config_timers.discard(key)
        self._retry_config(*key)

    def _container_exited(self, rc: RunningContainer, code: int | None) -> None:
        """Record the exit (code None: not our child, so unknowable)."""
        self.by_pid.pop(rc.pid, None)
        self.live.pop((rc.pod, rc.name), None)
        self.output.close(rc, drain=True, ended=True)
        record = self.records.get(rc.pod)
        if record is None:
            return
        cs = find(record, rc.name)
        update(cs, state="terminated", finished_at=now_iso(), pid=None)
        oom = False
        if cs.cgroup:
            with contextlib.suppress(OSError):
                oom = self.cgroups.oom_killed(cs.cgroup) > 0
        if oom:
            update(cs, exit_code=137 if code is None else (128 - code if code < 0 else code),
                      signal=9, reason="OOMKilled",
                      message="the container went over its memory limit")
        elif code is None:
            update(cs, exit_code=None, reason="Unknown",
                      message="the container ended while it was not the agent's child; "
                              "its exit code cannot be known")
        elif code < 0:
            update(cs, exit_code=128 - code, signal=-code, reason="Error")
        else:
            update(cs, exit_code=code, reason="Completed" if code == 0 else "Error")
        log(f"pod {rc.pod} container {rc.name} exited: {cs.exit_code} ({cs.reason})")
        self._after_exit(rc.pod, rc.name)

    def _after_exit(self, pod_name: str, name: str) -> None:
        """restartPolicy decides whether; the kubelet's back-off decides when
        (backoff.py): the first restart after an exit is at once, from the
        second on the container waits in CrashLoopBackOff, 10 s doubling to
        5 min, counted from its exit."""
        record = self.records[pod_name]
        cs = find(record, name)
        if record.deletion_timestamp:
            self.store.save(pod_name)
            self.on_deleted_exit(pod_name)
            return
        respec, cs.respec = cs.respec, False
        if respec:                              # killed for a new image: back at once
            cs.exited_at = self.loop.wall()
            self._restart(pod_name, name, record.uid, True)
            self.store.save(pod_name)
            return
        if podstatus.will_restart(record, cs):
            exited = self.loop.wall()
            cs.exited_at = exited
            delay = self.backoff.wait(cs.backoff, exited, exited)
            if delay > 0:
                self.store.event(pod_name, "BackOff", f"Back-off restarting failed container {name} "
                                                f"in pod {record.name}", warning=True)
                update(cs, state="waiting", reason="CrashLoopBackOff",
                          message=f"back-off {backoff.go_duration(delay)} restarting failed "
                                  f"container={name} pod={record.name}",
                          last_state=self._exit_as_last_state(cs), restart_at=exited + delay)
                self.call_later(delay, self._restart, pod_name, name, record.uid, True)
            else:
                self._restart(pod_name, name, record.uid, True)  # a failed start comes back
        else:
            self.sync(pod_name)  # an init container done: start the next
        if podstatus.main_containers_done(record):
            self._stop_sidecars(pod_name)
        self.store.save(pod_name)

    def _stop_sidecars(self, pod_name: str) -> None:
        """Every main container has ended for good: sidecars end too (SIGTERM)."""
        record = self.records[pod_name]
        for cs in record.init_containers:
            if cs.sidecar and not cs.stopping:
                cs.stopping = True
                rc = self.live.get((pod_name, cs.name))
                if rc is not None:
                    self.store.event(pod_name, "Killing", f"Stopping container {cs.name}")
                    with contextlib.suppress(ProcessLookupError):
                        self.node.kill(rc.pid, signal.SIGTERM)
                    self.call_later(record.termination_grace_period_seconds,
                                    self._kill_one, pod_name, cs.name, rc.pid)

    def _kill_one(self, pod_name: str, name: str, pid: int) -> None:
        rc = self.live.get((pod_name, name))
        if rc is not None and rc.pid == pid:
            with contextlib.suppress(ProcessLookupError):
                self.node.kill(pid, signal.SIGKILL)

    def _restart(self, pod_name: str, name: str, uid: str, due: bool = False) -> None:
        """Start an exited container again once its back-off is over (the
        kubelet's doBackOff, then Next: the entry grows for the next exit).
        Not `due` (a new agent adopting a back-off): wait what is left of it."""
        record = self.records.get(pod_name)
        if record is None or record.uid != uid or record.deletion_timestamp:
            return
        cs = find(record, name)
        if cs.state == "running" or (cs.state == "waiting"
                                        and cs.reason != "CrashLoopBackOff"):
            return
        now = self.loop.wall()
        entry = cs.backoff if isinstance(cs.backoff, dict) else {}
        left = min((cs.restart_at or 0) - now, entry.get("seconds", self.backoff.cap))
        if not due and left > 0:  # never more than the back-off, whatever the clock did
            self.call_later(left, self._restart, pod_name, name, uid, True)
            return
        if cs.state == "terminated":
            cs.last_state = self._exit_as_last_state(cs)
        cs.backoff = self.backoff.next(cs.backoff, now if cs.exited_at is None else cs.exited_at,
                                       now)
        cs.restart_at = None
        cs.restart_count = cs.restart_count + 1
        self.start_container(pod_name, name)

    @staticmethod
    def _exit_as_last_state(cs: ContainerRecord) -> LastState:
        return LastState(exit_code=cs.exit_code, signal=cs.signal, reason=cs.reason,
                         message=cs.message, started_at=cs.started_at,
                         finished_at=cs.finished_at, state=str(cs.state))

    def _pulled(self, ref: str, waiters, ok: bool, reason: str, seconds: float) -> None:
        """A pull ended (images.Puller's on_done): start the containers that
        waited for it, or make them wait in the image back-off."""
        for pod_name, name in waiters:
            record = self.records.get(pod_name)
            if record is None or record.deletion_timestamp:
                continue
            cs = find(record, name)
            if ok:
                cs.pulled = True
                cs.pull_backoff = None
                self.store.event(pod_name, "Pulled", f'Successfully pulled image "{ref}" in '
                                               f"{seconds:.3f}s")
                self.sync(pod_name)
                if cs.state == "waiting" and cs.restart_count:
                    self.start_container(pod_name, name)  # a restart that waited for it
            else:
                now = self.loop.wall()
                cs.pull_backoff = self.backoff.next(cs.pull_backoff, now, now)
                delay = cs.pull_backoff["seconds"]
                update(cs, state="waiting", reason="ErrImagePull", message=reason)
                self.store.event(pod_name, "Failed", f'Failed to pull image "{ref}": {reason}',
                           warning=True)
                self.call_later(min(1.0, delay), self._pull_backoff, pod_name, name,
                                record.uid, delay)
                self.call_later(delay, self._retry_pull, pod_name, name, record.uid)
            self.store.save(pod_name)

    def _pull_backoff(self, pod_name: str, name: str, uid: str, delay: float) -> None:
        record = self.records.get(pod_name)
        if record is not None and record.uid == uid:
            cs = find(record, name)
            if cs.reason == "ErrImagePull":
                update(cs, reason="ImagePullBackOff",
                          message=f'Back-off pulling image "{cs.image}" ({delay:.0f}s)')
                self.store.event(pod_name, "BackOff", f'Back-off pulling image "{cs.image}"')
                self.store.save(pod_name)

    def _retry_pull(self, pod_name: str, name: str, uid: str) -> None:
        record = self.records.get(pod_name)
        if record is not None and record.uid == uid and not record.deletion_timestamp:
            cs = find(record, name)
            if cs.state == "waiting" and cs.reason in ("ErrImagePull",
                                                                 "ImagePullBackOff"):
                self.start_container(pod_name, name)

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
            grace = self.records[pod_name].termination_grace_period_seconds
        log(f"pod {pod_name} container {name}: stopping ({why})")
        with contextlib.suppress(ProcessLookupError):
            self.node.kill(rc.pid, signal.SIGTERM)
        self.call_later(grace, self._kill_one, pod_name, name, rc.pid)

START_ERRORS = (ctr.StartError, process.ProcessError, volumes.VolumeError, OSError)


def _waited(rc: RunningContainer, launch):
    """(rc, pid, None) once the container exec'd, (rc, None, error) if it failed."""
    try:
        return rc, launch.wait(), None
    except START_ERRORS as e:
        return rc, None, e
