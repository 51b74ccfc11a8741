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


def will_restart(record: dict, cs: dict) -> bool:
    """Does this terminated container start again (after a back-off)?

    Sidecars always do while the pod's main containers run; a regular init
    container retries a failure unless the pod's policy is Never; a main
    container follows restartPolicy (Always, OnFailure, Never)."""
    if record.get("phase") == "Failed":
        return False  # evicted: a terminal pod restarts nothing
    policy = record.get("restartPolicy", "Always")
    failed = cs.get("exitCode") != 0
    if cs.get("sidecar"):
        return not main_containers_done(record) and not record.get("deletionTimestamp")
    if cs in record.get("initContainers", []):
        return failed and policy != "Never"
    return policy == "Always" or (policy == "OnFailure" and failed)


def main_containers_done(record: dict) -> bool:
    """Every main container has ended and none will start again."""
    mains = record.get("containers", [])
    return bool(mains) and all(c["state"] == "terminated" and not will_restart(record, c)
                               for c in mains)


def _init_failed(record: dict) -> bool:
    return any(c["state"] == "terminated" and c.get("exitCode") != 0 and not c.get("sidecar")
               and not will_restart(record, c) for c in record.get("initContainers", []))


def _init_pending(record: dict) -> bool:
    return any(not c.get("sidecar") and not (c["state"] == "terminated" and c.get("exitCode") == 0)
               for c in record.get("initContainers", []))


def phase(record: dict) -> str:
    containers = record.get("containers", [])
    if record.get("phase") == "Pending" or not containers:
        return "Pending"
    if record.get("phase") == "Failed":
        return "Failed"  # evicted (status.reason says so), whatever its containers do
    if _init_failed(record):
        return "Failed"
    if _init_pending(record):
        return "Pending"
    states = [c["state"] for c in containers]
    if any(s == "running" for s in states):
        return "Running"
    if any(s == "waiting" for s in states):
        # waiting for a restart (back-off) counts as Running; never started is Pending
        started = any(c.get("restartCount", 0) or c.get("lastState") for c in containers)
        return "Running" if started else "Pending"
    codes = [c.get("exitCode") for c in containers]
    if all(code == 0 for code in codes):
        return "Succeeded"
    return "Failed"


def is_ready(cs: dict) -> bool:
    """Running, and its readiness probe (if any) says ready."""
    return cs["state"] == "running" and cs.get("ready", True)


def ready_count(record: dict) -> tuple[int, int]:
    """kubectl's READY: main containers and sidecars."""
    containers = record.get("containers", []) + [
        c for c in record.get("initContainers", []) if c.get("sidecar")]
    return sum(1 for c in containers if is_ready(c)), len(containers)


def status_column(record: dict) -> str:
    """kubectl's STATUS: the most telling container reason, else the phase."""
    if record.get("deletionTimestamp"):
        return "Terminating"
    inits = [c for c in record.get("initContainers", []) if not c.get("sidecar")]
    done = sum(1 for c in inits if c["state"] == "terminated" and c.get("exitCode") == 0)
    for c in record.get("initContainers", []):
        if c.get("sidecar") or (c["state"] == "terminated" and c.get("exitCode") == 0):
            continue
        if c["state"] == "terminated":
            return f"Init:{c.get('reason') or 'Error'}"
        if c["state"] == "waiting" and c.get("reason") not in (None, "PodInitializing"):
            return f"Init:{c['reason']}"
        return f"Init:{done}/{len(inits)}"
    reason = phase(record)
    if all(c["state"] == "waiting" and c.get("reason") == "PodInitializing"
           for c in record.get("containers", [])) and record.get("initContainers"):
        return "PodInitializing"
    for c in record.get("containers", []):
        if c["state"] == "waiting" and c.get("reason"):
            reason = c["reason"]
        elif c["state"] == "terminated":
            if c.get("reason"):
                reason = c["reason"]
            elif c.get("signal"):
                reason = f"Signal:{c['signal']}"
            else:
                reason = f"ExitCode:{c.get('exitCode')}"
    return reason


