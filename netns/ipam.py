"""Pod IP addresses: a persistent, locked allocator, like CNI's host-local.

Every pod gets one IPv4 address from the subnet (10.89.0.0/16 by default).
The first host address (.1) is the gateway, which the bridge owns; the
network and broadcast addresses are never handed out. The state lives in a
directory of small files, readable with `ls` and `cat` (host-local keeps the
same layout under /var/lib/cni/networks/NAME):

    STATE_DIR/lock                flock(2) here: one allocator at a time
    STATE_DIR/10.89.0.2           a lease; the file's content is its owner
    STATE_DIR/.last_reserved_ip   the cursor: the next search starts after it
    STATE_DIR/.owners/OWNER       index owner -> IP (content: the IP)

(The bookkeeping is hidden, so `ls STATE_DIR` shows the leases and the lock.)

Why one file per IP and not one JSON file: a lease is created atomically,
complete with its content, by link(2) of a written temp file onto the IP's
name, which fails with EEXIST like O_CREAT|O_EXCL would (and unlike a bare
O_EXCL create, a crash can never leave an empty lease). Allocating or
releasing touches only one lease instead of rewriting every lease; and
`cat STATE_DIR/10.89.0.7` answers "who has this IP" without any tool.

Allocation is round-robin, as in host-local: the search starts after the
last IP handed out, so a just-released IP is not reused at once (a client
still talking to the old pod would reach the new one). It looks at free
candidates from the cursor on, so it costs O(1) while the subnet is not
nearly full; the .owners/ index makes "this owner already has an IP"
(allocate is idempotent) and release O(1) as well.

Crash safety. With STATE_DIR on tmpfs (RUN=/run/minipod: tmpfs on every
systemd machine; asked of the kernel with statfs, never assumed) nothing
is fsynced: a crash of the kernel takes the leases and every pod holding
them, so there is nothing to be consistent with afterwards. On a disk the
lease's content, the index entry and the directory are fsynced, so a power
cut never brings back an empty lease or index entry. Then, in order of the
steps of allocate: the index entry is
written before the lease, so a crash in between leaves an index entry that
points at no lease, which the next allocate ignores; the lease file, not
the index, is the truth. release() falls back to scanning the leases when
the index has no entry, so a lease is never leaked for good.

This module imports no netlink code on purpose: `minipod get` reads the
leases without opening a netlink socket or importing netns.rtnl.
"""
from __future__ import annotations

import hashlib
import ipaddress
import os
from pathlib import Path
from urllib.parse import quote

from minipod.linux import files

__all__ = ["IPAM", "IPAMError"]

_CURSOR = ".last_reserved_ip"
_LOCK = "lock"
_OWNERS = ".owners"
_TMP = ".lease.tmp"  # one fixed name is enough: only the lock holder writes it


class IPAMError(Exception):
    """No address can be given (bad subnet, bad owner, subnet exhausted)."""


