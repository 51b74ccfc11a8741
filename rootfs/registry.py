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
no message ever holds a password or a token. The HTTP layer below (the
connections, TLS, certs.d, those errors) is minipod.rootfs.transport; a
blob download that resumes is minipod.rootfs.blobreader.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from minipod.rootfs.blobreader import BlobReader
from minipod.rootfs.credentials import Credentials
from minipod.rootfs.store import (DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST)
from minipod.rootfs.transport import (
    BACKOFF, DEFAULT_CERTS_DIR, RETRIES, TIMEOUT, Connections, Dropped, NotFound, RegistryError,
    TLSFailure, Unauthorized, Unreachable, is_loopback, os_error, parse_www_authenticate,
    registry_host, strip_query, url_hostport,
)

# Every manifest type we can use; an image index / manifest list lets us pick
# this host's platform. (Schema 1 is left out: registries then convert.)
MANIFEST_ACCEPT = (OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST)
_MAX_REDIRECTS = 10
_MAX_MANIFEST = 4 << 20   # the spec's limit for a manifest is 4 MiB
_RETRY_STATUS = {429, 500, 502, 503, 504}
_REDIRECT_STATUS = {301, 302, 303, 307, 308}


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
        self._lock = threading.Lock()              # guards the token cache
        self.conns = Connections(self.host, insecure=insecure, certs_dir=self.certs_dir,
                                 timeout=timeout)

    def close(self) -> None:
        """Close this thread's connections."""
        self.conns.close()

    def close_all(self) -> None:
        """Close the connections of every thread (when their work is over)."""
        self.conns.close_all()

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
            if realm_parts.scheme == "https" or is_loopback(url_hostport(realm_parts)) \
                    or (self.insecure and url_hostport(realm_parts) == self.host):
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
            except Dropped as e:
                last = f"the connection dropped: {e}"
            except _RetryStatus as e:
                last = f"HTTP {e.status}" + (" (too many requests: the registry limits the "
                                             "pull rate; log in, or wait)"
                                             if e.status == 429 else "")
            if attempt + 1 >= RETRIES:
                raise Unreachable(f"{method} {strip_query(url)} failed {RETRIES} times; "
                                  f"last: {last}")
            self._sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
            attempt += 1

    def _follow(self, method: str, url: str, headers: dict[str, str], read: bool,
                auth: str | None) -> Response:
        auth_host = url_hostport(urllib.parse.urlsplit(url))
        for _ in range(_MAX_REDIRECTS + 1):
            parts = urllib.parse.urlsplit(url)
            h = dict(headers)
            if auth and url_hostport(parts) == auth_host:
                h["Authorization"] = auth
            raw = self.conns.send(method, url, h)
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
                        raise RegistryError(f"{strip_query(url)}: the response is larger "
                                            f"than {_MAX_MANIFEST} bytes")
                    raw.read()   # drain what is left, so the connection is reusable
                except (OSError, http.client.HTTPException) as e:
                    self.conns.drop(parts.scheme, url_hostport(parts))
                    raise Dropped(f"{url_hostport(parts)}: {os_error(e)}") from None
            else:
                resp.raw = raw
            return resp
        raise RegistryError(f"{strip_query(url)}: more than {_MAX_REDIRECTS} redirects")

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
                    on_retry: Callable[[str], None] | None = None) -> BlobReader:
        return BlobReader(self, repo, digest, size, urls or [], on_bytes, on_retry)


class _RetryStatus(Exception):
    def __init__(self, status: int):
        self.status = status
