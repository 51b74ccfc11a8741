"""The listeners (HTTPS), who asks, and the routes (kube-apiserver's
pkg/endpoints, in small): each request goes to a handler that decodes,
asks the store or the agent, and encodes. The handlers are mixins of
Handler: podapi.py (pods), clusterapi.py (namespaces, the node, events,
OpenAPI, reviews), watch.py (?watch=true); configs.py, nsapi.py,
podupdate.py, podlogs.py, podexec.py, podforward.py and metrics.py are
called with the handler. connection.py reads requests and writes answers.

One thread per connection (ThreadingHTTPServer, daemon threads): the load
is one user with a few long-lived connections (watches, logs -f, exec).
The TLS handshake runs in the connection's thread, so a slow or silent
client never holds up the others; a client without a certificate of our
CA fails the handshake (CERT_REQUIRED) and is closed. A handshake must end
within HANDSHAKE_SECONDS and a request's headers arrive within
HEADER_SECONDS of their first byte (Deadlines), so a client that trickles
them cannot hold a connection (and a slot of the pods' listener) for ever.

Two listeners, one store: 127.0.0.1:PORT (certificate required, as above)
and GATEWAY:PORT, the pod bridge's address, for pods (certificate optional;
without one a request needs a ServiceAccount bearer token, checked before
its body is read). auth.py decides who asks and what they may do; the
pods' listener holds at most POD_CONNECTIONS connections at once.

Every error is a metav1.Status, so kubectl prints it as a cluster's:
`Error from server (NotFound): pods "nope" not found`.
"""
from __future__ import annotations

import socket
import ssl
import threading
import traceback
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from minipod.runtime.apiserver import auth, discovery, objects, openapi
from minipod.runtime.apiserver.clusterapi import ClusterRoutes
from minipod.runtime.apiserver.connection import (DEADLINES, HANDSHAKE_SECONDS, VERBOSE,
                                                  Connection, _one, log)
from minipod.runtime.apiserver.objects import ApiError
from minipod.runtime.apiserver.podapi import PodRoutes
from minipod.runtime.apiserver.store import Store
from minipod.runtime.apiserver.watch import Watches

from minipod.runtime.apiserver.selectors import (SelectorError, parse_field_selector,
                                                 parse_label_selector)

