"""Registry credentials: the files Docker and podman write, and minipod's own.

`docker login` and `podman login` store a user name and password per
registry as base64("user:password") in a JSON file:

    {"auths": {"registry.example.com": {"auth": "dXNlcjpwYXNz"}},
     "credHelpers": {"gcr.io": "gcloud"}}

    $ jq -r '.auths["registry.example.com"].auth' ~/.docker/config.json | base64 -d
    user:pass

minipod reads, first match wins:
  1. $REGISTRY_AUTH_FILE (podman's override)
  2. minipod's own file, LIB/auth.json (what `minipod login` writes, 0600)
  3. ${XDG_RUNTIME_DIR}/containers/auth.json (podman, skopeo, buildah)
  4. $DOCKER_CONFIG/config.json, else ~/.docker/config.json (docker)

Keys are matched like podman does: "host/ns/repo", then "host/ns", then
"host" (so a repository can have its own credentials); Docker's legacy
keys ("https://index.docker.io/v1/") count as their host. Credential
helpers (`credHelpers`, `credsStore`: programs that hand out secrets) are
not run; a warning says so when one would have been used.

Nothing here prints or logs a password.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from minipod.linux.files import replace_file
from minipod.rootfs.transport import DOCKER_HUB

OWN_FILE_NAME = "auth.json"
_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io")


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


def own_file(lib_dir: Path) -> Path:
    """minipod's own credentials file: LIB/auth.json (LIB is /var/lib/minipod)."""
    return Path(lib_dir) / OWN_FILE_NAME


def candidate_files(own: Path | None = None, env: dict | None = None) -> list[Path]:
    """The credential files to search, in order (see the module docstring)."""
    env = os.environ if env is None else env
    files = []
    if env.get("REGISTRY_AUTH_FILE"):
        files.append(Path(env["REGISTRY_AUTH_FILE"]))
    if own is not None:
        files.append(Path(own))
    if env.get("XDG_RUNTIME_DIR"):
        files.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    if env.get("DOCKER_CONFIG"):
        files.append(Path(env["DOCKER_CONFIG"]) / "config.json")
    elif env.get("HOME"):
        files.append(Path(env["HOME"]) / ".docker" / "config.json")
    return files


def normalize_key(key: str) -> str:
    """A key of "auths" as HOST[/PATH]: "https://index.docker.io/v1/" -> "docker.io"."""
    key = key.strip()
    url_like = "://" in key
    if url_like:
        key = key.split("://", 1)[1]
    key = key.rstrip("/")
    if url_like and key.endswith(("/v1", "/v2")):
        key = key[:-3]          # Docker's legacy "https://host/v1/" names the host
    host, sep, path = key.partition("/")
    if host in _HUB_ALIASES:
        host = DOCKER_HUB
    return host + sep + path


def lookup_keys(registry: str, repository: str | None = None) -> list[str]:
    """Keys to try, most specific first: "host/a/b", "host/a", "host"."""
    host = normalize_key(registry)
    keys = []
    if repository:
        parts = repository.split("/")
        keys = [f"{host}/{'/'.join(parts[:i])}" for i in range(len(parts), 0, -1)]
    return keys + [host]


def decode_auth(value: str, where: str) -> tuple[str, str]:
    """(user, password) from base64("user:password"); ValueError names the file."""
    try:
        raw = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError(f"{where}: the \"auth\" value is not base64 of user:password") from None
    user, sep, password = raw.partition(":")
    if not sep or not user:
        raise ValueError(f"{where}: the \"auth\" value is not base64 of user:password")
    return user, password


def _read(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read credentials file {path}: {e}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"credentials file {path}: not a JSON object")
    return doc


def lookup(registry: str, repository: str | None = None, *, own: Path | None = None,
           env: dict | None = None,
           warn: Callable[[str], None] | None = None) -> Credentials | None:
    """The credentials for `registry` (and `repository`), or None (anonymous)."""
    warn = warn or (lambda msg: warnings.warn(msg, stacklevel=3))
    keys = lookup_keys(registry, repository)
    helpers: list[str] = []
    for path in candidate_files(own, env):
        doc = _read(path)
        if doc is None:
            continue
        auths = {normalize_key(k): v for k, v in (doc.get("auths") or {}).items()
                 if isinstance(v, dict)}
        for key in keys:
            entry = auths.get(key)
            if not entry:
                continue
            if entry.get("auth"):
                user, password = decode_auth(entry["auth"], f"{path}: auths[{key!r}]")
                return Credentials(user, password, str(path))
            if entry.get("identitytoken"):
                helpers.append(f"an identity token for {key} in {path}")
        host = keys[-1]
        for name, helper in (doc.get("credHelpers") or {}).items():
            if normalize_key(name) == host:
                helpers.append(f"credential helper docker-credential-{helper} in {path}")
        if doc.get("credsStore"):
            helpers.append(f"credential store docker-credential-{doc['credsStore']} in {path}")
    if helpers:
        warn(f"ignoring {'; '.join(helpers)}: minipod does not run credential helpers; "
             f"use `minipod login {registry}`")
    return None


def login(own: Path, registry: str, username: str, password: str) -> Path:
    """Store the credentials for `registry` in minipod's file (0600); return its path."""
    if ":" in username:
        raise ValueError("the user name must not contain \":\"")
    own = Path(own)
    doc = _read(own) or {}
    auths = doc.setdefault("auths", {})
    key = normalize_key(registry)
    for k in [k for k in auths if normalize_key(k) == key]:
        del auths[k]
    auths[key] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    _write(own, doc)
    return own


def logout(own: Path, registry: str) -> bool:
    """Remove `registry` from minipod's file; False if it was not there."""
    own = Path(own)
    doc = _read(own)
    if not doc:
        return False
    auths = doc.get("auths") or {}
    key = normalize_key(registry)
    gone = [k for k in auths if normalize_key(k) == key]
    for k in gone:
        del auths[k]
    if gone:
        _write(own, doc)
    return bool(gone)


def _write(path: Path, doc: dict) -> None:
    """Atomically, mode 0600 from the start: the file holds passwords."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    replace_file(path, (json.dumps(doc, indent=1) + "\n").encode(), 0o600, durable=True)
