"""hostPort claims: which pod holds which port of the host.

Claims: Kubernetes' scheduler refuses a pod whose hostPort/protocol/hostIP
another pod on the node already holds (hostIP 0.0.0.0 overlaps every
address). claim() does the same with one file per claimed port under a
state directory, checked and written under flock(2), so two pods claiming
8080/TCP at once: exactly one wins, the other gets HostPortConflict naming
the holder. A port some host process listens on is not checked (nor does
portmap); the DNAT simply takes precedence over it.

Each claim is a file STATE_DIR/PROTOCOL-PORT-HOSTIP holding {"uid", "pod",
host_port, container_port, protocol, host_ip}; STATE_DIR/lock is the
flock. The nft rules that make a claimed port lead to its pod are
netns/hostport.py's.

By hand: `cat STATE_DIR/TCP-8080-0.0.0.0` says which pod holds 8080/TCP.
"""
from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from minipod.linux import files

__all__ = ["HostPortConflict", "HostPortError", "Mapping", "claim", "claims", "release"]

PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}
_LOCK = "lock"
_UID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")


class HostPortError(Exception):
    """A hostPort step failed; str() names the step, the object and why."""


class HostPortConflict(HostPortError):
    """The port is held by another pod (holder_uid, holder_name)."""

    def __init__(self, message: str, holder_uid: str, holder_name: str):
        super().__init__(message)
        self.holder_uid, self.holder_name = holder_uid, holder_name


@dataclass(frozen=True)
class Mapping:
    """hostIP:hostPort/protocol on the host -> containerPort of the pod.
    host_ip "" (or 0.0.0.0) means every address of the host."""
    host_port: int
    container_port: int
    protocol: str = "TCP"
    host_ip: str = ""

    def label(self) -> str:
        ip = f"[{self.host_ip}]" if ":" in self.host_ip else self.host_ip
        where = f"{ip}:" if self.host_ip else ""
        return f"hostPort {where}{self.host_port}/{self.protocol}"


def claim(state_dir: Path, pod_uid: str, pod_name: str, mappings: list[Mapping]) -> None:
    """Claim every mapping's hostPort for the pod, or none of them.

    Raises HostPortConflict if another pod holds one (same protocol and
    port, and the same hostIP or either one 0.0.0.0). Claiming again what
    the pod holds already is fine."""
    check_uid(pod_uid)
    for m in mappings:
        check_mapping(m)
    state_dir = Path(state_dir)
    with _locked(state_dir):
        held = _read_claims(state_dir)
        for m in mappings:
            for (uid, name, other) in held:
                if uid != pod_uid and _overlap(m, other):
                    raise HostPortConflict(
                        f"{m.label()} of pod {pod_name} is already used by pod {name} "
                        f"({other.label()}); use another hostPort, or delete pod {name}",
                        uid, name)
        for m in mappings:
            record = {"uid": pod_uid, "pod": pod_name, **asdict(m)}
            path = state_dir / _claim_name(m)
            files.replace_file(path, json.dumps(record).encode(), durable=False,
                               tmp=state_dir / f".{path.name}.tmp")


def release(state_dir: Path, pod_uid: str) -> None:
    """Drop every claim of the pod (idempotent)."""
    state_dir = Path(state_dir)
    if not state_dir.is_dir():
        return
    with _locked(state_dir):
        for path in state_dir.iterdir():
            if _is_claim(path) and _claim_uid(path) == pod_uid:
                _unlink(path)


def claims(state_dir: Path) -> list[tuple[str, str, Mapping]]:
    """Every claim: (pod uid, pod name, mapping)."""
    return _read_claims(Path(state_dir))


def check_mapping(m: Mapping) -> None:
    """HostPortError unless m is a mapping the rules can carry (its label says which)."""
    if m.protocol not in PROTOCOLS:
        raise HostPortError(f"{m.label()}: protocol must be one of {', '.join(PROTOCOLS)}")
    for what, port in (("hostPort", m.host_port), ("containerPort", m.container_port)):
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise HostPortError(f"{m.label()}: {what} {port!r} is not a port (1-65535)")
    if m.host_ip:
        try:
            ip = ipaddress.ip_address(m.host_ip)
        except ValueError:
            raise HostPortError(f"{m.label()}: hostIP {m.host_ip!r} is not an IP address") \
                from None
        if ip.version != 4:
            raise HostPortError(f"{m.label()}: hostIP {m.host_ip} is IPv6, and the pod "
                                "network is IPv4 only: use an IPv4 hostIP or none")


def check_uid(uid: str) -> None:
    """HostPortError unless uid can go into an nft comment and a file name."""
    # It goes into an nft comment and a file: no quotes, no slashes.
    if not isinstance(uid, str) or not _UID.match(uid):
        raise HostPortError(f"bad pod uid {uid!r}: letters, digits, '.', '_', '-' only")


def specific(host_ip: str) -> bool:
    """host_ip names one address ("" and 0.0.0.0 mean every address)."""
    return bool(host_ip) and host_ip != "0.0.0.0"


def _overlap(a: Mapping, b: Mapping) -> bool:
    return (a.protocol == b.protocol and a.host_port == b.host_port
            and (not specific(a.host_ip) or not specific(b.host_ip)
                 or a.host_ip == b.host_ip))


def _claim_name(m: Mapping) -> str:
    return f"{m.protocol}-{m.host_port}-{m.host_ip if specific(m.host_ip) else '0.0.0.0'}"


def _is_claim(path: Path) -> bool:
    return path.name[:1] != "." and path.name != _LOCK and path.is_file()


def _claim_uid(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("uid")
    except (OSError, ValueError):
        return None


def _read_claims(state_dir: Path) -> list[tuple[str, str, Mapping]]:
    out = []
    try:
        paths = sorted(state_dir.iterdir())
    except FileNotFoundError:
        return []
    for path in paths:
        if not _is_claim(path):
            continue
        try:
            r = json.loads(path.read_text())
            out.append((r["uid"], r["pod"], Mapping(r["host_port"], r["container_port"],
                                                    r["protocol"], r["host_ip"])))
        except FileNotFoundError:
            continue                        # released while we listed
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise HostPortError(f"read hostPort claim {path}: {e}") from None
    return out


@contextlib.contextmanager
def _locked(state_dir: Path):
    """flock(2) on STATE_DIR/lock: claims are checked and written by one at a time."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / _LOCK
    try:
        fd = files.lock(path, mode=0o644)
    except OSError as e:
        raise HostPortError(f"open hostPort claims lock {path}: "
                            f"{os.strerror(e.errno)}") from None
    try:
        yield
    finally:
        os.close(fd)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
