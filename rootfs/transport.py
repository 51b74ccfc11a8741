"""HTTP to a registry: its address, TLS, kept-alive connections, the errors users see.

The registry client (minipod.rootfs.registry) speaks the distribution
protocol over this layer:

- `Connections` keeps one HTTP(S) connection per host and thread, makes
  the TLS contexts (system CAs plus /etc/minipod/certs.d/HOST[:PORT]/*.crt
  and a client.cert/client.key pair, like Docker's /etc/docker/certs.d),
  and turns socket and TLS failures into RegistryError subclasses with a
  hint (`send`), or `Dropped` when a retry may cure it.
- Which registries may speak plain HTTP: those the user lists as
  insecure (HOST, HOST:PORT or a network) and loopback ones, as Docker.
- `parse_www_authenticate`: the WWW-Authenticate header (RFC 7235).

No message ever holds a password, a token, or a signed URL's query.
"""

from __future__ import annotations

import errno
import http.client
import ipaddress
import re
import socket
import ssl
import threading
import urllib.parse
from pathlib import Path

from minipod import __version__

DOCKER_HUB = "docker.io"
DOCKER_HUB_HOST = "registry-1.docker.io"
DEFAULT_CERTS_DIR = Path("/etc/minipod/certs.d")
DEFAULT_INSECURE_FILE = Path("/etc/minipod/insecure-registries")

USER_AGENT = f"minipod/{__version__}"
TIMEOUT = 30.0            # seconds without a byte before a connection counts as dropped
RETRIES = 5               # attempts per request on a dropped connection or a 5xx
BACKOFF = (0.2, 0.5, 1.0, 2.0, 4.0)
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


class Dropped(Exception):
    """The connection broke; the request may be retried (not a RegistryError)."""


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


# -- connections ----------------------------------------------------------------------

class Connections:
    """HTTP(S) connections to `host` (and the hosts it redirects to), kept
    alive, one set per thread; safe to share between threads.

    `insecure`: the user marked `host` insecure: its TLS certificate is not
    verified. `certs_dir`: the per-registry CA directory (certs.d).
    `timeout`: seconds without a byte before a connection counts as dropped.
    """

    def __init__(self, host: str, *, insecure: bool = False, certs_dir: Path | None = None,
                 timeout: float = TIMEOUT):
        self.host = host
        self.insecure = insecure
        self.certs_dir = certs_dir
        self.timeout = timeout
        self._lock = threading.Lock()
        self._local = threading.local()
        self._contexts: dict[tuple[str, bool], ssl.SSLContext] = {}
        self._open: set[http.client.HTTPConnection] = set()   # of all threads

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

    def drop(self, scheme: str, hostport: str) -> None:
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

    def send(self, method: str, url: str, headers: dict[str, str]) -> http.client.HTTPResponse:
        """One HTTP exchange; connection failures become the errors users see."""
        parts = urllib.parse.urlsplit(url)
        hostport = url_hostport(parts)
        path = parts.path + ("?" + parts.query if parts.query else "")
        conn = self._connection(parts.scheme, hostport)
        try:
            conn.request(method, path or "/", headers={"User-Agent": USER_AGENT, **headers})
            return conn.getresponse()
        except ssl.SSLCertVerificationError as e:
            self.drop(parts.scheme, hostport)
            raise TLSFailure(self._tls_hint(hostport, e.verify_message or str(e)),
                             untrusted=True) from None
        except ssl.SSLError as e:
            self.drop(parts.scheme, hostport)
            raise TLSFailure(self._tls_hint(hostport, e.reason or str(e))) from None
        except OSError as e:
            self.drop(parts.scheme, hostport)
            if not (isinstance(e, socket.gaierror) or e.errno in _UNREACHABLE):
                # Reset, timeout, a keep-alive connection the server had closed…
                raise Dropped(f"{hostport}: {os_error(e)}") from None
            host, port = split_host(hostport)
            port = port or (443 if parts.scheme == "https" else 80)
            raise Unreachable(f"cannot reach {host} port {port} ({parts.scheme}): "
                              f"{os_error(e)}") from None
        except http.client.HTTPException as e:
            self.drop(parts.scheme, hostport)
            raise Dropped(f"{hostport}: {os_error(e)}") from None

    def _tls_hint(self, hostport: str, why: str) -> str:
        where = (f"{self.certs_dir}/{hostport}/ca.crt" if self.certs_dir
                 else f"certs.d/{hostport}/ca.crt")
        hint = f"if the registry uses its own CA, put the CA certificate in {where}"
        if "WRONG_VERSION_NUMBER" in why.upper():
            hint = ("the server does not speak TLS; if it is a plain-HTTP registry, "
                    "mark it insecure (--insecure or /etc/minipod/insecure-registries)")
        return f"TLS handshake with {hostport} failed: {why}; {hint}"


def url_hostport(url: urllib.parse.SplitResult) -> str:
    """The HOST[:PORT] of a split URL, without user info."""
    return url.netloc.rsplit("@", 1)[-1]


def strip_query(url: str) -> str:
    """A URL for messages: a signed CDN URL's query holds secrets."""
    return url.split("?", 1)[0]


def os_error(e: BaseException) -> str:
    """An OSError or HTTP failure as "strerror (errno N)" or its own words."""
    if isinstance(e, OSError) and e.errno:
        return f"{e.strerror or e} (errno {e.errno})"
    if isinstance(e, socket.timeout):
        return "timed out"
    return str(e) or type(e).__name__