POD_CONNECTIONS = 128          # open connections on the pods' listener, all pods together


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, paths, port: int, ctx: ssl.SSLContext, host: str = "127.0.0.1",
                 main: "Server | None" = None):
        """A listener on host:port; `main` is the first one, whose store,
        OpenAPI document and token key a second listener (the pods') shares."""
        self.paths, self.ctx, self.port, self.main = paths, ctx, port, main
        self.store = main.store if main else Store(paths)
        self.openapi = main.openapi if main else openapi.Document()
        self.started = main.started if main else objects.now_iso()
        self.sa_key = main.sa_key if main else b""
        # the pods' listener: a hostile pod may fill it, never the loopback one
        self.slots = threading.BoundedSemaphore(POD_CONNECTIONS) if main else None
        super().__init__((host, port), Handler)
        self.port = self.server_address[1]      # port 0: the one the kernel chose

    def server_bind(self) -> None:
        # IP_FREEBIND: the pods' address may be on a bridge the agent makes
        # only with the first pod; until then nothing can connect to it anyway
        self.socket.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_FREEBIND", 15), 1)
        super().server_bind()

    def process_request(self, request, client_address) -> None:
        if self.slots is not None and not self.slots.acquire(blocking=False):
            if VERBOSE:
                log(f"refused {client_address[0]}: {POD_CONNECTIONS} pod connections open")
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            if self.slots is not None:
                self.slots.release()

    def finish_request(self, request, client_address) -> None:
        """TLS handshake here, in the connection's own thread."""
        request.settimeout(HANDSHAKE_SECONDS)
        # a response is two writes (headers, body): with Nagle the second waits
        # for the client's delayed ACK, 40 ms per request on a kept-alive connection
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        fd = request.fileno()
        DEADLINES.set(fd, HANDSHAKE_SECONDS)
        try:
            try:
                conn = self.ctx.wrap_socket(request, server_side=True)
            finally:
                DEADLINES.clear(fd)
        except (ssl.SSLError, OSError) as e:
            if VERBOSE:
                log(f"refused {client_address[0]}:{client_address[1]}: {e}")
            request.close()
            return
        try:
            Handler(conn, client_address, self)
        except (ssl.SSLError, OSError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def server_close(self) -> None:
        if self.main is None:
            self.store.stop()
        super().server_close()


class Handler(PodRoutes, ClusterRoutes, Watches, Connection):
    """One connection's requests: who asks, then the route (the answers are
    in the mixins: podapi.py, clusterapi.py, watch.py; reading and writing
    in connection.py)."""
    server: Server

    def dispatch(self, method: str) -> None:
        DEADLINES.clear(self.connection.fileno())      # the headers are in
        url = urlsplit(self.path)
        q = parse_qs(url.query, keep_blank_values=True)
        parts = [p for p in url.path.split("/") if p]
        try:
            try:
                self.authorize(method, parts, q)     # before reading a stranger's body
            except ApiError:
                self.close_connection = True         # its body, if any, stays unread
                raise
            body = self.read_body() if method in ("POST", "PUT", "PATCH", "DELETE") else b""
            self.route(method, parts, q, body)
        except ApiError as e:
            self.send_json(e.code, e.status())
            if getattr(self, "unread", False):
                self.discard_unread()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError):
            self.close_connection = True
        except Exception as e:
            log(f"{method} {self.path} failed:\n{traceback.format_exc()}")
            try:
                self.send_json(500, ApiError(500, "InternalError",
                                             f"Internal error occurred: {e}").status())
            except OSError:
                self.close_connection = True

    # ---- who asks (auth.py) ----------------------------------------------------

    def authorize(self, method: str, parts: list[str], q: dict) -> None:
        """Set self.user, or raise 401/403 (auth.py has the rules)."""
        self.user = auth.authenticate(bool(self.connection.getpeercert()),
                                      self.headers.get("Authorization"), self.token_namespace)
        refused = auth.impersonation(self.user, self.headers)
        if refused:
            raise refused
        request = auth.request_info(method, parts, _one(q, "watch") in ("true", "1"))
        if not auth.allowed(self.user, request):
            raise auth.forbidden(self.user, request)

    def token_namespace(self, token: str) -> str | None:
        """The namespace of a valid token whose pod still exists, else None."""
        from minipod.runtime import serviceaccount
        try:
            claims = serviceaccount.verify(self.server.sa_key, token)
        except serviceaccount.TokenError as e:
            if VERBOSE:
                log(f"token refused: {e}")
            return None
        k8s = claims["kubernetes.io"]
        ns, pod = k8s["namespace"], k8s["pod"]
        store = self.server.store
        store.sync()
        with store.cond:
            alive = any(e.pod_record.uid == pod["uid"] and e.pod_record.name == pod["name"]
                        and (e.pod_record.namespace or "default") == ns
                        for e in store.pods.values())
        return ns if alive else None

    # ---- routes --------------------------------------------------------------

    def route(self, method: str, p: list[str], q: dict, body: bytes) -> None:
        n = len(p)
        if method == "GET" and p in (["livez"], ["readyz"], ["healthz"]):
            return self.send_bytes(200, b"ok", "text/plain; charset=utf-8")
        if method == "GET" and p == ["version"]:
            return self.send_json(200, discovery.VERSION)
        if method == "GET" and p in (["api"], ["apis"]):
            version = discovery.aggregated_version(self.headers.get("Accept", ""))
            if version:
                return self.send_json(200, discovery.aggregated(version, p == ["api"]),
                                      discovery.aggregated_content_type(version))
            if p == ["api"]:
                return self.send_json(200, discovery.legacy_api(
                    f"{self.server.server_address[0]}:{self.server.port}"))
            return self.send_json(200, discovery.legacy_groups())
        if method == "GET" and p == ["api", "v1"]:
            return self.send_json(200, discovery.legacy_resources("v1"))
        if method == "GET" and n == 3 and p[0] == "apis":
            found = discovery.legacy_resources(f"{p[1]}/{p[2]}")
            if found:
                return self.send_json(200, found)
        if method == "GET" and p[:2] == ["openapi", "v3"]:
            return self.openapi(p[2:])
        if method == "POST" and p == ["apis", "authorization.k8s.io", "v1",
                                      "selfsubjectaccessreviews"]:
            return self.access_review(body)
        if method == "POST" and p == ["apis", "authentication.k8s.io", "v1",
                                      "selfsubjectreviews"]:
            return self.send_json(201, auth.self_review(self.user, self.account_uid()))
        if p[:2] == ["api", "v1"]:
            return self.core(method, p[2:], q, body)
        if method == "GET" and p[:3] == ["apis", "metrics.k8s.io", "v1beta1"] and n > 3:
            from minipod.runtime.apiserver import metrics
            return metrics.serve(self, p[3:], q)
        raise ApiError(404, "NotFound", "the server could not find the requested resource",
                       {})

    def core(self, method: str, p: list[str], q: dict, body: bytes) -> None:
        n = len(p)
        if method == "GET" and p == ["pods"]:
            return self.list_pods(None, q)
        if method == "GET" and p == ["events"]:
            return self.list_events(None, q)
        if method == "GET" and p and p[0] == "nodes" and n <= 2:
            return self.nodes(p[1] if n == 2 else None, q)
        if method == "GET" and p in (["configmaps"], ["secrets"]):
            from minipod.runtime.apiserver import configs
            return configs.serve(self, method, None, p[0], [], q, body)
        if method == "GET" and p and p[0] == "namespaces" and n <= 2:
            return self.namespaces(p[1] if n == 2 else None, q)
        if p and p[0] == "namespaces" and n <= 2 and method in ("POST", "PUT", "PATCH",
                                                                 "DELETE"):
            from minipod.runtime.apiserver import nsapi
            return nsapi.serve(self, method, p[1] if n == 2 else None, q, body)
        if n >= 3 and p[0] == "namespaces":
            ns, resource, rest = p[1], p[2], p[3:]
            if resource == "pods":
                if not rest and method == "GET":
                    return self.list_pods(ns, q)
                if not rest and method == "POST":
                    return self.create_pod(ns, q, body)
                if len(rest) == 1 and method == "GET":
                    return self.get_pod(ns, rest[0], q)
                if len(rest) == 1 and method == "DELETE":
                    return self.delete_pod(ns, rest[0], q, body)
                if len(rest) == 1 and method in ("PUT", "PATCH"):
                    from minipod.runtime.apiserver import podupdate
                    return podupdate.serve(self, method, ns, rest[0], q, body)
                if len(rest) == 2 and rest[1] == "status" and method == "GET":
                    return self.get_pod(ns, rest[0], q)
                if len(rest) == 2 and rest[1] == "log" and method == "GET":
                    from minipod.runtime.apiserver import podlogs
                    return podlogs.serve(self, self.pod(ns, rest[0]).pod_record, q)
                if len(rest) == 2 and rest[1] == "portforward" and method in ("GET", "POST"):
                    from minipod.runtime.apiserver import podforward
                    return podforward.serve(self, method, self.pod(ns, rest[0]).pod_record, q)
                if len(rest) == 2 and rest[1] in ("exec", "attach"):
                    from minipod.runtime.apiserver import podexec
                    return podexec.serve(self, method, rest[1], self.pod(ns, rest[0]).pod_record,
                                         q)
            if resource in ("configmaps", "secrets"):
                from minipod.runtime.apiserver import configs
                return configs.serve(self, method, ns, resource, rest, q, body)
            if resource == "events" and method == "GET" and not rest:
                return self.list_events(ns, q)
            if resource == "events" and method == "GET" and len(rest) == 1:
                return self.get_event(ns, rest[0])
        raise ApiError(404, "NotFound", "the server could not find the requested resource",
                       {})

    # ---- pods ----------------------------------------------------------------

    def selectors(self, q: dict, kind: str):
        """A predicate for ?labelSelector= and ?fieldSelector= (the fields KIND
        supports; selectors.py has the grammar and the apiserver's wording)."""
        try:
            labels = parse_label_selector(_one(q, "labelSelector", ""))
            fields = parse_field_selector(_one(q, "fieldSelector", ""), kind)
        except SelectorError as e:
            raise ApiError(400, "BadRequest", str(e))
        return lambda obj: (labels.matches(obj["metadata"].get("labels") or {})
                            and fields.matches(obj))


