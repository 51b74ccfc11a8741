"""metrics.k8s.io/v1beta1 PodMetrics from the pods' cgroups (what
metrics-server serves, for `kubectl top pod [NAME] [--containers] [-l SEL]`).

    GET /apis/metrics.k8s.io/v1beta1/pods                       every namespace
    GET /apis/metrics.k8s.io/v1beta1/namespaces/NS/pods[/NAME]

CPU is a rate: the cgroup's CPU time read twice, SAMPLE_SECONDS apart
(the `window`), in nanocores ("1234567n"); memory is the working set
(usage minus inactive file cache), in Ki, as runtime/podusage.py reads them.
Only running containers with a cgroup are measured; a pod without any is
left out of a list, and a 404 when asked by name (as metrics-server does
for a pod it has no sample of).
"""
from __future__ import annotations


from minipod.runtime.api.timestamps import rfc3339
from minipod.runtime.apiserver.objects import ApiError

SAMPLE_SECONDS = 0.5
GROUP_VERSION = "metrics.k8s.io/v1beta1"


def _not_found(ns: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'podmetrics.metrics.k8s.io "{ns}/{name}" not found',
                    {"name": name, "group": "metrics.k8s.io", "kind": "pods"})


def serve(handler, rest: list[str], q: dict) -> None:
    from minipod import cgroups
    from minipod.runtime import podusage
    from minipod.runtime.paths import record_key
    from minipod.runtime.apiserver.selectors import SelectorError, parse_label_selector
    if rest == ["pods"]:
        ns, name = None, None
    elif len(rest) in (3, 4) and rest[0] == "namespaces" and rest[2] == "pods":
        ns, name = rest[1], (rest[3] if len(rest) == 4 else None)
    else:
        raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
    try:
        labels = parse_label_selector((q.get("labelSelector") or [""])[-1])
    except SelectorError as e:
        raise ApiError(400, "BadRequest", str(e))
    store = handler.server.store
    store.sync()
    with store.cond:
        entries = [e for e in store.pods_in(ns)
                   if (name is None or e.obj["metadata"]["name"] == name)
                   and labels.matches(e.obj["metadata"].get("labels") or {})]
    if name is not None and not entries:
        raise _not_found(ns, name)
    try:
        driver = cgroups.detect()
    except OSError as e:
        raise ApiError(503, "ServiceUnavailable", f"cannot read cgroups: {e}")
    targets = [(e.pod_record, cs) for e in entries for cs in podusage.running(e.pod_record)]
    first, second, elapsed = podusage.measure(driver, targets, SAMPLE_SECONDS)
    stamp = rfc3339()
    items = []
    for e in entries:
        containers = []
        for cs in podusage.running(e.pod_record):
            k = (record_key(e.pod_record), cs.name)
            if k not in first or k not in second:
                continue
            used = max(0, second[k].cpu_usage_ns - first[k].cpu_usage_ns)
            containers.append({"name": cs.name, "usage": {
                "cpu": f"{int(used / elapsed)}n",
                "memory": f"{second[k].memory_bytes // 1024}Ki"}})
        if not containers:
            continue
        meta = e.obj["metadata"]
        items.append({"metadata": {"name": meta["name"], "namespace": meta.get("namespace"),
                                   "creationTimestamp": stamp,
                                   "labels": meta.get("labels") or {}},
                      "timestamp": stamp, "window": f"{elapsed:.1f}s",
                      "containers": containers})
    if name is not None:
        if not items:
            raise _not_found(ns, name)
        return handler.send_json(200, dict(items[0], kind="PodMetrics",
                                           apiVersion=GROUP_VERSION))
    handler.send_json(200, {"kind": "PodMetricsList", "apiVersion": GROUP_VERSION,
                            "metadata": {}, "items": items})
