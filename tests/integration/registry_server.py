"""A real Distribution registry on 127.0.0.1 for tests, and what goes with it.

- `RegistryServer`: Debian's `docker-registry` (Distribution 2.8) with a
  config of its own and a temporary storage dir, on a free port:
  anonymous, htpasswd basic auth (bcrypt hashes made with Python's `crypt`
  module, which uses the system's libcrypt; `htpasswd -B` from apache2-utils
  where Python has no `crypt`), token auth, and/or TLS.
- `make_ca`: a test CA and a server certificate for 127.0.0.1, with openssl.
- `TokenServer`: an auth server for the registry's token auth (JWTs signed
  RS256 by `openssl dgst`, the certificate in the JWT's x5c header, as the
  registry's "token.md" describes).
- `Pusher`: pushes blobs and manifests over the distribution API:
      POST /v2/REPO/blobs/uploads/    -> 202, Location: upload URL
      PUT  <upload URL>&digest=…      (the whole blob)  -> 201
      PUT  /v2/REPO/manifests/TAG     (Content-Type: the manifest type) -> 201
- `CuttingProxy`: a TCP proxy that cuts one connection after N bytes, or
  slows every one down (to test resumed downloads and killed pulls).
- `BlobCDN` + `RedirectingFront`: a front that answers blob requests with
  a 307 to another host (127.0.0.3), as registries that serve blobs from
  S3 or a CDN do; the CDN records the headers it received.

Every process started here is stopped by its pid.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import http.server
import json
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

REGISTRY_BIN = Path("/usr/bin/docker-registry")

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_FOREIGN_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(host: str, port: int, proc: subprocess.Popen | None = None,
              timeout: float = 15, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            text = log.read_text() if log and log.exists() else ""
            raise RuntimeError(f"{proc.args[0]} exited {proc.returncode}:\n{text}")
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout}s")


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash for the registry's htpasswd file (what `htpasswd -B` writes)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # crypt goes away in 3.13
        try:
            import crypt
        except ImportError:
            crypt = None
    if crypt is not None:
        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))
    # Python 3.13+: Debian's apache2-utils
    out = subprocess.run(["htpasswd", "-nbB", "u", password], check=True,
                         capture_output=True, text=True).stdout
    return out.strip().split(":", 1)[1]


# -- certificates ----------------------------------------------------------------------

def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d: Path, cn: str = "127.0.0.1") -> dict[str, Path]:
    """A CA and a server certificate for `cn` (IP:127.0.0.1 and DNS:localhost)."""
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=minipod test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={cn}", cwd=d)
    (d / "ext.cnf").write_text(f"subjectAltName=IP:{cn},DNS:localhost\n"
                               "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    return {"ca": d / "ca.crt", "cert": d / "server.crt", "key": d / "server.key"}


# -- the token server -------------------------------------------------------------------

def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Issues registry tokens (JWT, RS256) like auth.docker.io does.

    Anonymous requests get pull access to repositories under `public/`;
    `users` ({name: password}) get pull and push everywhere; a wrong
    password is a 401. `requests` records (scope, user or None) per token.
    """

    issuer = "minipod-test-issuer"
    service = "minipod-test-registry"

    def __init__(self, workdir: Path, users: dict[str, str]):
        self.dir = workdir
        self.users = users
        self.requests: list[tuple[str, str | None]] = []
        workdir.mkdir(parents=True, exist_ok=True)
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "token.key",
                 "-out", "token.crt", "-days", "2", "-subj", "/CN=minipod test token signer",
                 cwd=workdir)
        self.cert = workdir / "token.crt"
        der = subprocess.run(["openssl", "x509", "-in", "token.crt", "-outform", "DER"],
                             cwd=workdir, check=True, capture_output=True).stdout
        self._x5c = base64.b64encode(der).decode()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                owner._answer(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.realm = f"http://127.0.0.1:{self.port}/token"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def _sign(self, claims: dict) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        payload = _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", "token.key"], cwd=self.dir,
                             input=payload.encode(), check=True, capture_output=True).stdout
        return payload + "." + _b64url(sig)

    def _answer(self, h: http.server.BaseHTTPRequestHandler) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(h.path).query)
        user = None
        value = h.headers.get("Authorization", "")
        if value.startswith("Basic "):
            name, _, password = base64.b64decode(value[6:]).decode().partition(":")
            if self.users.get(name) != password:
                h.send_response(401)
                h.send_header("Content-Type", "application/json")
                body = b'{"details":"incorrect username or password"}'
                h.send_header("Content-Length", str(len(body)))
                h.end_headers()
                h.wfile.write(body)
                return
            user = name
        access = []
        scopes = query.get("scope", [])
        for scope in scopes:
            kind, name, actions = scope.split(":")[0], ":".join(scope.split(":")[1:-1]), \
                scope.split(":")[-1]
            granted = actions.split(",") if user else (
                ["pull"] if name.startswith("public/") and "pull" in actions.split(",") else [])
            if granted:
                access.append({"type": kind, "name": name, "actions": granted})
        self.requests.append((" ".join(scopes), user))
        now = int(time.time())
        token = self._sign({"iss": self.issuer, "sub": user or "", "aud": self.service,
                            "exp": now + 300, "nbf": now - 10, "iat": now,
                            "jti": uuid.uuid4().hex, "access": access})
        body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- the registry ------------------------------------------------------------------------