def age(since: str | None, now: float | None = None) -> str:
    """kubectl's short duration: 45s, 3m12s, 5h, 2d."""
    if not since:
        return "<unknown>"
    then = time.mktime(time.strptime(since, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    secs = max(0, int((now or time.time()) - then))
    if secs < 120:
        return f"{secs}s"
    mins = secs // 60
    if mins < 10:
        return f"{mins}m{secs % 60}s"
    if mins < 180:
        return f"{mins}m"
    hours = mins // 60
    return f"{hours}h" if hours < 48 else f"{hours // 24}d"


def restarts_column(record: dict) -> str:
    every = record.get("containers", []) + record.get("initContainers", [])
    total = sum(c.get("restartCount", 0) for c in every)
    last = max((c.get("lastState", {}).get("finishedAt") or "" for c in every), default="")
    return f"{total} ({age(last)} ago)" if total and last else str(total)


def conditions(record: dict) -> list[dict]:
    ready, total = ready_count(record)
    created = record.get("creationTimestamp")
    all_ready = "True" if total and ready == total else "False"
    sandbox = "False" if record.get("phase") == "Pending" else "True"
    initialized = "False" if _init_pending(record) else "True"
    return [
        {"type": "PodReadyToStartContainers", "status": sandbox, "lastTransitionTime": created},
        {"type": "Initialized", "status": initialized, "lastTransitionTime": created},
        {"type": "Ready", "status": all_ready, "lastTransitionTime": created},
        {"type": "ContainersReady", "status": all_ready, "lastTransitionTime": created},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": created},
    ]


def _state(c: dict) -> dict:
    if c["state"] == "running":
        return {"running": {"startedAt": c.get("startedAt")}}
    if c["state"] == "terminated":
        t = {k: c.get(k) for k in ("exitCode", "signal", "reason", "message",
                                   "startedAt", "finishedAt") if c.get(k) is not None}
        if c.get("exitCode") is None:
            t["exitCode"] = None  # unknown: never invented
        return {"terminated": t}
    return {"waiting": {k: c[k] for k in ("reason", "message") if c.get(k)}}


def container_status(c: dict) -> dict:
    out = {
        "name": c["name"],
        "image": c.get("image"),
        "imageID": c.get("imageID", ""),
        "containerID": f"minipod://{c['containerID']}" if c.get("containerID") else None,
        "ready": is_ready(c),
        "started": c["state"] == "running" and c.get("started", True),
        "restartCount": c.get("restartCount", 0),
        "state": _state(c),
        "lastState": {},
    }
    if c.get("lastState"):
        out["lastState"] = _state(dict(c["lastState"], name=c["name"]))
    if not out["containerID"]:
        del out["containerID"]
    return out


def pod_object(record: dict) -> dict:
    """The Pod as `kubectl get pod NAME -o yaml` shows it."""
    manifest = record.get("manifest", {})
    metadata = {
        "name": record["name"],
        "namespace": record.get("namespace", "default"),
        "uid": record.get("uid"),
        "creationTimestamp": record.get("creationTimestamp"),
    }
    for key in ("labels", "annotations"):
        if manifest.get("metadata", {}).get(key):
            metadata[key] = manifest["metadata"][key]
    if record.get("deletionTimestamp"):
        metadata["deletionTimestamp"] = record["deletionTimestamp"]
    spec = dict(manifest.get("spec", {}))
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec["nodeName"] = record.get("nodeName")
    status = {
        "phase": phase(record),
        "conditions": conditions(record),
        "hostIP": record.get("hostIP"),
        "hostIPs": [{"ip": record["hostIP"]}] if record.get("hostIP") else [],
        "podIP": record.get("podIP"),
        "podIPs": [{"ip": record["podIP"]}] if record.get("podIP") else [],
        "startTime": record.get("startTime"),
        "qosClass": record.get("qosClass", "BestEffort"),
        "containerStatuses": [container_status(c) for c in record.get("containers", [])],
    }
    if record.get("initContainers"):
        status["initContainerStatuses"] = [container_status(c)
                                           for c in record["initContainers"]]
    if record.get("reason"):
        status["reason"] = record["reason"]
    if record.get("message"):
        status["message"] = record["message"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec,
            "status": status}
