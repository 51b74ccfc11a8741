"""Watches: ?watch=true on a list, as chunked JSON lines of {"type", "object"}.

    watch(kind, ns, q, match)   pods, events, namespaces, configmaps, secrets:
                                from the store's change log (store.py)
    static_watch(items, q)      the node: objects that never change

The query picks the start: no resourceVersion (or "0") sends a synthetic
ADDED per current object first; resourceVersion=N only what changed after
N (an ERROR 410 Expired when N is older than the log); sendInitialEvents
adds the BOOKMARK that ends the initial events. A watch ends after
?timeoutSeconds (WATCH_DEFAULT_SECONDS without), or when the client goes.
A mixin of server.py's Handler (connection.py writes the chunks).
"""
from __future__ import annotations

import json
import time

from minipod.runtime.apiserver import objects
from minipod.runtime.apiserver.connection import _one
from minipod.runtime.apiserver.objects import ApiError

WATCH_DEFAULT_SECONDS = 1800


class Watches:
    """The watch answers (server.py's Handler has them)."""

    def watch_timeout(self, q: dict) -> float:
        try:
            timeout = int(_one(q, "timeoutSeconds") or 0)
        except ValueError:
            raise ApiError(400, "BadRequest", "timeoutSeconds must be an integer")
        return float(timeout) if timeout > 0 else WATCH_DEFAULT_SECONDS

    def watch(self, kind: str, ns: str | None, q: dict, match) -> None:
        """Chunked JSON lines of {"type", "object"} from the store's change log.

        No resourceVersion (or "0"): a synthetic ADDED per current object first;
        resourceVersion=N: only what changed after N (410 Expired if N is older
        than the log); sendInitialEvents=true: the ADDED events, then a BOOKMARK
        annotated k8s.io/initial-events-end (watch-list clients, kubectl 1.35+)."""
        store = self.server.store
        timeout = self.watch_timeout(q)
        rv_param = _one(q, "resourceVersion")
        initial = _one(q, "sendInitialEvents") == "true"
        bookmarks = _one(q, "allowWatchBookmarks") == "true"
        as_table = self.wants_table()
        include = _one(q, "includeObject", "Metadata")
        synthetic = initial or rv_param in (None, "", "0")
        since = 0
        if not synthetic:
            try:
                since = int(rv_param)
            except ValueError:
                raise ApiError(400, "BadRequest", f'invalid resource version "{rv_param}"')
        api_kind = {"pods": "Pod", "events": "Event", "configmaps": "ConfigMap",
                    "secrets": "Secret", "namespaces": "Namespace"}[kind]

        def in_ns(obj):
            return ns is None or obj["metadata"].get("namespace") == ns

        def event(type_, obj, record):
            if as_table and type_ != "BOOKMARK":
                if kind in ("configmaps", "secrets"):
                    from minipod.runtime.apiserver import configs
                    cells = configs.cells(obj)
                else:
                    cells = (objects.pod_cells(record) if kind == "pods"
                             else objects.namespace_cells(obj) if kind == "namespaces"
                             else objects.event_cells(obj))
                obj = objects.table([], [(cells, obj)], obj["metadata"]["resourceVersion"],
                                    include)
            return json.dumps({"type": type_, "object": obj},
                              separators=(",", ":")).encode() + b"\n"

        def bookmark(rv: int, end: bool = False) -> bytes:
            meta = {"resourceVersion": str(rv)}
            if end:
                meta["annotations"] = {"k8s.io/initial-events-end": "true"}
            return event("BOOKMARK", {"kind": api_kind, "apiVersion": "v1", "metadata": meta},
                         None)

        store.sync()
        with store.cond:
            store.watch_started()       # undone in the finally below
        try:
            with store.cond:
                out, last, expired = self._watch_start(store, synthetic, initial, since, kind,
                                                       event, bookmark,
                                                       lambda o: in_ns(o) and match(o))
            self.start_stream("application/json")
            deadline = time.monotonic() + timeout
            next_bookmark = time.monotonic() + 30
            while True:
                for line in out:
                    self.chunk(line)
                if expired:
                    break
                now = time.monotonic()
                if now >= deadline:
                    break
                if not out and self.client_gone():
                    break
                if bookmarks and now >= next_bookmark:
                    self.chunk(bookmark(last))
                    next_bookmark = now + 30
                with store.cond:
                    changes = store.changes_after(last, kind)
                    if changes == []:
                        store.wait(min(1.0, deadline - now))
                        changes = store.changes_after(last, kind)
                    if changes is None:
                        out = [json.dumps({"type": "ERROR", "object": ApiError(
                            410, "Expired", store.expired_message(last)).status()}).encode()
                            + b"\n"]
                        expired = True
                        continue
                    last = store.rv
                out = [event(c.type, c.obj, c.pod_record) for c in changes
                       if in_ns(c.obj) and match(c.obj)]
            self.end_stream()
        finally:
            with store.cond:
                store.watchers -= 1

    @staticmethod
    def _watch_start(store, synthetic: bool, initial: bool, since: int, kind: str, event,
                     bookmark, wanted) -> tuple[list[bytes], int, bool]:
        """The first lines of a watch, the version it continues from, and
        whether it is expired (store.cond held)."""
        if synthetic:
            if kind in ("configmaps", "secrets"):
                from minipod.runtime.apiserver import configs
                current = configs.current(store, kind)
            else:
                current = ([(e.obj, e.pod_record) for e in store.pods_in(None)] if kind == "pods"
                           else [(e, None) for _, e in sorted(store.namespaces.items())]
                           if kind == "namespaces"
                           else [(e, None) for e in store.events.values()])
            out = [event("ADDED", obj, record) for obj, record in current if wanted(obj)]
            if initial:
                out.append(bookmark(store.rv, end=True))
            return out, store.rv, False
        changes = store.changes_after(since, kind)
        if changes is None:
            return [json.dumps({"type": "ERROR", "object": ApiError(
                410, "Expired", store.expired_message(since)).status()}).encode() + b"\n"], \
                since, True
        return ([event(c.type, c.obj, c.pod_record) for c in changes if wanted(c.obj)],
                max(since, store.rv), False)

    def static_watch(self, items: list[dict], q: dict) -> None:
        """A watch of objects that do not change (the node)."""
        timeout = self.watch_timeout(q)
        self.start_stream("application/json")
        if _one(q, "resourceVersion") in (None, "", "0") or _one(q, "sendInitialEvents") == "true":
            for i in items:
                self.chunk(json.dumps({"type": "ADDED", "object": i}).encode() + b"\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.client_gone():
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        self.end_stream()
