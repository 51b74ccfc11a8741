"""The ServiceAccount as the API shows it on a Pod (pure: the token files
and their mount are runtime/serviceaccount.py).

    api_view(obj, record)   add serviceAccountName and the kube-api-access-XXXXX
                            projected volume, mounted read-only at MOUNT_PATH
                            in every container, as admission does on a cluster
    strip_view(obj)         take them out of a Pod created again from
                            `kubectl get pod -o yaml`, so it gets a token of
                            its own instead of a volume source minipod lacks
    volume_name(uid)        kube-api-access-XXXXX, stable for the pod

Only the API shows them: the stored manifest stays as the user wrote it.
"""
from __future__ import annotations

import hashlib

from minipod.runtime.api.record import PodRecord, as_pod

MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
ACCOUNT = "default"


def volume_name(uid: str) -> str:
    """kube-api-access-XXXXX, the suffix stable for the pod (from its uid)."""
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    n = int(hashlib.sha256((uid or "").encode()).hexdigest(), 16)
    return "kube-api-access-" + "".join(alphabet[(n >> (5 * i)) % 27] for i in range(5))


def api_view(obj: dict, record: PodRecord | dict) -> None:
    """Add to a Pod object what the ServiceAccount admission plugin adds on a
    cluster: serviceAccountName, and the kube-api-access-XXXXX projected volume
    with its read-only mount in every container. Only the API shows them; the
    pod's manifest stays as the user wrote it (so `kubectl apply` of the same
    file is `unchanged`: its three-way patch never removes what the live
    object has and the file never had)."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("serviceAccountName", ACCOUNT)
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    record = as_pod(record)
    if not record.service_account_dir:
        return
    name = volume_name(record.uid)
    spec["volumes"] = list(spec.get("volumes") or []) + [{"name": name, "projected": {
        "defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt",
                           "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1",
                                                     "fieldPath": "metadata.namespace"},
                                        "path": "namespace"}]}}]}}]
    for key in ("initContainers", "containers"):
        out = []
        for c in spec.get(key) or []:
            mounts = list(c.get("volumeMounts") or [])
            if not any(str(m.get("mountPath", "")).rstrip("/") == MOUNT_PATH for m in mounts):
                c = dict(c, volumeMounts=mounts + [{"mountPath": MOUNT_PATH, "name": name,
                                                    "readOnly": True}])
            out.append(c)
        if key in spec:
            spec[key] = out


def strip_view(obj: dict) -> None:
    """Drop from a Pod being created what api_view added to another one (a
    kube-api-access-* projected volume with a serviceAccountToken source, and
    the mounts of it), so `kubectl get pod -o yaml` of a pod, created again,
    gets its own token mount instead of a volume kind minipod does not run."""
    spec = obj.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("volumes"), list):
        return
    ours = {v.get("name") for v in spec["volumes"] if isinstance(v, dict)
            and str(v.get("name", "")).startswith("kube-api-access-")
            and isinstance(v.get("projected"), dict)
            and any(isinstance(s, dict) and "serviceAccountToken" in s
                    for s in v["projected"].get("sources") or [])}
    if not ours:
        return
    spec["volumes"] = [v for v in spec["volumes"] if not (isinstance(v, dict)
                                                          and v.get("name") in ours)]
    if not spec["volumes"]:
        del spec["volumes"]
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict) and isinstance(c.get("volumeMounts"), list):
                c["volumeMounts"] = [m for m in c["volumeMounts"]
                                     if not (isinstance(m, dict) and m.get("name") in ours)]
                if not c["volumeMounts"]:
                    del c["volumeMounts"]