class RegistryServer:
    """`docker-registry serve CONFIG` on 127.0.0.1:PORT; stop() ends it by pid."""

    def __init__(self, workdir: Path, *, users: dict[str, str] | None = None,
                 tls: dict[str, Path] | None = None, token: TokenServer | None = None,
                 allow_urls: str | None = None):
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.storage = workdir / "storage"
        self.tls = tls
        self.users = users or {}
        http_cfg: dict = {"addr": self.host, "secret": uuid.uuid4().hex,
                          "headers": {"X-Content-Type-Options": ["nosniff"]}}
        if tls:
            http_cfg["tls"] = {"certificate": str(tls["cert"]), "key": str(tls["key"])}
        config: dict = {
            "version": "0.1",
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.storage)},
                        "delete": {"enabled": True}},
            "http": http_cfg,
        }
        if users:
            htpasswd = workdir / "htpasswd"
            htpasswd.write_text("".join(f"{u}:{bcrypt_hash(p)}\n" for u, p in users.items()))
            config["auth"] = {"htpasswd": {"realm": "minipod-test", "path": str(htpasswd)}}
        if token:
            config["auth"] = {"token": {"realm": token.realm, "service": token.service,
                                        "issuer": token.issuer,
                                        "rootcertbundle": str(token.cert)}}
        if allow_urls:
            config["validation"] = {"manifests": {"urls": {"allow": [allow_urls]}}}
        self.config = workdir / "config.yml"
        self.config.write_text(json.dumps(config, indent=1))   # JSON is YAML
        self.log = workdir / "registry.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([str(REGISTRY_BIN), "serve", str(self.config)],
                                         stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        try:
            wait_port("127.0.0.1", self.port, self.proc, log=self.log)
        except BaseException:
            self.stop()
            raise

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        return ssl.create_default_context(cafile=str(self.tls["ca"]))

    def pusher(self, user: str | None = None, token: TokenServer | None = None) -> "Pusher":
        creds = (user, self.users[user] if user in self.users else token.users[user]) \
            if user else None
        return Pusher(f"{self.scheme}://{self.host}", self.ssl_context(), creds)

    def blob_path(self, digest: str) -> Path:
        hexpart = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()          # by its pid: the process we started
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- pushing -------------------------------------------------------------------------------

