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


def phase(record: dict) -> str:
    containers = record.get("containers", [])
    if record.get("phase") == "Pending" or not containers:
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


def ready_count(record: dict) -> tuple[int, int]:
    containers = record.get("containers", [])
    return sum(1 for c in containers if c["state"] == "running"), len(containers)


def status_column(record: dict) -> str:
    """kubectl's STATUS: the most telling container reason, else the phase."""
    if record.get("deletionTimestamp"):
        return "Terminating"
    reason = phase(record)
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
    total = sum(c.get("restartCount", 0) for c in record.get("containers", []))
    last = max((c.get("lastState", {}).get("finishedAt") or ""
                for c in record.get("containers", [])), default="")
    return f"{total} ({age(last)} ago)" if total and last else str(total)


def conditions(record: dict) -> list[dict]:
    ready, total = ready_count(record)
    created = record.get("creationTimestamp")
    all_ready = "True" if total and ready == total else "False"
    sandbox = "False" if record.get("phase") == "Pending" else "True"
    return [
        {"type": "PodReadyToStartContainers", "status": sandbox, "lastTransitionTime": created},
        {"type": "Initialized", "status": "True", "lastTransitionTime": created},
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
        "ready": c["state"] == "running",
        "started": c["state"] == "running",
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
        "qosClass": "BestEffort",
        "containerStatuses": [container_status(c) for c in record.get("containers", [])],
    }
    if record.get("message"):
        status["message"] = record["message"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec,
            "status": status}
