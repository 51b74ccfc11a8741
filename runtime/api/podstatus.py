"""A pod's state record, seen the way kubectl shows a Pod (pure functions).

The agent records facts (pids, start and finish times, exit codes); this
module derives what Kubernetes shows from them: the phase, the conditions,
the STATUS column of `get pods` (kubectl's printPod), the Pod object of
`get -o yaml`. Phase rules (kubernetes.io, "Pod Lifecycle"):

    Pending    accepted, not every container started yet
    Running    bound, all containers created, at least one running
               (or restarting)
    Succeeded  all containers terminated with exit 0, none will restart
    Failed     all terminated, at least one in failure, none will restart
"""
from __future__ import annotations

import time

from minipod.runtime.api.record import (ContainerRecord, ContainerState, LastState, PodRecord,
                                        as_container, as_pod)

RUNNING, TERMINATED, WAITING = (ContainerState.RUNNING, ContainerState.TERMINATED,
                                ContainerState.WAITING)


def will_restart(record: PodRecord | dict, cs: ContainerRecord | dict) -> bool:
    """Does this terminated container start again (after a back-off)?

    Sidecars always do while the pod's main containers run; a regular init
    container retries a failure unless the pod's policy is Never; a main
    container follows restartPolicy (Always, OnFailure, Never)."""
    record, cs = as_pod(record), as_container(cs)
    if record.evicted:
        return False  # a terminal pod restarts nothing
    policy = record.restart_policy
    failed = cs.exit_code != 0
    if cs.sidecar:
        return not main_containers_done(record) and not record.deletion_timestamp
    if cs in record.init_containers:
        return failed and policy != "Never"
    return policy == "Always" or (policy == "OnFailure" and failed)


def main_containers_done(record: PodRecord | dict) -> bool:
    """Every main container has ended and none will start again."""
    record = as_pod(record)
    mains = record.containers
    return bool(mains) and all(c.state == TERMINATED and not will_restart(record, c)
                               for c in mains)


def _init_failed(record: PodRecord) -> bool:
    return any(c.state == TERMINATED and c.exit_code != 0 and not c.sidecar
               and not will_restart(record, c) for c in record.init_containers)


def _init_pending(record: PodRecord) -> bool:
    return any(not c.sidecar and not (c.state == TERMINATED and c.exit_code == 0)
               for c in record.init_containers)


def phase(record: PodRecord | dict) -> str:
    """The Kubernetes phase of the pod (the one place it is derived)."""
    record = as_pod(record)
    containers = record.containers
    if not record.sandbox_ready or not containers:
        return "Pending"
    if record.evicted:
        return "Failed"  # evicted (status.reason says so), whatever its containers do
    if _init_failed(record):
        return "Failed"
    if _init_pending(record):
        return "Pending"
    states = [c.state for c in containers]
    if any(s == RUNNING for s in states):
        return "Running"
    if any(s == WAITING for s in states):
        # waiting for a restart (back-off) counts as Running; never started is Pending
        started = any(c.restart_count or c.last_state for c in containers)
        return "Running" if started else "Pending"
    codes = [c.exit_code for c in containers]
    if all(code == 0 for code in codes):
        return "Succeeded"
    return "Failed"


def is_ready(cs: ContainerRecord | dict) -> bool:
    """Running, and its readiness probe (if any) says ready."""
    cs = as_container(cs)
    return cs.state == RUNNING and cs.ready


def ready_count(record: PodRecord | dict) -> tuple[int, int]:
    """kubectl's READY: main containers and sidecars."""
    record = as_pod(record)
    containers = record.containers + [c for c in record.init_containers if c.sidecar]
    return sum(1 for c in containers if is_ready(c)), len(containers)


def status_column(record: PodRecord | dict) -> str:
    """kubectl's STATUS of a state record (print_pod)."""
    return print_pod(pod_object(record))[1]


def restarts_column(record: PodRecord | dict) -> str:
    """kubectl's RESTARTS of a state record (print_pod)."""
    return print_pod(pod_object(record))[2]


def _restartable(spec: dict | None) -> bool:
    return bool(spec) and spec.get("restartPolicy") == "Always"


def _condition_true(status: dict, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True"
               for c in status.get("conditions") or [])


