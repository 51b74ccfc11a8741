"""The agent's socket server: one JSON request per connection, op_* answers.

Requests arrive on RUN/agent.sock as one JSON line each (the ops are listed
in agent.py's docstring, the client is runtime/client.py); `op_NAME(request,
conn)` answers with a dict, or None when it answers later (a delete answers
once the pod is gone: pods.py keeps the connection in delete_waiters). A
RequestError becomes {"ok": false, "code": ..., "error": ...}; any other
exception is logged and answered as InternalError.

The server decodes, checks what it can and calls the managers below it
(pods.py create_pod / delete_pod, worker.py for config changes); no pod
logic lives here.
"""
from __future__ import annotations

import json
import os
import traceback

from minipod.linux import explain
from minipod.runtime import configobjects, namespaces, podconfig, timings
from minipod.runtime.agent.loop import RequestError, find, log, now_iso, send_answer
from minipod.runtime.api import configobject, manifest
from minipod.runtime.paths import pod_key


class Server:
    """The unix socket's requests (mixed into Agent)."""

    # ---- requests ----------------------------------------------------------

    def _on_accept(self, server) -> None:
        conn, _ = server.accept()
        conn.settimeout(5)
        try:
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
            request = json.loads(data or b"{}")
            op = request.get("op")
            handler = getattr(self, f"op_{op}", None)
            if handler is None:
                raise RequestError("BadRequest", f"unknown operation {op!r}")
            answer = handler(request, conn)
        except RequestError as e:
            answer = {"ok": False, "code": e.code, "error": str(e)}
        except Exception as e:
            log("request failed:\n" + traceback.format_exc())
            answer = {"ok": False, "code": "InternalError", "error": str(e)}
        if answer is not None:  # None: answered later (delete waits)
            send_answer(conn, answer)

    def op_ping(self, request, conn) -> dict:
        return {"ok": True, "pid": os.getpid(), "pods": len(self.records)}

    def op_stop(self, request, conn) -> dict:
        self.stopping = True
        return {"ok": True, "pid": os.getpid()}

    def op_run(self, request, conn) -> dict:
        if request.get("timings"):
            timings.start()
            timings.mark("agent: receive the request")
        obj = request["object"]
        if request.get("namespace"):   # kubectl's -n: the object's own namespace, or this one
            meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
            if meta.get("namespace") not in (None, "", request["namespace"]):
                raise RequestError("BadRequest", namespaces.mismatch(meta["namespace"],
                                                                     request["namespace"]))
            obj = dict(obj, metadata=dict(meta, namespace=request["namespace"]))
        pod = manifest.load_object(obj, request.get("source", "<request>"))
        timings.mark("agent: validate the manifest")
        if request.get("explain"):
            explain.start()
        try:
            record = self.create_pod(pod)
        finally:
            steps = explain.stop()
            marks = timings.stop()
        return {"ok": True, "pod": record.to_dict(), "explain": steps, "timings": marks}

    def op_delete(self, request, conn):
        name = request["name"]
        key = self._key_of(request)
        if key is None:
            raise RequestError("NotFound", f'pods "{name}" not found')
        self.delete_waiters.setdefault(key, []).append(conn)
        if request.get("explain"):
            self.explain_delete[key] = []
            explain.start()
        if request.get("timings"):
            self.timings_delete[key] = []
            timings.start()
            timings.mark("agent: receive the request")
        try:
            self.delete_pod(key, request.get("grace"))
        finally:
            if key in self.explain_delete:
                self.explain_delete[key] += explain.stop()
            if key in self.timings_delete:
                self.timings_delete[key] += timings.stop()
        return None

    def op_update(self, request, conn) -> dict:
        """Change what a pod may change in place (the API server checked the
        rules: runtime/apiserver/podupdate.py): labels, annotations, a few
        spec fields, container images. A new image restarts that container
        as the kubelet does: killed (its grace period), then started with
        the new image (pulled as its imagePullPolicy says), restartCount + 1."""
        name = request["name"]
        pkey = self._key_of(request)
        record = self.records.get(pkey)
        if record is None or (request.get("uid") and record.uid != request["uid"]):
            raise RequestError("NotFound", f'pods "{name}" not found')
        images = request.get("images") or {}
        if images and record.deletion_timestamp:
            raise RequestError("Conflict", f'pod "{name}" is being deleted: its containers '
                                           f"are not restarted with a new image")
        from minipod.rootfs import reference
        for cname, image in images.items():
            if not any(c.name == cname for c in record.containers
                       + record.init_containers):
                raise RequestError("BadRequest", f'pod "{name}" has no container {cname}')
            try:
                reference.parse(image)
            except ValueError as e:
                raise RequestError("InvalidImageName", f"container {cname}: {e}") from None
        new = json.loads(json.dumps(record.manifest))   # a new object: pod_spec re-parses
        meta = new.setdefault("metadata", {})
        for key in ("labels", "annotations"):
            if key in request:
                if request[key]:
                    meta[key] = dict(request[key])
                else:
                    meta.pop(key, None)
        spec = new.setdefault("spec", {})
        for key, value in (request.get("spec") or {}).items():
            if key not in ("activeDeadlineSeconds", "tolerations",
                           "terminationGracePeriodSeconds"):
                raise RequestError("BadRequest", f"spec.{key} cannot change in a running pod")
            if value is None:
                spec.pop(key, None)
            else:
                spec[key] = value
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            if c.get("name") in images:
                c["image"] = images[c["name"]]
        try:
            pod = manifest.load_object(new, record.source or "<update>")
        except manifest.ManifestError as e:
            raise RequestError("Invalid", str(e)) from None
        record.manifest = new
        record.termination_grace_period_seconds = pod.termination_grace_period_seconds
        if record.volumes:   # downwardAPI files of labels and annotations
            podconfig.write_volumes(self.paths, record, pod)
        for cname, image in images.items():
            cs = find(record, cname)
            if cs.image == image:
                continue
            cs.image = image
            cs.pulled = False
            if (pkey, cname) in self.live:
                cs.respec = True             # _after_exit starts it again at once
                self.store.event(pkey, "Killing", f"Container {cname} definition changed, will be "
                                            f"restarted")
                self._kill_container(pkey, cname, "definition changed")
        self.store.save(pkey)
        return {"ok": True}

    def op_put_object(self, request, conn) -> dict:
        """Create or replace a ConfigMap or Secret (configobjects.py), then
        bring the pods that use it up to date."""
        try:
            obj, _ = configobject.load_object(request["object"], request.get("source",
                                                                              "<request>"))
        except manifest.ManifestError as e:
            raise RequestError("Invalid", str(e)) from None
        if obj.resource == "configmaps" and obj.name == configobjects.ROOT_CA:
            raise RequestError("Forbidden", f'configmaps "{obj.name}" is forbidden: minipod '
                                            f"makes it (the API server's CA) in every namespace")
        ns = namespaces.read(self.paths, obj.namespace)
        if ns is None:
            raise RequestError("NotFound", f'namespaces "{obj.namespace}" not found')
        if ns.get("deletionTimestamp") and configobjects.read(
                self.paths, obj.resource, obj.namespace, obj.name) is None:
            # a terminating namespace takes no new object; one it has may still change
            raise RequestError("Forbidden", f'{obj.resource} "{obj.name}" is forbidden: unable '
                                            f"to create new content in namespace "
                                            f"{obj.namespace} because it is being terminated")
        try:
            stored, created = configobjects.put(self.paths, obj.obj)
        except configobjects.Conflict as e:
            raise RequestError("Invalid", str(e)) from None
        self._config_changed(obj.resource, obj.namespace, obj.name)
        return {"ok": True, "object": stored, "created": created}

    def op_delete_object(self, request, conn) -> dict:
        resource, ns, name = request["resource"], request["namespace"], request["name"]
        if resource not in configobject.RESOURCE_KINDS:
            raise RequestError("BadRequest", f"unknown resource {resource!r}")
        try:
            old = configobjects.remove(self.paths, resource, ns, name)
        except ValueError as e:
            raise RequestError("BadRequest", str(e)) from None
        if old is None:
            raise RequestError("NotFound", f'{resource} "{name}" not found')
        return {"ok": True, "object": old}

    def _key_of(self, request) -> str | None:
        """The key of the live pod a request names (its "namespace" and
        "name"), None if there is none: a key is the pod's only if its record
        has that namespace and name ("a_web" in default is not web in a)."""
        ns, name = request.get("namespace") or namespaces.DEFAULT, request.get("name")
        key = pod_key(ns, name or "")
        record = self.records.get(key)
        if record is None or record.name != name or \
                (record.namespace or namespaces.DEFAULT) != ns:
            return None
        return key

    def op_gc(self, request, conn) -> dict:
        """Remove what no live pod owns (runtime/agent/gc.py)."""
        from minipod.runtime.agent import gc
        return gc.run(self.paths, self.node.ipr, self.net.bridge, list(self.records.values()),
                      dry_run=bool(request.get("dryRun")), cgroups=self.cgroups)

    # ---- namespaces (runtime/namespaces.py) ----------------------------------

    def op_namespace_create(self, request, conn) -> dict:
        """Make namespace NAME (RUN/namespaces/NAME.json); AlreadyExists if it is there."""
        try:
            record = namespaces.create(self.paths, request.get("name"),
                                       request.get("labels"), request.get("annotations"))
        except namespaces.NamespaceError as e:
            raise RequestError(e.code, str(e)) from None
        log(f"namespace {record['name']} created")
        return {"ok": True, "namespace": record}

    def op_namespace_update(self, request, conn) -> dict:
        """Set a namespace's labels and annotations (the API server checked the rest)."""
        try:
            record = namespaces.update(self.paths, request.get("name") or "",
                                       request.get("labels"), request.get("annotations"))
        except namespaces.NamespaceError as e:
            raise RequestError(e.code, str(e)) from None
        return {"ok": True, "namespace": record}

    def op_namespace_delete(self, request, conn) -> dict:
        """Namespace NAME goes Terminating at once, then each of its pods is
        deleted with its own grace period; once the last is gone, so is the
        namespace (the namespace controller's order). Answers at once with
        the Terminating record."""
        name = request.get("name") or ""
        try:
            record = namespaces.mark_terminating(self.paths, name, now_iso())
        except namespaces.NamespaceError as e:
            raise RequestError(e.code, str(e)) from None
        log(f"namespace {name}: deleting its pods")
        self._delete_namespace_pods(name)
        gone = self._finish_namespace(name)
        return {"ok": True, "namespace": record, "gone": gone}
