"""A client for the OCI distribution API: what `docker pull` says to a registry.

A registry is an HTTP server (OCI distribution spec, "spec.md"; Docker's
"HTTP API V2"). Pulling an image takes three kinds of request:

    GET /v2/                                  is it a registry? which auth?
    GET /v2/REPO/manifests/TAG|DIGEST         the manifest (or an index)
    GET /v2/REPO/blobs/DIGEST                 the config and each layer

The same steps by hand, against Docker Hub:

    $ curl -si https://registry-1.docker.io/v2/ | grep -i www-auth
    www-authenticate: Bearer realm="https://auth.docker.io/token",service="registry.docker.io"
    $ TOKEN=$(curl -s "https://auth.docker.io/token?service=registry.docker.io&scope=repository:library/busybox:pull" | jq -r .token)
    $ curl -s -H "Authorization: Bearer $TOKEN" \\
        -H "Accept: application/vnd.oci.image.index.v1+json" \\
        https://registry-1.docker.io/v2/library/busybox/manifests/latest
    $ curl -sL -H "Authorization: Bearer $TOKEN" -o layer.tgz \\
        https://registry-1.docker.io/v2/library/busybox/blobs/sha256:…

What this module takes care of:
- Accept: a registry answers with the first manifest type it has that the
  client accepts; Distribution 2.8 answers 404 for an OCI manifest unless
  the OCI types are listed, so all four types are always sent.
- Auth (distribution's "token.md"): a 401 carries `WWW-Authenticate:
  Bearer realm=…,service=…,scope=…`; the client GETs a token from the realm
  (anonymously, or with basic credentials) and retries with `Authorization:
  Bearer TOKEN`. Tokens are cached per scope until they expire. A `Basic`
  challenge is answered with the user's credentials.
- Redirects: blobs are often served from a CDN or S3 on another host; the
  Authorization header is never sent to another host.
- Dropped connections: a blob download resumes with `Range: bytes=N-`
  (or restarts, skipping N bytes, if the server ignores Range).
- Transport: HTTPS with the system's CAs. A registry may have its own CA,
  like Docker's /etc/docker/certs.d: /etc/minipod/certs.d/HOST[:PORT]/*.crt
  (and a client certificate, client.cert + client.key). Plain HTTP only
  for insecure registries: those the user lists, and loopback addresses
  (localhost, 127.0.0.0/8, ::1), as Docker does; those are tried with
  HTTPS first (without verification), then HTTP.
- Docker Hub's name docker.io is served by registry-1.docker.io.

Errors are subclasses of RegistryError whose message a user can act on;
no message ever holds a password or a token.
"""
from __future__ import annotations

import base64
import errno
import http.client
import ipaddress
import json
import re
import socket
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from minipod import __version__
from minipod.rootfs.store import (DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST)

DOCKER_HUB = "docker.io"
DOCKER_HUB_HOST = "registry-1.docker.io"
DEFAULT_CERTS_DIR = Path("/etc/minipod/certs.d")
DEFAULT_INSECURE_FILE = Path("/etc/minipod/insecure-registries")

# Every manifest type we can use; an image index / manifest list lets us pick
# this host's platform. (Schema 1 is left out: registries then convert.)
MANIFEST_ACCEPT = (OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST)

USER_AGENT = f"minipod/{__version__}"
TIMEOUT = 30.0            # seconds without a byte before a connection counts as dropped
RETRIES = 5               # attempts per request on a dropped connection or a 5xx
_BACKOFF = (0.2, 0.5, 1.0, 2.0, 4.0)
_MAX_REDIRECTS = 10
_MAX_MANIFEST = 4 << 20   # the spec's limit for a manifest is 4 MiB
_RETRY_STATUS = {429, 500, 502, 503, 504}
_REDIRECT_STATUS = {301, 302, 303, 307, 308}
# connect() errors that no retry will cure soon: report them at once.
_UNREACHABLE = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH,
                errno.EADDRNOTAVAIL}


# -- errors ---------------------------------------------------------------------

class RegistryError(Exception):
    """A registry request failed; `reason` is a short stable class for status."""

    reason = "error"


class NotFound(RegistryError):
    reason = "not found"


class Unauthorized(RegistryError):
    reason = "unauthorized"


