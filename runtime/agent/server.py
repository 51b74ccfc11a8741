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
from minipod.runtime.api import configobject, manifest, podchange
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
        """Create one pod from its object (the API server's POST)."""
        if request.get("timings"):
            timings.start()
            timings.mark("agent: receive the request")
        obj = _placed(request["object"], request.get("namespace"))
        pod = manifest.load_object(obj, request.get("source", "<request>"))
        timings.mark("agent: validate the manifest")
        return self._create_traced(pod, request)

    def _create_traced(self, pod, request) -> dict:
        """create_pod, with the --explain steps and --timings marks of its start."""
        if request.get("explain"):
            explain.start()
        try:
            record = self.create_pod(pod)
        finally:
            steps = explain.stop()
            marks = timings.stop()
        return {"ok": True, "pod": record.to_dict(), "explain": steps, "timings": marks}

    def op_apply(self, request, conn) -> dict:
        """`minipod run FILE` and `create -f FILE`: the file's text, read and
        checked here, where the checks are imported already (the CLI would pay
        about 35 ms importing yaml and them), with the same file:line messages.
        ConfigMaps and Secrets first, then each pod; every result in order,
        and the error that stopped it, if one did ("error": {code, message}).
        Nothing is made unless the whole file is valid and placed."""
        if request.get("timings"):
            timings.start()
            timings.mark("agent: receive the request")
        path, namespace, create = request["path"], request.get("namespace"), request.get("create")
        objects: list = []
        try:
            pods, warnings = manifest.load_text(request["text"],
                                                "<stdin>" if path == "-" else path, objects)
        except manifest.ManifestError as e:
            raise RequestError("ManifestInvalid", manifest.invalid_message(path, e)) from None
        if not pods and not objects:
            raise RequestError("ManifestInvalid", f"{path}: no objects to create")
        placed = [(pod, _placed(pod.raw, namespace, code="ManifestInvalid")) for pod in pods]
        for obj in objects:
            _placed(obj.obj, obj.namespaced and namespace, code="ManifestInvalid")
            if namespace and not obj.namespaced:
                obj.namespace = obj.obj["metadata"]["namespace"] = namespace
        timings.mark("agent: read and validate the manifest")
        answer = {"ok": True, "warnings": [str(w) for w in warnings], "results": [],
                  "error": None}
        try:
            for obj in objects:
                answer["results"].append(self._apply_object(obj, create))
            for pod, obj in placed:
                ns = obj["metadata"].get("namespace") or namespaces.DEFAULT   # -n's, placed
                what = {"what": f"pod/{pod.name}", "key": pod_key(ns, pod.name)}
                if not create:
                    change = podchange.pod_change(self.records.get(what["key"]), obj)
                    if change == podchange.UNCHANGED:
                        answer["results"].append(dict(what, change="unchanged"))
                        continue
                    if change == podchange.CONFLICT:
                        flag = f" -n {ns}" if ns != namespaces.DEFAULT else ""
                        raise RequestError("AlreadyExists", f'pods "{pod.name}" already exists '
                                           f"with another manifest; delete it first: "
                                           f"minipod delete pod {pod.name}{flag}")
                if request.get("timings") and not timings.active():
                    timings.start()     # this pod's own timeline
                created = self._create_traced(manifest.load_object(obj, pod.source), request)
                answer["results"].append(dict(what, change="created", pod=created["pod"],
                                              explain=created["explain"],
                                              timings=created["timings"]))
        except RequestError as e:
            answer["error"] = {"code": e.code, "message": str(e)}
        timings.stop()
        return answer

    def _apply_object(self, obj, create: bool) -> dict:
        """One ConfigMap or Secret of a file: created, configured or unchanged
        (kubectl apply's words); AlreadyExists under create."""
        what = f"{obj.kind.lower()}/{obj.name}"
        old = configobjects.read(self.paths, obj.resource, obj.namespace, obj.name)
        change = podchange.object_change(old, obj.obj)
        if change != podchange.CREATE and create:
            raise RequestError("AlreadyExists", f'{obj.resource} "{obj.name}" already exists')
        if change == podchange.UNCHANGED:
            return {"what": what, "change": "unchanged"}
        self._put_object(obj)
        return {"what": what, "change": "created" if change == podchange.CREATE else "configured"}

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
        stored, created = self._put_object(obj)
        return {"ok": True, "object": stored, "created": created}

    def _put_object(self, obj) -> tuple[dict, bool]:
        """Store a checked ConfigMap or Secret; (the stored object, created?)."""
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
        return stored, created

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


def _placed(obj: dict, namespace: str | None, code: str = "BadRequest") -> dict:
    """The object in kubectl's -n namespace: its own, if it names that one or
    none (then it is written in); RequestError(code) if it names another."""
    if not namespace:
        return obj
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    if meta.get("namespace") not in (None, "", namespace):
        raise RequestError(code, namespaces.mismatch(meta["namespace"], namespace))
    return dict(obj, metadata=dict(meta, namespace=namespace))