class Pusher:
    """Pushes blobs and manifests (see the module docstring), with basic or token auth."""

    def __init__(self, base: str, context: ssl.SSLContext | None,
                 creds: tuple[str, str] | None = None):
        self.base = base
        self.context = context
        self.creds = creds
        self._auth: str | None = None

    def _basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.creds[0]}:{self.creds[1]}".encode()).decode()

    def _once(self, method: str, url: str, body: bytes | None, headers: dict):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(parts.hostname, parts.port, context=self.context,
                                               timeout=30)
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            conn.request(method, parts.path + ("?" + parts.query if parts.query else ""),
                         body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None):
        url = path if "://" in path else self.base + path
        headers = dict(headers or {})
        if self._auth:
            headers["Authorization"] = self._auth
        status, h, data = self._once(method, url, body, headers)
        if status == 401:
            challenge = h.get("WWW-Authenticate", "")
            if challenge.startswith("Basic"):
                self._auth = self._basic()
            else:
                params = dict(kv.split("=", 1) for kv in
                              challenge.split(" ", 1)[1].replace('"', "").split(",")
                              if "=" in kv)
                # the scope holds commas ("pull,push"): take it from the header itself
                scope = challenge.split('scope="', 1)[1].split('"', 1)[0] \
                    if 'scope="' in challenge else ""
                q = urllib.parse.urlencode({"service": params.get("service", ""), "scope": scope})
                tok_headers = {"Authorization": self._basic()} if self.creds else {}
                st, _, tok = self._once("GET", params["realm"] + "?" + q, None, tok_headers)
                assert st == 200, f"token server said {st}"
                self._auth = "Bearer " + json.loads(tok)["token"]
            headers["Authorization"] = self._auth
            status, h, data = self._once(method, url, body, headers)
        return status, h, data

    def blob(self, repo: str, data: bytes) -> dict:
        """Upload `data` as a blob of `repo`; return {"digest", "size"}."""
        digest = sha256(data)
        status, h, body = self.request("POST", f"/v2/{repo}/blobs/uploads/")
        assert status == 202, f"POST upload: {status} {body!r}"
        location = urllib.parse.urljoin(self.base + "/", h["Location"])
        sep = "&" if "?" in location else "?"
        status, _, body = self.request("PUT", f"{location}{sep}digest={digest}", data,
                                       {"Content-Type": "application/octet-stream",
                                        "Content-Length": str(len(data))})
        assert status == 201, f"PUT blob: {status} {body!r}"
        return {"digest": digest, "size": len(data)}

    def manifest(self, repo: str, ref: str, doc: dict) -> tuple[str, bytes]:
        """PUT a manifest or index under tag or digest `ref`; return (digest, bytes)."""
        data = json.dumps(doc, sort_keys=True).encode()
        status, _, body = self.request("PUT", f"/v2/{repo}/manifests/{ref or sha256(data)}",
                                       data, {"Content-Type": doc["mediaType"]})
        assert status == 201, f"PUT manifest: {status} {body!r}"
        return sha256(data), data

    def image(self, repo: str, tag: str | None, layers: list[bytes], *, arch: str = "amd64",
              docker: bool = False, compression: str = "gzip",
              config: dict | None = None, foreign_urls: dict[int, str] | None = None,
              cdn: "BlobCDN | None" = None) -> tuple[str, bytes]:
        """Push an image made of uncompressed `layers`; return (manifest digest, bytes).

        `foreign_urls` {layer index: URL prefix}: that layer is pushed as a
        non-distributable layer, served by `cdn` instead of the registry.
        """
        import imagebuild
        descs = []
        for i, layer in enumerate(layers):
            if compression == "gzip":
                data = gzip.compress(layer, mtime=0)
                media_type = DOCKER_LAYER_GZIP if docker else OCI_LAYER + "+gzip"
            elif compression == "zstd":
                import zstandard
                data = zstandard.ZstdCompressor().compress(layer)
                media_type = OCI_LAYER + "+zstd"
            else:
                data, media_type = layer, OCI_LAYER
            if foreign_urls and i in foreign_urls:
                cdn.add(data)
                desc = {"mediaType": OCI_FOREIGN_GZIP, "digest": sha256(data),
                        "size": len(data), "urls": [foreign_urls[i] + sha256(data)]}
            else:
                desc = {"mediaType": media_type, **self.blob(repo, data)}
            descs.append(desc)
        cfg = imagebuild.image_config(layers, config, arch)
        manifest = {"schemaVersion": 2,
                    "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
                    "config": {"mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
                               **self.blob(repo, cfg)},
                    "layers": descs}
        return self.manifest(repo, tag or "", manifest)

    def index(self, repo: str, tag: str, manifests: list[tuple[str, str, bytes]],
              docker: bool = False) -> tuple[str, bytes]:
        """Push an index / manifest list of [(arch, digest, manifest bytes)] under `tag`."""
        doc = {"schemaVersion": 2, "mediaType": DOCKER_LIST if docker else OCI_INDEX,
               "manifests": [{"mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
                              "digest": digest, "size": len(data),
                              "platform": {"architecture": arch, "os": "linux"}}
                             for arch, digest, data in manifests]}
        return self.manifest(repo, tag, doc)