class Unreachable(RegistryError):
    reason = "unreachable"


class TLSFailure(RegistryError):
    reason = "TLS failure"

    def __init__(self, message: str, untrusted: bool = False):
        super().__init__(message)
        self.untrusted = untrusted      # the certificate failed verification


class _Dropped(Exception):
    """Internal: the connection broke; the request may be retried."""


# -- pure helpers -------------------------------------------------------------------

def registry_host(registry: str) -> str:
    """The host[:port] that serves `registry`: docker.io -> registry-1.docker.io."""
    return DOCKER_HUB_HOST if registry in (DOCKER_HUB, "index.docker.io") else registry


def split_host(hostport: str) -> tuple[str, int | None]:
    """("127.0.0.1", 5000) from "127.0.0.1:5000"; ("::1", None) from "[::1]"."""
    parts = urllib.parse.urlsplit("//" + hostport)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f'invalid registry address "{hostport}": bad port') from None
    return parts.hostname or hostport, port


def read_insecure_file(path: Path) -> set[str]:
    """HOST[:PORT] or CIDR entries, one a line, "#" comments; empty if no file."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return set()
    return {line.split("#", 1)[0].strip() for line in text.splitlines()} - {""}


def is_loopback(registry: str) -> bool:
    """Is `registry` on this machine: localhost, 127.0.0.0/8 or ::1?"""
    host, _ = split_host(registry)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_insecure(registry: str, insecure: set[str] | frozenset[str] = frozenset()) -> bool:
    """Did the user mark `registry` insecure? (HOST:PORT, HOST, or a network like 10.0.0.0/8.)

    An insecure registry may answer in plain HTTP, and its TLS certificate
    is not verified (Docker's `insecure-registries`).
    """
    host, _ = split_host(registry)
    if registry in insecure or host in insecure:
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    for entry in insecure:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def plain_http_allowed(registry: str, insecure: set[str] | frozenset[str] = frozenset()) -> bool:
    """May we speak plain HTTP to `registry`? If marked insecure, or on loopback (as Docker)."""
    return is_insecure(registry, insecure) or is_loopback(registry)


_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM_RE = re.compile(rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN}))\s*,?')
_SCHEME_RE = re.compile(rf"\s*,?\s*({_TOKEN})(?:\s+|$)")


def parse_www_authenticate(value: str) -> list[tuple[str, dict[str, str]]]:
    """Parse a WWW-Authenticate header (RFC 7235) into [(scheme, params)].

    >>> parse_www_authenticate('Bearer realm="https://a/token",service="reg"')
    [('bearer', {'realm': 'https://a/token', 'service': 'reg'})]

    Schemes are lowercased; quoted values are unescaped (a scope such as
    "repository:a/b:pull,push" holds a comma, so a naive split is wrong).
    """
    challenges: list[tuple[str, dict[str, str]]] = []
    pos = 0
    while pos < len(value):
        m = _SCHEME_RE.match(value, pos)
        if not m:
            break
        scheme, pos = m.group(1).lower(), m.end()
        params: dict[str, str] = {}
        while True:
            p = _PARAM_RE.match(value, pos)
            if not p:
                break
            params[p.group(1).lower()] = (re.sub(r"\\(.)", r"\1", p.group(2))
                                          if p.group(2) is not None else p.group(3))
            pos = p.end()
        challenges.append((scheme, params))
    return challenges


def accept_header() -> str:
    """The Accept header for manifest requests (see the module docstring)."""
    return ", ".join(MANIFEST_ACCEPT)


def _error_message(body: bytes) -> str:
    """The registry's own words from {"errors": [{"code", "message"}]}, if any."""
    try:
        errors = json.loads(body).get("errors") or []
        return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}".strip(": ")
                         for e in errors if isinstance(e, dict))
    except (ValueError, AttributeError):
        return ""


# -- the client ---------------------------------------------------------------------

@dataclass(frozen=True)
class Credentials:
    """A user name and password (or token) for one registry; never printed."""

    username: str
    password: str
    source: str = ""      # where they came from, for messages

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def __repr__(self) -> str:  # keep the password out of tracebacks and logs
        return f"Credentials(username={self.username!r}, source={self.source!r})"