class IPAM:
    """A host-local style IPv4 allocator keeping its leases in state_dir."""

    def __init__(self, state_dir: Path, subnet: str = "10.89.0.0/16"):
        try:
            net = ipaddress.IPv4Network(subnet)  # strict: host bits must be 0
        except ValueError as e:
            raise IPAMError(f"bad subnet {subnet!r}: {e}") from None
        if net.prefixlen > 30:
            # /31 and /32 have no room for a gateway plus one pod.
            raise IPAMError(f"subnet {subnet} is too small: need at least a /30 "
                            "(a gateway and one pod)")
        self.state_dir = Path(state_dir)
        self.subnet = net
        self.prefixlen = net.prefixlen
        self.gateway = net.network_address + 1
        # Pods get [gateway+1, broadcast-1]: one contiguous range.
        self._first = int(self.gateway) + 1
        self._last = int(net.broadcast_address) - 1
        self._size = self._last - self._first + 1
        self._durable: bool | None = None   # fsync? (not on tmpfs): asked once

    def _fsync_needed(self) -> bool:
        if self._durable is None:
            self._durable = not files.in_memory_only(self.state_dir)
        return self._durable

    # -- public API ---------------------------------------------------------

    def allocate(self, owner: str) -> ipaddress.IPv4Address:
        """Lease a free IP to owner, or return the one it already holds.

        Concurrent callers (threads or processes) are serialised by
        flock(2) on STATE_DIR/lock, so no two owners ever get the same IP."""
        _check_owner(owner)
        with self._locked():
            held = self._held_by(owner)
            if held is not None:
                return held
            start = self._cursor()
            for i in range(self._size):
                ip = ipaddress.IPv4Address(
                    self._first + (start - self._first + 1 + i) % self._size)
                lease = self.state_dir / str(ip)
                if os.path.lexists(lease):
                    continue
                self._write_index(owner, ip)   # before the lease: see module doc
                if not self._create_lease(lease, owner):
                    continue                   # taken by something outside the lock
                self._write_cursor(ip)
                if self._fsync_needed():
                    files.fsync_dir(self.state_dir)
                return ip
        n = sum(1 for ip in self.leases() if ipaddress.IPv4Address(ip) in self.subnet)
        raise IPAMError(f"no free IP left in {self.subnet} ({n} leases); "
                        "delete a pod or configure a larger subnet")

    def release(self, owner: str) -> None:
        """Give back owner's IP; releasing an owner without a lease is fine."""
        _check_owner(owner)
        with self._locked():
            index = self._index_path(owner)
            ip = _parse_ip(_read(index))
            if ip is not None and _read(self.state_dir / str(ip)) == owner:
                _unlink(self.state_dir / str(ip))
            else:
                # No (valid) index entry: a crash or a hand edit. Scan so the
                # lease is not leaked; releases are rare, so O(n) is fine here.
                for lease_ip, lease_owner in self.leases().items():
                    if lease_owner == owner:
                        _unlink(self.state_dir / lease_ip)
            _unlink(index)

    def leases(self) -> dict[str, str]:
        """Every lease on disk, ip -> owner, in address order.

        Needs no lock: a lease appears complete (link of a written file) and
        disappears atomically (unlink)."""
        try:
            names = os.listdir(self.state_dir)
        except FileNotFoundError:
            return {}
        ips = []
        for name in names:
            try:
                ips.append(ipaddress.IPv4Address(name))
            except ValueError:
                continue  # lock, cursor, .owners/, temp files
        out = {}
        for ip in sorted(ips):
            owner = _read(self.state_dir / str(ip))
            if owner is not None:  # None: released while we listed
                out[str(ip)] = owner
        return out

    # -- helpers --------------------------------------------------------------

    def _locked(self):
        """flock(2) on STATE_DIR/lock: one allocator at a time (files.locked:
        the lock goes with the fd, even if the process is killed)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / _OWNERS).mkdir(exist_ok=True)
        return files.locked(self.state_dir / _LOCK, mode=0o644, what="IPAM lock")

    def _index_path(self, owner: str) -> Path:
        name = quote(owner, safe="")        # "default/web" -> "default%2Fweb"
        if name in (".", "..") or len(name) > 200:
            name = "sha256-" + hashlib.sha256(owner.encode()).hexdigest()
        return self.state_dir / _OWNERS / name

    def _held_by(self, owner: str) -> ipaddress.IPv4Address | None:
        """owner's IP if the index says so and the lease agrees."""
        ip = _parse_ip(_read(self._index_path(owner)))
        if ip is None or _read(self.state_dir / str(ip)) != owner:
            return None
        return ip

    def _cursor(self) -> int:
        """The last IP handed out, or first-1 when there is none (or it lies
        outside the current range, e.g. after the subnet changed)."""
        ip = _parse_ip(_read(self.state_dir / _CURSOR))
        if ip is None:
            return self._first - 1
        value = int(ip)
        return value if self._first <= value <= self._last else self._first - 1

    def _write_cursor(self, ip: ipaddress.IPv4Address) -> None:
        # No fsync: a lost cursor only changes where the next search starts.
        files.replace_file(self.state_dir / _CURSOR, str(ip).encode(), durable=False,
                           tmp=self.state_dir / ".cursor.tmp")

    def _write_index(self, owner: str, ip: ipaddress.IPv4Address) -> None:
        # fsync: after a power cut the entry must not come back empty, or
        # the owner's next allocate would take a second IP.
        files.replace_file(self._index_path(owner), str(ip).encode(),
                           durable=self._fsync_needed(), tmp=self.state_dir / ".index.tmp")

    def _create_lease(self, lease: Path, owner: str) -> bool:
        """Create lease with content owner, atomically; False if it exists."""
        tmp = self.state_dir / _TMP
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, owner.encode())
            if self._fsync_needed():
                os.fsync(fd)   # the content is on disk before the name is
        finally:
            os.close(fd)
        try:
            os.link(tmp, lease)  # EEXIST if taken: the O_EXCL of a rename
        except FileExistsError:
            return False
        finally:
            _unlink(tmp)
        return True


def _check_owner(owner: str) -> None:
    if not isinstance(owner, str) or not owner or "\0" in owner or "\n" in owner:
        raise IPAMError(f"bad lease owner {owner!r}: need a non-empty one-line string")


def _parse_ip(text: str | None) -> ipaddress.IPv4Address | None:
    """The IPv4 address in text, or None for a missing or damaged file."""
    try:
        return ipaddress.IPv4Address((text or "").strip())
    except ValueError:
        return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
