"""API objects around the pod: Status errors, Tables, Events, Node, Namespaces.

Pure functions over the agent's records and the Pod objects
runtime/api/podstatus.py makes. The Table columns and cells are kubectl's
server-side printing (kubernetes/kubernetes pkg/printers/internalversion
printers.go: printPod, printEvent, printNode, printNamespace); each row's
object is a PartialObjectMetadata, so `-A` and `--show-labels` can fill
their columns from it.
"""
from __future__ import annotations

import hashlib
import os
import platform
import socket

from minipod.runtime.api import podstatus
from minipod.runtime.api.timestamps import now_iso, rfc3339



class ApiError(Exception):
    """An answer as metav1.Status: code, reason, message, details."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict:
        out = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": self.message, "reason": self.reason, "code": self.code}
        if not self.reason:
            del out["reason"]       # StatusReasonUnknown: Go omits it
        if self.details is not None:
            out["details"] = self.details
        return out


def not_found(resource: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{resource} "{name}" not found',
                    {"name": name, "kind": resource})



# ---- Table -----------------------------------------------------------------

def _col(name: str, priority: int = 0, fmt: str = "", kind: str = "string",
         description: str = "") -> dict:
    return {"name": name, "type": kind, "format": fmt, "description": description,
            "priority": priority}


POD_COLUMNS = [
    _col("Name", fmt="name", description="Name must be unique within a namespace."),
    _col("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
    _col("Status", description="The aggregate status of the containers in this pod."),
    _col("Restarts", description="The number of times the containers in this pod have been "
                                 "restarted and when the last container in this pod has "
                                 "restarted."),
    _col("Age", description="CreationTimestamp is a timestamp representing the server time "
                            "when this object was created."),
    _col("IP", 1, description="IP address allocated to the pod. Routable at least within "
                              "the cluster. Empty if not yet allocated."),
    _col("Node", 1, description="NodeName is a request to schedule this pod onto a specific "
                                "node."),
    _col("Nominated Node", 1, description="nominatedNodeName is set only when this pod "
                                          "preempts other pods on the node."),
    _col("Readiness Gates", 1, description="If specified, all readiness gates will be "
                                           "evaluated for pod readiness."),
]

EVENT_COLUMNS = [
    _col("Last Seen", description="Time when this Event was last observed."),
    _col("Type", description="Type of this event (Normal, Warning), new types could be "
                             "added in the future."),
    _col("Reason", description="This should be a short, machine understandable string that "
                               "gives the reason for the transition into the object's "
                               "current status."),
    _col("Object", description="The object that this event is about."),
    _col("Subobject", 1, description="The subobject that this event is about."),
    _col("Source", 1, description="The component reporting this event."),
    _col("Message", description="A human-readable description of the status of this "
                                "operation."),
    _col("First Seen", 1, description="The time at which the event was first recorded."),
    _col("Count", 1, description="The number of times this event has occurred."),
    _col("Name", 1, fmt="name", description="Name must be unique within a namespace."),
]

NODE_COLUMNS = [
    _col("Name", fmt="name"), _col("Status"), _col("Roles"), _col("Age"), _col("Version"),
    _col("Internal-IP", 1), _col("External-IP", 1), _col("OS-Image", 1),
    _col("Kernel-Version", 1), _col("Container-Runtime", 1)]

NAMESPACE_COLUMNS = [_col("Name", fmt="name"), _col("Status"), _col("Age")]


def partial(obj: dict) -> dict:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj["metadata"]}


def table(columns: list[dict], rows: list[tuple[list, dict]], rv: str,
          include: str = "Metadata") -> dict:
    """A meta.k8s.io/v1 Table; rows are (cells, object)."""
    def row_object(obj):
        if include == "Object":
            return obj
        if include == "None":
            return None
        return partial(obj)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": rv},
            "columnDefinitions": columns,
            "rows": [{"cells": cells, "object": row_object(obj)} for cells, obj in rows]}


def pod_cells(record) -> list:
    """The table row of a pod's PodRecord (kubectl get pods -o wide)."""
    from minipod.runtime.api.record import as_pod
    record = as_pod(record)
    ready, total = podstatus.ready_count(record)
    return [record.name, f"{ready}/{total}", podstatus.status_column(record),
            podstatus.restarts_column(record), podstatus.age(record.creation_timestamp),
            record.pod_ip or "<none>", record.node_name or "<none>",
            "<none>", "<none>"]