@dataclass
class Response:
    """A response whose body is either read (`body`) or still open (`raw`)."""

    status: int
    headers: http.client.HTTPMessage
    url: str
    raw: http.client.HTTPResponse | None = None
    body: bytes = b""


class Registry:
    """One registry, as seen by one pull (or login). Safe to share between threads.

    `registry` is the reference's registry name ("docker.io",
    "localhost:5000"). Connections are kept alive, one set per thread.
    `insecure`: the user marked it insecure: plain HTTP allowed, TLS not
    verified. A loopback registry may use plain HTTP too, but if it speaks
    TLS its certificate is verified (stricter than Docker, which skips
    verification there: a test CA must be trusted through certs.d).
    """

    def __init__(self, registry: str, *, insecure: bool = False,
                 certs_dir: Path | None = DEFAULT_CERTS_DIR,
                 credentials: Credentials | None = None, timeout: float = TIMEOUT,
                 sleep: Callable[[float], None] = time.sleep):
        self.registry = registry
        self.host = registry_host(registry)
        self.insecure = insecure
        self.loopback = is_loopback(self.host)
        self.certs_dir = Path(certs_dir) if certs_dir else None
        self.credentials = credentials
        self.timeout = timeout
        self._sleep = sleep
        self.scheme: str | None = None           # decided by ping()
        self._challenge: tuple[str, dict[str, str]] | None = None
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self._contexts: dict[tuple[str, bool], ssl.SSLContext] = {}
        self._open: set[http.client.HTTPConnection] = set()   # of all threads

    # -- transport ----------------------------------------------------------------
    def _hostport(self, url: urllib.parse.SplitResult) -> str:
        return url.netloc.rsplit("@", 1)[-1]

    def ssl_context(self, hostport: str, verify: bool = True) -> ssl.SSLContext:
        """System CAs plus certs.d/HOSTPORT/*.crt (and a client.cert/.key pair)."""
        key = (hostport, verify)
        with self._lock:
            if key in self._contexts:
                return self._contexts[key]
        ctx = ssl.create_default_context()
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        d = self.certs_dir / hostport if self.certs_dir else None
        if d is not None and d.is_dir():
            for ca in sorted(d.glob("*.crt")):
                try:
                    ctx.load_verify_locations(cafile=str(ca))
                except (OSError, ssl.SSLError) as e:
                    raise TLSFailure(f"cannot load the CA certificate {ca}: {e}") from None
            for cert in sorted(d.glob("*.cert")):
                keyfile = cert.with_suffix(".key")
                try:
                    ctx.load_cert_chain(str(cert), str(keyfile))
                except (OSError, ssl.SSLError) as e:
                    raise TLSFailure(f"cannot load the client certificate {cert} "
                                     f"with key {keyfile}: {e}") from None
        with self._lock:
            self._contexts[key] = ctx
        return ctx

    def _connection(self, scheme: str, hostport: str) -> http.client.HTTPConnection:
        pool = self._local.__dict__.setdefault("pool", {})
        conn = pool.get((scheme, hostport))
        if conn is None:
            host, port = split_host(hostport)
            if scheme == "https":
                verify = not (self.insecure and hostport == self.host)
                conn = http.client.HTTPSConnection(
                    host, port, timeout=self.timeout,
                    context=self.ssl_context(hostport, verify))
            else:
                conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
            pool[(scheme, hostport)] = conn
            with self._lock:
                self._open.add(conn)
        return conn

    def _drop(self, scheme: str, hostport: str) -> None:
        conn = self._local.__dict__.get("pool", {}).pop((scheme, hostport), None)
        if conn is not None:
            self._forget(conn)

    def _forget(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        with self._lock:
            self._open.discard(conn)

    def close(self) -> None:
        """Close this thread's connections."""
        for conn in self._local.__dict__.pop("pool", {}).values():
            self._forget(conn)

    def close_all(self) -> None:
        """Close the connections of every thread (when their work is over)."""
        self.close()
        with self._lock:
            conns, self._open = list(self._open), set()
        for conn in conns:
            conn.close()

    def _send(self, method: str, url: str, headers: dict[str, str]) -> http.client.HTTPResponse:
        """One HTTP exchange; connection failures become the errors users see."""
        parts = urllib.parse.urlsplit(url)
        hostport = self._hostport(parts)
        path = parts.path + ("?" + parts.query if parts.query else "")
        conn = self._connection(parts.scheme, hostport)
        try:
            conn.request(method, path or "/", headers={"User-Agent": USER_AGENT, **headers})
            return conn.getresponse()
        except ssl.SSLCertVerificationError as e:
            self._drop(parts.scheme, hostport)
            raise TLSFailure(self._tls_hint(hostport, e.verify_message or str(e)),
                             untrusted=True) from None
        except ssl.SSLError as e:
            self._drop(parts.scheme, hostport)
            raise TLSFailure(self._tls_hint(hostport, e.reason or str(e))) from None
        except OSError as e:
            self._drop(parts.scheme, hostport)
            if not (isinstance(e, socket.gaierror) or e.errno in _UNREACHABLE):
                # Reset, timeout, a keep-alive connection the server had closed…
                raise _Dropped(f"{hostport}: {_os_error(e)}") from None
            host, port = split_host(hostport)
            port = port or (443 if parts.scheme == "https" else 80)
            raise Unreachable(f"cannot reach {host} port {port} ({parts.scheme}): "
                              f"{_os_error(e)}") from None
        except http.client.HTTPException as e:
            self._drop(parts.scheme, hostport)
            raise _Dropped(f"{hostport}: {_os_error(e)}") from None

    def _tls_hint(self, hostport: str, why: str) -> str:
        where = (f"{self.certs_dir}/{hostport}/ca.crt" if self.certs_dir
                 else f"certs.d/{hostport}/ca.crt")
        hint = f"if the registry uses its own CA, put the CA certificate in {where}"
        if "WRONG_VERSION_NUMBER" in why.upper():
            hint = ("the server does not speak TLS; if it is a plain-HTTP registry, "
                    "mark it insecure (--insecure or /etc/minipod/insecure-registries)")
        return f"TLS handshake with {hostport} failed: {why}; {hint}"

    def _url(self, path: str) -> str:
        return f"{self.scheme or 'https'}://{self.host}{path}"

    # -- auth -----------------------------------------------------------------------
    def _auth_header(self, scope: str | None) -> str | None:
        if self._challenge is None:
            return None
        scheme, params = self._challenge
        if scheme == "basic":
            return self.credentials.basic() if self.credentials else None
        if scheme == "bearer":
            return "Bearer " + self._token(params, scope)
        return None

    def _token(self, params: dict[str, str], scope: str | None, fresh: bool = False) -> str:
        """A bearer token for `scope` from the challenge's realm, cached until it expires."""
        realm = params.get("realm")
        if not realm:
            raise RegistryError(f"registry {self.host} asks for a bearer token "
                                "but names no realm to get it from")
        service = params.get("service", "")
        scope = scope or params.get("scope", "")
        key = (realm, service, scope)
        with self._lock:
            token, expires = self._tokens.get(key, ("", 0.0))
        if token and not fresh and time.monotonic() < expires:
            return token
        query = urllib.parse.urlencode(
            [(k, v) for k, v in (("service", service), ("scope", scope)) if v])
        url = realm + ("&" if "?" in realm else "?") + query if query else realm
        auth = None
        realm_parts = urllib.parse.urlsplit(realm)
        if self.credentials is not None:
            # Never send a password in clear text, except to a host marked insecure.
            if realm_parts.scheme == "https" or is_loopback(self._hostport(realm_parts)) \
                    or (self.insecure and self._hostport(realm_parts) == self.host):
                auth = self.credentials.basic()
        resp = self._exchange("GET", url, {}, read=True, auth=auth)
        if resp.status in (401, 403):
            raise self._unauthorized(f"the token server {realm_parts.netloc} refused")
        if resp.status != 200:
            raise RegistryError(f"token server {realm_parts.netloc} answered HTTP "
                                f"{resp.status} {_error_message(resp.body)}".rstrip())
        try:
            doc = json.loads(resp.body)
            token = doc.get("token") or doc.get("access_token")
            lifetime = float(doc.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            token = None
        if not token:
            raise RegistryError(f"token server {realm_parts.netloc} sent no token")
        with self._lock:
            # Renew 10 s early so a token does not expire in flight.
            self._tokens[key] = (token, time.monotonic() + max(lifetime - 10, 1))
        return token

    def _unauthorized(self, what: str, repo: str | None = None) -> Unauthorized:
        login = f"`minipod login {self.registry}`"
        if self.credentials is not None:
            source = self.credentials.source
            return Unauthorized(f"unauthorized: {what} the credentials of user "
                                f"{self.credentials.username!r} for {self.registry}"
                                + (f" (from {source}); log in again with {login}"
                                   if source else ""))
        target = f"{self.registry}/{repo}" if repo else self.registry
        return Unauthorized(f"unauthorized: pull access denied for {target}: the repository "
                            f"does not exist or needs credentials: run {login}")

    # -- requests -------------------------------------------------------------------
    def _exchange(self, method: str, url: str, headers: dict[str, str], *,
                  read: bool, auth: str | None = None) -> Response:
        """Send, following redirects, retrying dropped connections and 5xx answers.

        `auth` (an Authorization value) goes only to the host of `url`: a
        redirect to a CDN on another host must not carry it.
        """
        attempt = 0
        while True:
            try:
                return self._follow(method, url, headers, read, auth)
            except _Dropped as e:
                last = f"the connection dropped: {e}"
            except _RetryStatus as e:
                last = f"HTTP {e.status}" + (" (too many requests: the registry limits the "
                                             "pull rate; log in, or wait)"
                                             if e.status == 429 else "")
            if attempt + 1 >= RETRIES:
                raise Unreachable(f"{method} {_strip_query(url)} failed {RETRIES} times; "
                                  f"last: {last}")
            self._sleep(_BACKOFF[min(attempt, len(_BACKOFF) - 1)])
            attempt += 1

    def _follow(self, method: str, url: str, headers: dict[str, str], read: bool,
                auth: str | None) -> Response:
        auth_host = self._hostport(urllib.parse.urlsplit(url))
        for _ in range(_MAX_REDIRECTS + 1):
            parts = urllib.parse.urlsplit(url)
            h = dict(headers)
            if auth and self._hostport(parts) == auth_host:
                h["Authorization"] = auth
            raw = self._send(method, url, h)
            if raw.status in _REDIRECT_STATUS and raw.getheader("Location"):
                raw.read()
                url = urllib.parse.urljoin(url, raw.getheader("Location"))
                if raw.status == 303:
                    method = "GET"
                continue
            if raw.status in _RETRY_STATUS:
                raw.read()
                raise _RetryStatus(raw.status)
            resp = Response(raw.status, raw.headers, url)
            if read or raw.status >= 300:
                try:
                    resp.body = raw.read(_MAX_MANIFEST + 1)
                    if len(resp.body) > _MAX_MANIFEST:
                        raise RegistryError(f"{_strip_query(url)}: the response is larger "
                                            f"than {_MAX_MANIFEST} bytes")
                    raw.read()   # drain what is left, so the connection is reusable
                except (OSError, http.client.HTTPException) as e:
                    self._drop(parts.scheme, self._hostport(parts))
                    raise _Dropped(f"{self._hostport(parts)}: {_os_error(e)}") from None
            else:
                resp.raw = raw
            return resp
        raise RegistryError(f"{_strip_query(url)}: more than {_MAX_REDIRECTS} redirects")

    def request(self, method: str, path: str, headers: dict[str, str] | None = None, *,
                scope: str | None = None, read: bool = True, repo: str | None = None,
                url: str | None = None) -> Response:
        """A request to the registry, with auth: a 401 is answered once, then refused."""
        if self.scheme is None:
            self.ping()
        headers = headers or {}
        target = url or self._url(path)
        resp = self._exchange(method, target, headers, read=read,
                              auth=self._auth_header(scope))
        if resp.status == 401:
            self._note_challenge(resp)
            if self._challenge is not None and (self._challenge[0] == "bearer"
                                                or self.credentials is not None):
                if self._challenge[0] == "bearer":
                    # The token may have expired or lack this scope: get a fresh one.
                    scope = self._challenge[1].get("scope") or scope
                    auth = "Bearer " + self._token(self._challenge[1], scope, fresh=True)
                else:
                    auth = self._auth_header(scope)
                resp = self._exchange(method, target, headers, read=read, auth=auth)
        if resp.status in (401, 403):
            raise self._unauthorized(f"registry {self.host} refused", repo)
        return resp

    def _note_challenge(self, resp: Response) -> None:
        for value in resp.headers.get_all("WWW-Authenticate") or []:
            for scheme, params in parse_www_authenticate(value):
                if scheme in ("bearer", "basic"):
                    self._challenge = (scheme, params)
                    return

    def ping(self) -> None:
        """GET /v2/: pick HTTPS or (insecure only) HTTP, and learn how to authenticate."""
        schemes = ["https", "http"] if self.insecure or self.loopback else ["https"]
        for i, scheme in enumerate(schemes):
            try:
                resp = self._exchange("GET", f"{scheme}://{self.host}/v2/", {}, read=True)
            except (TLSFailure, Unreachable) as e:
                if isinstance(e, TLSFailure) and e.untrusted and not self.insecure:
                    raise          # it speaks TLS, with a certificate we do not trust
                if i + 1 < len(schemes):
                    continue       # Docker's fallback for insecure registries
                raise
            if resp.status == 401:
                self._note_challenge(resp)
            elif resp.status == 404:
                raise RegistryError(f"{scheme}://{self.host}/v2/ answered 404: "
                                    "this is not a Docker/OCI registry")
            elif resp.status >= 300:
                raise RegistryError(f"{scheme}://{self.host}/v2/ answered HTTP {resp.status}")
            self.scheme = scheme
            return

    def check_login(self) -> None:
        """Prove the credentials work, like `docker login`: Unauthorized if not."""
        self.ping()
        if self._challenge is None:
            return                      # the registry asks for nothing
        scheme, params = self._challenge
        if scheme == "bearer":
            self._token(params, params.get("scope"), fresh=True)
            return
        resp = self._exchange("GET", self._url("/v2/"), {}, read=True,
                              auth=self._auth_header(None))
        if resp.status in (401, 403):
            raise self._unauthorized(f"registry {self.host} refused")

    # -- the API --------------------------------------------------------------------
    def get_manifest(self, repo: str, ref: str, where: str = "") -> tuple[bytes, str]:
        """(body, media type) of manifest `ref` (a tag or a digest) of `repo`.

        NotFound says "image REGISTRY/REPO:TAG not found in registry".
        """
        resp = self.request("GET", f"/v2/{repo}/manifests/{ref}", {"Accept": accept_header()},
                            scope=f"repository:{repo}:pull", repo=repo)
        name = where or f"{self.registry}/{repo}{'@' if ':' in ref else ':'}{ref}"
        if resp.status == 404:
            said = _error_message(resp.body)
            raise NotFound(f"image {name} not found in registry"
                           + (f" ({said})" if said else ""))
        if resp.status != 200:
            raise RegistryError(f"manifest of {name}: HTTP {resp.status} "
                                f"{_error_message(resp.body)}".rstrip())
        media_type = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
        return resp.body, media_type

    def open_blob(self, repo: str, digest: str, offset: int = 0,
                  url: str | None = None) -> Response:
        """Open blob `digest` for reading from byte `offset` (status 200 or 206).

        `url` is a foreign layer's own address (no registry auth is sent there).
        """
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        if url is not None:
            resp = self._exchange("GET", url, headers, read=False)
        else:
            resp = self.request("GET", f"/v2/{repo}/blobs/{digest}", headers,
                                scope=f"repository:{repo}:pull", read=False, repo=repo)
        if resp.status == 404:
            raise NotFound(f"blob {digest} of {self.registry}/{repo} not found in registry"
                           + (f" ({_error_message(resp.body)})" if resp.body else ""))
        if resp.status not in (200, 206):
            raise RegistryError(f"blob {digest} of {self.registry}/{repo}: HTTP {resp.status} "
                                f"{_error_message(resp.body)}".rstrip())
        return resp

    def blob_reader(self, repo: str, digest: str, size: int | None,
                    urls: list[str] | None = None,
                    on_bytes: Callable[[int], None] | None = None,
                    on_retry: Callable[[str], None] | None = None) -> "BlobReader":
        return BlobReader(self, repo, digest, size, urls or [], on_bytes, on_retry)


class _RetryStatus(Exception):
    def __init__(self, status: int):
        self.status = status


class BlobReader:
    """A file-like `read(n)` over a blob that survives dropped connections.

    When the stream breaks (reset, timeout, or it ends short of `size`), the
    blob is asked for again with `Range: bytes=N-`; a server that ignores
    Range answers 200 with the whole blob, and the first N bytes are skipped.
    The bytes the caller gets are always the blob in order: the store hashes
    them, so a wrong resume cannot go unnoticed.
    """

    def __init__(self, client: Registry, repo: str, digest: str, size: int | None,
                 urls: list[str], on_bytes, on_retry):
        self.client, self.repo, self.digest, self.size = client, repo, digest, size
        self.urls = urls
        self.on_bytes, self.on_retry = on_bytes, on_retry
        self.got = 0
        self.attempts = 0
        self._resp: http.client.HTTPResponse | None = None
        self._url: str | None = None

    def _open(self) -> None:
        if self.urls:
            # A foreign layer: try its URLs in turn (the OCI spec's `urls`).
            last: Exception | None = None
            for url in self.urls:
                if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
                    continue
                try:
                    resp = self.client.open_blob(self.repo, self.digest, self.got, url=url)
                    break
                except RegistryError as e:
                    last = e
            else:
                raise last or RegistryError(f"layer {self.digest}: no http(s) URL in {self.urls}")
        else:
            resp = self.client.open_blob(self.repo, self.digest, self.got)
        skip = 0
        if self.got and resp.status == 200:
            skip = self.got                 # the server ignored Range: skip what we have
        elif self.got:
            start = _content_range_start(resp.headers.get("Content-Range"))
            if start != self.got:
                resp.raw.close()
                raise RegistryError(f"blob {self.digest}: asked for bytes from {self.got}, "
                                    f"the server sent {resp.headers.get('Content-Range')!r}")
        self._resp = resp.raw
        while skip:
            chunk = self._resp.read(min(skip, 1 << 20))
            if not chunk:
                raise _Dropped("the stream ended while skipping")
            skip -= len(chunk)

    def read(self, n: int = -1) -> bytes:
        while True:
            try:
                if self._resp is None:
                    self._open()
                # read1: what has arrived (up to n), not wait for all n bytes,
                # so progress moves and a kill leaves a visible partial file.
                chunk = self._resp.read1(n if n and n > 0 else 1 << 20)
                if not chunk and self.size is not None and self.got < self.size:
                    raise _Dropped(f"the stream ended after {self.got} of {self.size} bytes")
            except (_Dropped, OSError, http.client.HTTPException) as e:
                self._reset()
                self.attempts += 1
                if self.attempts >= RETRIES:
                    raise Unreachable(f"blob {self.digest} of {self.client.registry}/{self.repo}: "
                                      f"the download broke {self.attempts} times; last: "
                                      f"{_os_error(e) if isinstance(e, OSError) else e}") from None
                if self.on_retry:
                    self.on_retry(f"resuming at byte {self.got}")
                self.client._sleep(_BACKOFF[min(self.attempts - 1, len(_BACKOFF) - 1)])
                continue
            self.got += len(chunk)
            if self.on_bytes and chunk:
                self.on_bytes(len(chunk))
            return chunk

    def _reset(self) -> None:
        if self._resp is not None:
            self._resp.close()
            self._resp = None
        # The connection's state is unknown after a break: start a new one.
        self.client.close()

    def close(self) -> None:
        if self._resp is not None:
            if not self._resp.isclosed():
                self.client.close()        # unread bytes: the connection cannot be reused
            self._resp.close()
            self._resp = None

    def __enter__(self) -> "BlobReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _content_range_start(value: str | None) -> int | None:
    m = re.match(r"\s*bytes\s+(\d+)-", value or "")
    return int(m.group(1)) if m else None


def _strip_query(url: str) -> str:
    """A URL for messages: a signed CDN URL's query holds secrets."""
    return url.split("?", 1)[0]


def _os_error(e: BaseException) -> str:
    if isinstance(e, OSError) and e.errno:
        return f"{e.strerror or e} (errno {e.errno})"
    if isinstance(e, socket.timeout):
        return "timed out"
    return str(e) or type(e).__name__
