"""A pod's QoS class, computed exactly as Kubernetes does (pure).

Kubernetes puts every pod in one of three classes, shown as
`status.qosClass`; it decides which pods the kubelet evicts first and how
the OOM killer ranks them:

    Guaranteed  every container sets cpu AND memory limits, and the pod's
                summed requests equal its summed limits
    BestEffort  no container sets any cpu or memory request or limit
    Burstable   everything else

Two rules that surprise people, both kept here:
- A limit without a request means request = limit (the API server's
  defaulting, pkg/apis/core/v1/defaults.go), so `limits` alone gives
  Guaranteed.
- Requests and limits are compared as sums over the pod's containers
  (pkg/apis/core/v1/helper/qos/qos.go GetPodQOS), not container by
  container.

Quantities are plain numbers here (millicores, bytes): only cpu and memory
count; zero counts as unset.
"""
from __future__ import annotations

from typing import Iterable, Mapping

GUARANTEED = "Guaranteed"
BURSTABLE = "Burstable"
BEST_EFFORT = "BestEffort"

QOS_RESOURCES = ("cpu", "memory")

Resources = Mapping[str, float]


def with_defaults(requests: Resources | None, limits: Resources | None) -> dict:
    """A container's requests after API defaulting: a missing request takes
    the limit's value (SetDefaults_Pod)."""
    out = dict(requests or {})
    for name, value in (limits or {}).items():
        out.setdefault(name, value)
    return out


def resources_of(res) -> tuple[dict, dict]:
    """(requests, limits) of an object with cpu_request_milli, cpu_limit_milli,
    memory_request and memory_limit (manifest.Resources), unset ones left out."""
    requests = {"cpu": res.cpu_request_milli, "memory": res.memory_request}
    limits = {"cpu": res.cpu_limit_milli, "memory": res.memory_limit}
    return ({k: v for k, v in requests.items() if v is not None},
            {k: v for k, v in limits.items() if v is not None})


def pod_qos(containers: Iterable[tuple[Resources | None, Resources | None]]) -> str:
    """The QoS class of a pod from (requests, limits) per container
    (regular and init containers alike)."""
    requests: dict[str, float] = {}
    limits: dict[str, float] = {}
    guaranteed = True
    for req, lim in containers:
        for name, value in with_defaults(req, lim).items():
            if name in QOS_RESOURCES and value > 0:
                requests[name] = requests.get(name, 0) + value
        found = set()
        for name, value in (lim or {}).items():
            if name in QOS_RESOURCES and value > 0:
                found.add(name)
                limits[name] = limits.get(name, 0) + value
        if not found >= set(QOS_RESOURCES):
            guaranteed = False
    if not requests and not limits:
        return BEST_EFFORT
    if guaranteed and all(limits.get(n) == v for n, v in requests.items()) \
            and len(requests) == len(limits):
        return GUARANTEED
    return BURSTABLE