def event_cells(ev: dict) -> list:
    inv = ev["involvedObject"]
    last = ev.get("lastTimestamp") or ev.get("firstTimestamp")
    return [podstatus.age(last), ev["type"], ev["reason"],
            f"{inv['kind'].lower()}/{inv['name']}", inv.get("fieldPath", ""),
            ev["source"].get("component", ""), ev["message"],
            podstatus.age(ev.get("firstTimestamp")), ev.get("count", 1),
            ev["metadata"]["name"]]


# ---- Events ----------------------------------------------------------------

def pod_events(record) -> list[dict]:
    """core/v1 Events of one pod from the events in its PodRecord."""
    from minipod.runtime.api.record import as_pod
    record = as_pod(record)
    out = []
    node = record.node_name or socket.gethostname()
    for e in record.events:
        digest = hashlib.sha256(f"{record.uid}/{e.first_timestamp}/{e.reason}/"
                                f"{e.message}".encode()).hexdigest()[:16]
        name = f"{record.name}.{digest}"
        field_path = _field_path(record, e.message)
        involved = {"kind": "Pod", "namespace": record.namespace,
                    "name": record.name, "uid": record.uid, "apiVersion": "v1"}
        if field_path:
            involved["fieldPath"] = field_path
        out.append({
            "kind": "Event", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": record.namespace,
                         "uid": _uuid_from(digest), "creationTimestamp": e.first_timestamp},
            "involvedObject": involved,
            "reason": e.reason, "message": e.message, "type": e.type,
            "source": {"component": "kubelet", "host": node},
            "firstTimestamp": e.first_timestamp, "lastTimestamp": e.last_timestamp,
            "count": e.count, "eventTime": None,
            "reportingComponent": "kubelet", "reportingInstance": node})
    return out


def _field_path(record, message: str) -> str:
    """`spec.containers{main}` when the message names one container."""
    for key, containers in (("initContainers", record.init_containers),
                            ("containers", record.containers)):
        for c in containers:
            if f"container {c.name}" in message or f'"{c.name}"' in message:
                return f"spec.{key}{{{c.name}}}"
    return ""


def _uuid_from(hexdigest: str) -> str:
    h = (hexdigest * 2)[:32]
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


# ---- Node and Namespaces ---------------------------------------------------

def _boot_time() -> str:
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("btime "):
                return rfc3339(int(line.split()[1]))
    return now_iso()


def _os_image() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def node(rv: str, host_ip: str | None) -> dict:
    """This machine as a Node: Ready, its capacity, its kernel and OS."""
    name = socket.gethostname()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cpus = str(os.cpu_count() or 1)
    now = now_iso()
    from minipod import __version__
    capacity = {"cpu": cpus, "memory": f"{mem // 1024}Ki", "pods": "110"}
    return {
        "kind": "Node", "apiVersion": "v1",
        "metadata": {"name": name, "uid": _uuid_from(hashlib.sha256(name.encode()).hexdigest()),
                     "resourceVersion": rv, "creationTimestamp": _boot_time(),
                     "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                "kubernetes.io/arch": platform.machine().replace(
                                    "x86_64", "amd64").replace("aarch64", "arm64"),
                                "node-role.kubernetes.io/control-plane": ""}},
        "spec": {},
        "status": {
            "capacity": capacity, "allocatable": capacity,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "minipod agent is posting ready status",
                            "lastHeartbeatTime": now, "lastTransitionTime": _boot_time()}],
            "addresses": ([{"type": "InternalIP", "address": host_ip}] if host_ip else [])
            + [{"type": "Hostname", "address": name}],
            "nodeInfo": {"machineID": _read("/etc/machine-id"), "systemUUID": "",
                         "bootID": _read("/proc/sys/kernel/random/boot_id"),
                         "kernelVersion": platform.release(), "osImage": _os_image(),
                         "containerRuntimeVersion": f"minipod://{__version__}",
                         "kubeletVersion": "v1.32.0+minipod",
                         "kubeProxyVersion": "", "operatingSystem": "linux",
                         "architecture": platform.machine()},
        }}


def node_cells(n: dict) -> list:
    info = n["status"]["nodeInfo"]
    ip = next((a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP"),
              "<none>")
    return [n["metadata"]["name"], "Ready", "control-plane",
            podstatus.age(n["metadata"]["creationTimestamp"]), info["kubeletVersion"], ip,
            "<none>", info["osImage"], info["kernelVersion"], info["containerRuntimeVersion"]]


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def namespace_cells(ns: dict) -> list:
    return [ns["metadata"]["name"], ns.get("status", {}).get("phase", "Active"),
            podstatus.age(ns["metadata"]["creationTimestamp"])]