# -- proxies --------------------------------------------------------------------------------

class CuttingProxy:
    """TCP proxy 127.0.0.1:port -> target that misbehaves on purpose.

    `cut_after`: the first connection that has sent more than this many
    bytes to the client is closed (once). `delay`: seconds to sleep per
    16 KiB sent to the client (a slow link). `upstream` records what the
    clients sent (plain HTTP: the request headers can be inspected).
    """

    def __init__(self, target_port: int, cut_after: int | None = None, delay: float = 0):
        self.target = ("127.0.0.1", target_port)
        self.cut_after, self.delay = cut_after, delay
        self.cuts = 0
        self.upstream = bytearray()
        self._lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, downstream: bool) -> None:
        sent = 0
        try:
            while True:
                data = src.recv(16384)
                if not data:
                    break
                if not downstream:
                    with self._lock:
                        self.upstream += data
                if downstream and self.cut_after is not None:
                    with self._lock:
                        cut = self.cuts == 0 and sent + len(data) > self.cut_after
                        if cut:
                            self.cuts += 1
                    if cut:
                        dst.sendall(data[: max(0, self.cut_after - sent)])
                        break
                dst.sendall(data)
                sent += len(data)
                if downstream and self.delay:
                    time.sleep(self.delay)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def stop(self) -> None:
        self._stop = True
        self.sock.close()
        for s in self._conns:
            try:
                s.close()
            except OSError:
                pass


class BlobCDN:
    """A plain HTTP server on 127.0.0.3 serving blobs by digest; records request headers."""

    def __init__(self):
        self.blobs: dict[str, bytes] = {}
        self.seen: list[dict[str, str]] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.seen.append(dict(self.headers))
                data = owner.blobs.get(self.path.split("?", 1)[0].rsplit("/", 1)[-1])
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.3", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.3:{self.port}/blobs/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def add(self, data: bytes) -> str:
        self.blobs[sha256(data)] = data
        return self.base + sha256(data)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class RedirectingFront:
    """A registry front on 127.0.0.1: forwards to `registry`, but answers
    blob GETs with `307 Location: <cdn>/blobs/DIGEST` (copying the blob to
    the CDN first), as registries that serve blobs from S3 do."""

    def __init__(self, registry: RegistryServer, cdn: BlobCDN):
        owner = self
        self.registry, self.cdn = registry, cdn
        self.redirects = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                owner._handle(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _handle(self, h) -> None:
        if "/blobs/sha256:" in h.path:
            digest = h.path.rsplit("/", 1)[-1]
            # Ask the registry with the client's credentials, as S3 would check a signature.
            conn = http.client.HTTPConnection("127.0.0.1", self.registry.port, timeout=30)
            conn.request("GET", h.path, headers={k: v for k, v in h.headers.items()
                                                 if k.lower() == "authorization"})
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
            if resp.status == 200:
                self.cdn.blobs[digest] = data
                self.redirects += 1
                h.send_response(307)
                h.send_header("Location", self.cdn.base + digest + "?X-Signature=secret")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            status, headers, body = resp.status, resp.headers, data
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.registry.port, timeout=30)
            conn.request("GET", h.path, headers={k: v for k, v in h.headers.items()
                                                 if k.lower() not in ("host", "connection")})
            resp = conn.getresponse()
            status, headers, body = resp.status, resp.headers, resp.read()
            conn.close()
        h.send_response(status)
        for k, v in headers.items():
            if k.lower() not in ("content-length", "connection", "transfer-encoding", "date",
                                 "server"):
                h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
