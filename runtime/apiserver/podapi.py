"""The pods' own routes: list, get, create, delete (PUT and PATCH: podupdate.py).

    GET    …/pods, …/namespaces/NS/pods        PodList or Table; ?watch (watch.py)
    GET    …/namespaces/NS/pods/NAME[/status]  the Pod
    POST   …/namespaces/NS/pods                validate (validation.py), ask the agent
                                               to run it, answer with the new Pod
    DELETE …/namespaces/NS/pods/NAME           ask the agent (grace period from the
                                               DeleteOptions or the query), answer with
                                               the Pod once its deletion has started

A mixin of server.py's Handler: it uses the connection's readers and
writers (connection.py) and the handler's selectors() and watch().
The agent alone creates and deletes pods; these ask it (client.py).
"""
from __future__ import annotations

import json
import secrets
import threading
import time

from minipod.runtime.apiserver import objects
from minipod.runtime.api.timestamps import rfc3339
from minipod.runtime.apiserver.connection import _one, log
from minipod.runtime.apiserver.objects import ApiError, not_found


class PodRoutes:
    """GET, POST and DELETE of pods (server.py's Handler has them)."""

    def pod(self, ns: str, name: str):
        store = self.server.store
        store.sync()
        entry = store.pod(ns, name)
        if entry is None:
            raise not_found("pods", name)
        return entry

    def pod_table(self, entries, rv: str, q: dict) -> dict:
        return objects.table(objects.POD_COLUMNS,
                             [(objects.pod_cells(e.pod_record), e.obj) for e in entries], rv,
                             _one(q, "includeObject", "Metadata"))

    def list_pods(self, ns: str | None, q: dict) -> None:
        match = self.selectors(q, "Pod")
        if _one(q, "watch") in ("true", "1"):
            return self.watch("pods", ns, q, match)
        rv, entries = self.server.store.listed(
            lambda store: [e for e in store.pods_in(ns) if match(e.obj)])
        if self.wants_table():
            return self.send_json(200, self.pod_table(entries, rv, q))
        self.send_json(200, {"kind": "PodList", "apiVersion": "v1",
                             "metadata": {"resourceVersion": rv},
                             "items": [e.obj for e in entries]})

    def get_pod(self, ns: str, name: str, q: dict) -> None:
        entry = self.pod(ns, name)
        if self.wants_table():
            return self.send_json(200, self.pod_table([entry], entry.obj["metadata"][
                "resourceVersion"], q))
        self.send_json(200, entry.obj)

    def create_pod(self, ns: str, q: dict, body: bytes) -> None:
        from minipod.runtime import client
        from minipod.runtime.apiserver import validation
        self.check_namespace(ns)
        obj = self.decode(body)
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else None
        if meta is not None:
            if meta.get("namespace") not in (None, "", ns):
                raise ApiError(400, "BadRequest", "the namespace of the provided object does "
                                                  "not match the namespace sent on the request")
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + "".join(
                    secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
            meta["namespace"] = ns
            for key in ("creationTimestamp", "resourceVersion", "uid"):
                meta.pop(key, None)   # set by the server, as a cluster does
        obj.pop("status", None)
        from minipod.runtime.api import accountview
        accountview.strip_view(obj)        # a pod exported with -o yaml, created again
        pod, warnings = validation.validate(obj, _one(q, "fieldValidation", "Warn"))
        headers = [("Warning", '299 - "%s"' % w.replace("\\", "\\\\").replace('"', '\\"'))
                   for w in warnings]
        if _one(q, "dryRun") == "All":
            from minipod.runtime.api.record import ContainerRecord, PodRecord
            record = PodRecord(name=pod.name, namespace=ns, manifest=pod.raw,
                               creation_timestamp=objects.now_iso(), containers=[
                                   ContainerRecord(name=c.name, image=c.image,
                                                   reason="ContainerCreating")
                                   for c in pod.containers])
            return self.send_json(201, objects_for_dry_run(record), headers=headers)
        try:
            client.request(self.server.paths, {"op": "run", "object": pod.raw,
                                               "source": f"api:{_one(q, 'fieldManager', '')}"},
                           timeout=120)
        except client.AgentError as e:
            if e.code == "AlreadyExists":
                raise ApiError(409, "AlreadyExists", f'pods "{pod.name}" already exists',
                               {"name": pod.name, "kind": "pods"})
            if e.code in ("NotFound", "Forbidden"):   # the namespace: gone, or going
                from minipod.runtime.apiserver.nsapi import agent_error
                raise agent_error(e, "namespaces" if e.code == "NotFound" else "pods",
                                  ns if e.code == "NotFound" else pod.name)
            if e.code == "InvalidImageName":
                raise ApiError(422, "Invalid", f'Pod "{pod.name}" is invalid: {e}',
                               {"name": pod.name, "kind": "Pod", "causes": [
                                   {"reason": "FieldValueInvalid", "message": str(e),
                                    "field": "spec.containers"}]})
            raise ApiError(500, "InternalError", f"Internal error occurred: {e}")
        entry = self.pod(ns, pod.name)
        self.send_json(201, entry.obj, headers=headers)

    def delete_pod(self, ns: str, name: str, q: dict, body: bytes) -> None:
        entry = self.pod(ns, name)
        options = self.decode(body) if body.strip() else {}
        grace = options.get("gracePeriodSeconds", _one(q, "gracePeriodSeconds"))
        try:
            grace = None if grace in (None, "") else max(0, int(grace))
        except (TypeError, ValueError):
            raise ApiError(400, "BadRequest", f"invalid gracePeriodSeconds: {grace!r}")
        if _one(q, "dryRun") == "All" or options.get("dryRun") == ["All"]:
            return self.send_json(200, entry.obj)
        uid = entry.pod_record.uid
        threading.Thread(target=self._agent_delete, args=(ns, name, grace), daemon=True,
                         name=f"delete-{name}").start()
        store = self.server.store
        deadline = time.monotonic() + 10
        with store.cond:
            while time.monotonic() < deadline:
                store._sync()
                now = store.pod(ns, name)
                if now is None or now.pod_record.uid != uid:
                    # gone already (grace 0): the pod's registry answers with the
                    # deleted object, never a Status (clients decode a Pod)
                    gone = json.loads(json.dumps(entry.obj))
                    meta = gone.setdefault("metadata", {})
                    meta.setdefault("deletionTimestamp", rfc3339())
                    meta.setdefault("deletionGracePeriodSeconds", grace or 0)
                    return self.send_json(200, gone)
                if now.pod_record.deletion_timestamp:
                    return self.send_json(200, now.obj)
                store.wait(0.05)
        raise ApiError(504, "Timeout", f'pods "{name}": the agent did not start deleting it '
                                       f"within 10s")

    def _agent_delete(self, ns: str, name: str, grace: int | None) -> None:
        from minipod.runtime import client
        try:
            client.request(self.server.paths, {"op": "delete", "name": name, "namespace": ns,
                                               "grace": grace})
        except client.AgentError as e:
            if e.code != "NotFound":
                log(f"delete of pod {ns}/{name} failed: {e}")


def objects_for_dry_run(record) -> dict:
    from minipod.runtime.apiserver.store import pod_object
    obj = pod_object(record)
    obj["metadata"].pop("uid", None)
    return obj
