"""What `run` (kubectl apply's cousin) does with a manifest that may already
be stored: create it, leave it unchanged, or refuse it. Pure: the caller
reads what is stored and acts on the answer.

    pod_change(None, pod)                      -> CREATE
    pod_change(record, same manifest)          -> UNCHANGED   "pod/web unchanged"
    pod_change(record, another manifest)       -> CONFLICT    AlreadyExists: delete it first
    object_change(None, cm)                    -> CREATE      "configmap/x created"
    object_change(stored, same data + labels)  -> UNCHANGED   "configmap/x unchanged"
    object_change(stored, other data)          -> UPDATE      "configmap/x configured"

A pod cannot be changed in place here (minipod has no rolling update: the
containers would have to be made again), so a different manifest under a
pod's name is refused. A ConfigMap or Secret is replaced, as kubectl apply
replaces it; metadata the server sets (uid, creationTimestamp) is no change.
"""
from __future__ import annotations

from minipod.runtime.api.record import PodRecord, as_pod

CREATE, UNCHANGED, CONFLICT, UPDATE = "create", "unchanged", "conflict", "update"


def _bare(m: dict) -> dict:
    """The manifest without its namespace (the key holds it)."""
    meta = {k: v for k, v in (m.get("metadata") or {}).items() if k != "namespace"}
    return dict(m, metadata=meta)


def pod_change(existing: PodRecord | dict | None, new: dict) -> str:
    """CREATE if no pod has the key (`existing` is None), UNCHANGED if the
    pod's record (a PodRecord, or its stored JSON) holds this manifest
    (whether or not its namespace is written out), else CONFLICT."""
    if existing is None:
        return CREATE
    stored = as_pod(existing).manifest
    return UNCHANGED if isinstance(stored, dict) and _bare(stored) == _bare(new) else CONFLICT


def object_change(stored: dict | None, new: dict) -> str:
    """CREATE, UNCHANGED (same body, labels and annotations), or UPDATE."""
    if stored is None:
        return CREATE
    same = {k: v for k, v in stored.items() if k != "metadata"} == \
        {k: v for k, v in new.items() if k != "metadata"} and all(
            stored["metadata"].get(k) == new["metadata"].get(k)
            for k in ("labels", "annotations"))
    return UNCHANGED if same else UPDATE