def _last_finished(cs: dict) -> str:
    """lastState.terminated.finishedAt ("" when none: sorts before any time)."""
    return ((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt") or ""


def print_pod(pod: dict, now: float | None = None) -> tuple[str, str, str]:
    """READY, STATUS and RESTARTS of a Pod object, as kubectl prints them.

    A line-by-line port of printPod (kubernetes pkg/printers/internalversion
    printers.go) over the Pod as JSON; its table tests are in
    tests/unit/test_printpod.py. In short:

    - STATUS starts as status.reason or the phase;
    - init containers in order: the first that has not succeeded (a sidecar,
      restartPolicy Always, counts once started) gives `Init:<reason>` for a
      terminated one (`Init:Signal:N`, `Init:ExitCode:N` without a reason) or
      a waiting one with a reason, else `Init:<index>/<count>`;
    - past init (or once Initialized is True), the main containers from the
      last to the first: a waiting or terminated one gives its reason
      (`Signal:N`, `ExitCode:N` without one), so the first such one wins;
      `Completed` while another container runs ready is `Running` if the
      pod is Ready, else `NotReady`;
    - a pod being deleted is `Terminating` unless its phase is final.
    RESTARTS counts every container's restarts, but once init is over only
    sidecars' and main containers'; "(5m ago)" is the newest lastState end.
    """
    spec, status, meta = pod.get("spec") or {}, pod.get("status") or {}, pod.get("metadata") or {}
    restarts = sidecar_restarts = ready = 0
    last_restart = last_sidecar_restart = ""
    total = len(spec.get("containers") or [])
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for c in status.get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    total += sum(1 for c in spec.get("initContainers") or [] if _restartable(c))
    initializing = False
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        restarts += cs.get("restartCount", 0)
        last_restart = max(last_restart, _last_finished(cs))
        sidecar = _restartable(init_specs.get(cs.get("name")))
        if sidecar:
            sidecar_restarts += cs.get("restartCount", 0)
            last_sidecar_restart = max(last_sidecar_restart, _last_finished(cs))
        state = cs.get("state") or {}
        term, wait = state.get("terminated"), state.get("waiting")
        # a missing exitCode is Go's zero value; None is minipod's "unknown"
        if term is not None and term.get("exitCode", 0) == 0:
            continue
        if sidecar and cs.get("started"):
            ready += 1 if cs.get("ready") else 0
            continue
        if term is not None:
            if term.get("reason"):
                reason = f"Init:{term['reason']}"
            elif term.get("signal"):
                reason = f"Init:Signal:{term['signal']}"
            else:
                reason = f"Init:ExitCode:{term.get('exitCode')}"
        elif wait is not None and wait.get("reason") and wait["reason"] != "PodInitializing":
            reason = f"Init:{wait['reason']}"
        else:
            reason = f"Init:{i}/{len(spec.get('initContainers') or [])}"
        initializing = True
        break
    if not initializing or _condition_true(status, "Initialized"):
        restarts, last_restart = sidecar_restarts, last_sidecar_restart
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += cs.get("restartCount", 0)
            last_restart = max(last_restart, _last_finished(cs))
            state = cs.get("state") or {}
            term, wait = state.get("terminated"), state.get("waiting")
            if wait is not None and wait.get("reason"):
                reason = wait["reason"]
            elif term is not None and term.get("reason"):
                reason = term["reason"]
            elif term is not None:
                reason = (f"Signal:{term['signal']}" if term.get("signal")
                          else f"ExitCode:{term.get('exitCode', 0)}")
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(status, "Ready") else "NotReady"
    if meta.get("deletionTimestamp") and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    shown = str(restarts)
    if restarts and last_restart:
        shown = f"{restarts} ({age(last_restart, now)} ago)"
    return f"{ready}/{total}", reason, shown


def _parse(iso: str) -> float:
    """Seconds since the epoch of a UTC time written 2026-11-25T12:00:00Z:
    calendar.timegm(time.strptime(...)) without the modules those two import
    (every `get` pays for its imports), by Howard Hinnant's days_from_civil."""
    digits = iso[:4] + iso[5:7] + iso[8:10] + iso[11:13] + iso[14:16] + iso[17:19]
    seps = "".join(iso[i] for i in (4, 7, 10, 13, 16, 19)) if len(iso) == 20 else ""
    if seps != "--T::Z" or not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"time {iso!r} is not of the form 2026-11-25T12:00:00Z")
    y, m, d, hh, mm, ss = (int(digits[a:b]) for a, b in
                           ((0, 4), (4, 6), (6, 8), (8, 10), (10, 12), (12, 14)))
    if not (1 <= m <= 12 and 1 <= d <= 31 and hh < 24 and mm < 60 and ss < 62):
        raise ValueError(f"time {iso!r} is out of range")
    y -= m <= 2
    era, yoe = divmod(y, 400)
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return float(days * 86400 + hh * 3600 + mm * 60 + ss)


def age(since: str | None, now: float | None = None) -> str:
    """kubectl's short duration since a time (HumanDuration): 45s, 3m12s, 5h30m, 2d3h."""
    if not since:
        return "<unknown>"
    return human_duration((time.time() if now is None else now) - _parse(since))


def human_duration(seconds: float) -> str:
    """apimachinery's duration.HumanDuration, the AGE column's format."""
    secs = int(seconds)
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 120:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        return f"{minutes}m{secs % 60}s" if secs % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years, days = hours // 24 // 365, hours // 24 % 365
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{hours // 24 // 365}y"


def conditions(record: PodRecord | dict) -> list[dict]:
    record = as_pod(record)
    ready, total = ready_count(record)
    created = record.creation_timestamp
    all_ready = "True" if total and ready == total else "False"
    sandbox = "True" if record.sandbox_ready else "False"
    initialized = "False" if _init_pending(record) else "True"
    return [
        {"type": "PodReadyToStartContainers", "status": sandbox, "lastTransitionTime": created},
        {"type": "Initialized", "status": initialized, "lastTransitionTime": created},
        {"type": "Ready", "status": all_ready, "lastTransitionTime": created},
        {"type": "ContainersReady", "status": all_ready, "lastTransitionTime": created},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": created},
    ]


def _state(c: ContainerRecord | LastState) -> dict:
    """Kubernetes' state object of a container, or of how its last run ended."""
    if c.state == RUNNING:
        return {"running": {"startedAt": c.started_at}}
    if c.state == TERMINATED:
        t = {k: v for k, v in (("exitCode", c.exit_code), ("signal", c.signal),
                               ("reason", c.reason), ("message", c.message),
                               ("startedAt", c.started_at), ("finishedAt", c.finished_at))
             if v is not None}
        if c.exit_code is None:
            t["exitCode"] = None  # unknown: never invented
        return {"terminated": t}
    return {"waiting": {k: v for k, v in (("reason", c.reason), ("message", c.message)) if v}}


def container_status(c: ContainerRecord | dict) -> dict:
    c = as_container(c)
    out = {
        "name": c.name,
        "image": c.image,
        "imageID": c.image_id,
        "containerID": f"minipod://{c.container_id}" if c.container_id else None,
        "ready": is_ready(c),
        "started": c.state == RUNNING and c.started,
        "restartCount": c.restart_count,
        "state": _state(c),
        "lastState": {},
    }
    if c.last_state:
        out["lastState"] = _state(c.last_state)
    if not out["containerID"]:
        del out["containerID"]
    return out


def pod_object(record: PodRecord | dict) -> dict:
    """The Pod as `kubectl get pod NAME -o yaml` shows it."""
    record = as_pod(record)
    manifest = record.manifest
    metadata = {
        "name": record.name,
        "namespace": record.namespace,
        "uid": record.uid or None,
        "creationTimestamp": record.creation_timestamp,
    }
    for key in ("labels", "annotations"):
        if manifest.get("metadata", {}).get(key):
            metadata[key] = manifest["metadata"][key]
    if record.deletion_timestamp:
        metadata["deletionTimestamp"] = record.deletion_timestamp
    spec = dict(manifest.get("spec", {}))
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec["nodeName"] = record.node_name
    status = {
        "phase": phase(record),
        "conditions": conditions(record),
        "hostIP": record.host_ip,
        "hostIPs": [{"ip": record.host_ip}] if record.host_ip else [],
        "podIP": record.pod_ip,
        "podIPs": [{"ip": record.pod_ip}] if record.pod_ip else [],
        "startTime": record.start_time,
        "qosClass": record.qos_class or "BestEffort",
        "containerStatuses": [container_status(c) for c in record.containers],
    }
    if record.init_containers:
        status["initContainerStatuses"] = [container_status(c) for c in record.init_containers]
    if record.reason:
        status["reason"] = record.reason
    if record.message:
        status["message"] = record.message
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec,
            "status": status}
