"""HTTP/1.1 over TLS, routing, and the handlers: decode, ask the store or the
agent, encode (kube-apiserver's pkg/endpoints/handlers, in small).

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

import gzip
import json
import os
import secrets
import select
import socket
import ssl
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from minipod.runtime.apiserver import auth, discovery, objects, openapi
from minipod.runtime.apiserver.objects import ApiError, not_found
from minipod.runtime.apiserver.store import Store

from minipod.runtime.apiserver.selectors import (SelectorError, parse_field_selector,
                                                 parse_label_selector)

MAX_BODY = 3 * 1024 * 1024     # kube-apiserver's MaxRequestBodyBytes
DISCARD_BYTES = 64 << 20       # read and dropped after a 413, at most
WATCH_DEFAULT_SECONDS = 1800
IDLE_CONNECTION_SECONDS = 120
HANDSHAKE_SECONDS = 10         # for the whole TLS handshake
HEADER_SECONDS = 32            # for a request's headers, from their first byte (kube-apiserver's
                               # ReadHeaderTimeout): a client trickling them is cut off
POD_CONNECTIONS = 128          # open connections on the pods' listener, all pods together
VERBOSE = bool(os.environ.get("MINIPOD_API_VERBOSE"))
TABLE = {"type": "application/json", "as": "Table", "g": "meta.k8s.io", "v": "v1"}


def log(msg: str) -> None:
    sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} apiserver[{os.getpid()}]: {msg}\n")
    sys.stderr.flush()


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


class Deadlines:
    """Connections that must finish a step (the TLS handshake, a request's
    headers) by a time: one thread for all of them shuts down the socket of
    the late ones, which ends the blocked read in the connection's thread.
    A per-read timeout alone cannot: a byte every few seconds resets it.

    Keyed by fd (wrap_socket moves the fd to a new socket object). The
    shutdown runs under the lock that clear() takes, and a connection clears
    its fd before closing it, so a late shutdown never hits a reused fd."""

    def __init__(self):
        self.lock = threading.Lock()
        self.due: dict[int, float] = {}
        self.thread: threading.Thread | None = None

    def set(self, fd: int, seconds: float) -> None:
        with self.lock:
            self.due[fd] = time.monotonic() + seconds
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, daemon=True,
                                               name="minipod:api-deadlines")
                self.thread.start()

    def clear(self, fd: int) -> None:
        with self.lock:
            self.due.pop(fd, None)

    def _run(self) -> None:
        while True:
            time.sleep(1)
            now = time.monotonic()
            with self.lock:
                for fd in [fd for fd, t in self.due.items() if t <= now]:
                    del self.due[fd]
                    try:   # on a dup of the fd: the SSL object stays its reader's alone
                        with socket.socket(fileno=os.dup(fd)) as dup:
                            dup.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass


DEADLINES = Deadlines()


def _one(q: dict, key: str, default=None):
    values = q.get(key)
    return values[-1] if values else default


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "minipod-apiserver"
    timeout = IDLE_CONNECTION_SECONDS
    server: Server

    def log_message(self, fmt, *args) -> None:
        if VERBOSE:
            log(f"{self.client_address[0]} {fmt % args}")

    def handle_one_request(self) -> None:
        """One request; its headers must all arrive within HEADER_SECONDS of
        their first byte (waiting for that byte is the idle timeout's)."""
        try:
            if not self.rfile.peek(1):
                self.close_connection = True
                return
        except (OSError, ValueError):
            self.close_connection = True
            return
        fd = self.connection.fileno()
        DEADLINES.set(fd, HEADER_SECONDS)
        try:
            super().handle_one_request()
        finally:
            DEADLINES.clear(fd)

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    # ---- plumbing ------------------------------------------------------------

    def read_body(self) -> bytes:
        """The request's body (Content-Length or chunked), at most MAX_BODY
        bytes: more is 413 in kube-apiserver's words, a malformed length 400."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                line = self.rfile.readline(100)
                try:
                    size = int(line.split(b";")[0].strip() or b"0", 16)
                except ValueError:
                    self.close_connection = True
                    raise ApiError(400, "BadRequest", f"invalid chunk size {line[:20]!r}")
                if size == 0:
                    self.rfile.readline(100)
                    return data
                if len(data) + size > MAX_BODY:
                    raise self.too_large()
                data += self.rfile.read(size)
                self.rfile.readline(100)
        text = self.headers.get("Content-Length") or "0"
        if not text.isdigit():          # int() would take "-5" and read to EOF
            self.close_connection = True
            raise ApiError(400, "BadRequest", f"invalid Content-Length {text[:20]!r}")
        length = int(text)
        if length > MAX_BODY:
            raise self.too_large()
        return self.rfile.read(length) if length else b""

    def too_large(self) -> ApiError:
        self.close_connection = True
        self.unread = True
        return ApiError(413, "RequestEntityTooLarge",
                        f"Request entity too large: limit is {MAX_BODY}")

    def discard_unread(self) -> None:
        """After an answer to a body too large: read and drop what the client
        still sends (a few seconds, DISCARD_BYTES at most) before the close,
        so that the close is no reset that loses the answer on its way (Go's
        http server waits the same way before it closes)."""
        deadline = time.monotonic() + 5
        left = DISCARD_BYTES
        try:
            self.connection.settimeout(1)
            while left > 0 and time.monotonic() < deadline:
                data = self.connection.recv(min(left, 1 << 16))
                if not data:
                    return
                left -= len(data)
        except (OSError, ssl.SSLError):
            pass

    def send_json(self, code: int, obj, content_type: str = "application/json",
                  headers: list[tuple[str, str]] = ()) -> None:
        body = json.dumps(obj, separators=(",", ":")).encode()
        self.send_bytes(code, body, content_type, headers)

    def send_bytes(self, code: int, body: bytes, content_type: str,
                   headers: list[tuple[str, str]] = ()) -> None:
        gz = len(body) > 16384 and "gzip" in self.headers.get("Accept-Encoding", "")
        if gz:
            body = gzip.compress(body, 1)
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache, private")
        if gz:
            self.send_header("Content-Encoding", "gzip")
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def start_stream(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def end_stream(self) -> None:
        try:
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True

    def client_gone(self) -> bool:
        """Did the client close a connection it should only be reading from?"""
        try:
            ready, _, _ = select.select([self.connection], [], [], 0)
            if not ready:
                return False
            self.connection.settimeout(0.05)
            try:
                return self.connection.recv(1) == b""
            finally:
                self.connection.settimeout(None)
        except (TimeoutError, ssl.SSLWantReadError, BlockingIOError):
            return False
        except OSError:
            return True

    def wants_table(self) -> bool:
        return any(all(e.get(k) == v for k, v in TABLE.items())
                   for e in discovery.accept_params(self.headers.get("Accept", "")))

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

    # ---- discovery documents -------------------------------------------------

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

    # ---- namespaces and the node ---------------------------------------------

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
        store = self.server.store
        store.sync()
        with store.cond:
            rv = str(store.rv)
            items = [o for _, o in sorted(store.namespaces.items()) if match(o)]
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
        store = self.server.store
        store.sync()
        with store.cond:
            rv = str(store.rv)
            entries = [e for e in store.pods_in(ns) if match(e.obj)]
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

    def decode(self, body: bytes) -> dict:
        """A request body as JSON (or YAML); a missing Content-Type means JSON."""
        ctype = self.headers.get("Content-Type", "application/json")
        if "protobuf" in ctype:
            raise ApiError(415, "UnsupportedMediaType",
                           f'the body of the request was in an unknown format - accepted media '
                           f'types include: application/json, application/yaml')
        from minipod.runtime.apiserver import decoding
        obj = decoding.loads(body, yaml="yaml" in ctype)
        if not isinstance(obj, dict):
            raise ApiError(400, "BadRequest",
                           "couldn't get version/kind; json parse error: expected an object")
        return obj

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
        from minipod.runtime import serviceaccount
        serviceaccount.strip_view(obj)     # a pod exported with -o yaml, created again
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
                    meta.setdefault("deletionTimestamp", time.strftime(
                        "%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
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

    # ---- events --------------------------------------------------------------

    def list_events(self, ns: str | None, q: dict) -> None:
        match = self.selectors(q, "Event")
        if _one(q, "watch") in ("true", "1"):
            return self.watch("events", ns, q, match)
        store = self.server.store
        store.sync()
        with store.cond:
            rv = str(store.rv)
            items = sorted((e for e in store.events.values()
                            if (ns is None or e["metadata"]["namespace"] == ns) and match(e)),
                           key=lambda e: e["lastTimestamp"] or "")  # stable: agent order
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

    # ---- watch ---------------------------------------------------------------

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


def objects_for_dry_run(record) -> dict:
    from minipod.runtime.apiserver.store import pod_object
    obj = pod_object(record)
    obj["metadata"].pop("uid", None)
    return obj


def serve(paths, port: int, ready=None) -> int:
    """Listen on 127.0.0.1:port (client certificate required) and on the pod
    network's gateway:port (certificate or ServiceAccount token, see auth.py),
    and serve until SIGTERM or SIGINT."""
    import signal
    from minipod.runtime import serviceaccount
    from minipod.runtime.apiserver import pki
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

