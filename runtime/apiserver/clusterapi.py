"""The reads beside the pods: namespaces, the node, events, OpenAPI, reviews.

    GET  /openapi/v3[/api/v1]                   openapi.py's document (ETag, gzip)
    POST …/selfsubjectaccessreviews             may I? (auth.py answers)
    GET  …/namespaces[/NAME]                    from the store (writes: nsapi.py)
    GET  …/nodes[/NAME]                         this machine as the one Node
    GET  …/events, …/namespaces/NS/events[/NAME]

A mixin of server.py's Handler (connection.py reads and writes).
"""
from __future__ import annotations

from minipod.runtime.apiserver import auth, objects
from minipod.runtime.apiserver.connection import _one
from minipod.runtime.apiserver.objects import ApiError, not_found


class ClusterRoutes:
    """Namespaces (reads), the node, events, OpenAPI, reviews (server.py's Handler has them)."""

    def openapi(self, rest: list[str]) -> None:
        doc = self.server.openapi
        if not rest:
            return self.send_json(200, doc.root())
        if rest != ["api", "v1"]:
            raise ApiError(404, "NotFound", "the server could not find the requested resource",
                           {})
        etag = f'"{doc.hash}"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        headers = [("ETag", etag), ("Cache-Control", "public, immutable")]
        if "gzip" in self.headers.get("Accept-Encoding", ""):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Encoding", "gzip")
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(doc.gzipped)))
            self.end_headers()
            self.wfile.write(doc.gzipped)
            return
        self.send_bytes(200, doc.body, "application/json", headers)

    def access_review(self, body: bytes) -> None:
        # kubectl sends this one as protobuf: its spec is read from the envelope
        if "protobuf" in self.headers.get("Content-Type", ""):
            try:
                spec = auth.review_spec_from_protobuf(body)
            except (ValueError, UnicodeDecodeError) as e:
                raise ApiError(400, "BadRequest", f"cannot decode the review: {e}")
        else:
            spec = self.decode(body).get("spec")
            spec = spec if isinstance(spec, dict) else {}
        self.send_json(201, {"kind": "SelfSubjectAccessReview",
                             "apiVersion": "authorization.k8s.io/v1",
                             "metadata": {"creationTimestamp": None},
                             "spec": spec, "status": auth.review_answer(self.user, spec)})

    def account_uid(self) -> str:
        """The uid of a pod's service account (as its token's claims name it)."""
        if self.user.namespace is None:
            return ""
        from minipod.runtime import serviceaccount
        return serviceaccount.account_uid(self.server.sa_key, self.user.namespace)

    def check_namespace(self, ns: str) -> None:
        from minipod.runtime import namespaces
        if namespaces.read(self.server.paths, ns) is None:
            raise not_found("namespaces", ns)

    def namespaces(self, name: str | None, q: dict) -> None:
        match = self.selectors(q, "Namespace")
        if _one(q, "watch") in ("true", "1"):
            if name is not None:
                q = dict(q, fieldSelector=[f"metadata.name={name}"])
                match = self.selectors(q, "Namespace")
            return self.watch("namespaces", None, q, match)
        rv, items = self.server.store.listed(
            lambda store: [o for _, o in sorted(store.namespaces.items()) if match(o)])
        if name is not None:
            items = [i for i in items if i["metadata"]["name"] == name]
            if not items:
                raise not_found("namespaces", name)
        if self.wants_table():
            return self.send_json(200, objects.table(
                objects.NAMESPACE_COLUMNS, [(objects.namespace_cells(i), i) for i in items], rv,
                _one(q, "includeObject", "Metadata")))
        if name is not None:
            return self.send_json(200, items[0])
        self.send_json(200, {"kind": "NamespaceList", "apiVersion": "v1",
                             "metadata": {"resourceVersion": rv}, "items": items})

    def node_object(self) -> dict:
        host_ip = next((e.pod_record.host_ip for e in list(self.server.store.pods.values())
                        if e.pod_record.host_ip), None)
        return objects.node(str(self.server.store.rv), host_ip)

    def nodes(self, name: str | None, q: dict) -> None:
        node = self.node_object()
        if name is not None and name != node["metadata"]["name"]:
            raise not_found("nodes", name)
        items = [node]
        if _one(q, "watch") in ("true", "1"):
            return self.static_watch(items, q)
        if self.wants_table():
            return self.send_json(200, objects.table(
                objects.NODE_COLUMNS, [(objects.node_cells(node), node)],
                node["metadata"]["resourceVersion"], _one(q, "includeObject", "Metadata")))
        if name is not None:
            return self.send_json(200, node)
        self.send_json(200, {"kind": "NodeList", "apiVersion": "v1",
                             "metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
                             "items": items})


    def list_events(self, ns: str | None, q: dict) -> None:
        match = self.selectors(q, "Event")
        if _one(q, "watch") in ("true", "1"):
            return self.watch("events", ns, q, match)
        rv, items = self.server.store.listed(lambda store: sorted(
            (e for e in store.events.values()
             if (ns is None or e["metadata"]["namespace"] == ns) and match(e)),
            key=lambda e: e["lastTimestamp"] or ""))  # stable: agent order
        if self.wants_table():
            return self.send_json(200, objects.table(
                objects.EVENT_COLUMNS, [(objects.event_cells(e), e) for e in items], rv,
                _one(q, "includeObject", "Metadata")))
        self.send_json(200, {"kind": "EventList", "apiVersion": "v1",
                             "metadata": {"resourceVersion": rv}, "items": items})

    def get_event(self, ns: str, name: str) -> None:
        self.server.store.sync()
        ev = self.server.store.events.get(name)
        if ev is None or ev["metadata"]["namespace"] != ns:
            raise not_found("events", name)
        self.send_json(200, ev)