def serve(paths, port: int, ready=None) -> int:
    """Listen on 127.0.0.1:port (client certificate required) and on the pod
    network's gateway:port (certificate or ServiceAccount token, see auth.py),
    and serve until SIGTERM or SIGINT."""
    import signal
    from minipod.runtime import serviceaccount
    from minipod.runtime import pki
    gateway = serviceaccount.api_host()
    files = pki.ensure(paths, (gateway,))
    try:
        server = Server(paths, port, pki.server_context(files))
    except OSError as e:
        log(f"cannot listen on 127.0.0.1:{port}: {e.strerror} (errno {e.errno})")
        return 1
    server.sa_key = files.sa_key.read_bytes()
    try:
        pods = Server(paths, server.port, pki.server_context(files, require_cert=False),
                      host=gateway, main=server)
    except OSError as e:
        log(f"cannot listen on {gateway}:{server.port} for pods: {e.strerror} "
            f"(errno {e.errno})")
        server.server_close()
        return 1
    threading.Thread(target=pods.serve_forever, kwargs={"poll_interval": 0.5},
                     name="pods-listener", daemon=True).start()
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()
        threading.Thread(target=pods.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if ready is not None:
        ready()
    log(f"serving the Kubernetes API on https://127.0.0.1:{port}, and to pods on "
        f"https://{gateway}:{port}")
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        pods.server_close()
        server.server_close()
    log("stopped")
    return 0

