"""Port-forward: a local TCP port that leads to a port inside a pod.

What `kubectl port-forward POD 8080:80` does, without an API server in the
middle: listen on the host (127.0.0.1:8080 and [::1]:8080 by default), and
for every connection accepted there, connect *inside the pod's network
namespace* to localhost:80 and copy bytes both ways. Connecting from inside
the pod, as the kubelet (and containerd's portforward) does, means a
server bound only to the pod's own 127.0.0.1 is reachable too, which a
connection to the pod's IP would not reach.

By hand, with socat (one process and two copies through user space per
connection):

    socat TCP-LISTEN:8080,bind=127.0.0.1,fork,reuseaddr \\
          EXEC:'ip netns exec minipod-web socat STDIO TCP:127.0.0.1:80'

How a socket gets into the pod's network namespace
---------------------------------------------------
A socket belongs to the network namespace its creator was in at socket(2)
time and keeps it for life, whichever thread or process later uses it.
setns(2) with CLONE_NEWNET moves only the calling *thread* (man 2 setns;
the kernel allows it in a multi-threaded process, unlike joining a user or
mount namespace). So the work of a connection runs on worker threads that
enter the pod (through an fd to /run/netns/minipod-POD opened once; a
setns costs ~4 us) before they create the socket, and stay there: they
serve this one pod and nothing else. The main thread, which listens on the
host's addresses, never leaves the host's namespace. The alternative, a
forked helper that enters the pod and hands connected sockets back over a
unix socket (SCM_RIGHTS), works too but adds a process to manage and a
round trip per connection for nothing here: a thread that only ever works
for this pod cannot leak the pod's namespace into anything else. The
workers are reused (minipod.netns.workers), and each connection's bytes
move by splice(2), never through Python (minipod.netns.relay: how, what it
costs, and why a thread per connection).

Watching the pod
----------------
The main thread wakes every POLL seconds and checks that the netns file
still names the namespace it opened (same device and inode) and asks the
caller whether the pod is still there (the caller reads the pod's state).
When the pod is gone it stops with PodGone; the open fd alone would keep a
deleted pod's namespace alive, serving nothing.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

from minipod.linux import namespaces
from minipod.netns.relay import Relay
from minipod.netns.workers import Workers

__all__ = ["Address", "ForwardError", "ListenError", "PodGone", "PortForwarder",
           "format_hostport"]

POLL = 0.25                  # seconds between looks at the pod
RANDOM_PORT_TRIES = 10       # `:REMOTE` on several addresses: same random port on each
_UNAVAILABLE = (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT)   # e.g. a kernel without IPv6


class ForwardError(Exception):
    """The forwarder cannot go on; str() is one line for the user."""


class ListenError(ForwardError):
    """A local address:port could not be listened on (which one, and why)."""


class PodGone(ForwardError):
    """The pod went away while forwarding."""


@dataclass(frozen=True)
class Address:
    """A local address to listen on. if_available: skip it when the kernel
    does not have it (::1 without IPv6), as kubectl does for `localhost`."""
    ip: str
    if_available: bool = False


def format_hostport(ip: str, port: int) -> str:
    """127.0.0.1:8080, [::1]:8080: how Go's net.JoinHostPort (and kubectl) write them."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


class PortForwarder:
    """Listen on the host, connect inside a pod's netns, relay with splice.

        fwd = PortForwarder("/run/netns/minipod-web", [(8080, 80)],
                            [Address("127.0.0.1"), Address("::1", True)], pod="web")
        fwd.listen()            # binds every port, prints "Forwarding from ..."
        fwd.serve_forever()     # until stop() (returns) or the pod goes (PodGone)
        fwd.close()

    ports: (local, remote) pairs; local 0 picks a free port (printed).
    pod_gone: called every POLL seconds; returns why the pod is gone, or None.
    """

    def __init__(self, netns_path: str, ports: list[tuple[int, int]],
                 addresses: list[Address], pod: str,
                 pod_gone: Callable[[], str | None] | None = None,
                 out=None, err=None):
        self.netns_path = str(netns_path)
        self.ports = list(ports)
        self.addresses = list(addresses)
        self.pod = pod
        self.pod_gone = pod_gone
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.listeners: list[tuple[socket.socket, int, int]] = []  # (sock, local, remote)
        self._relays: set[Relay] = set()
        self._lock = threading.Lock()
        self._print_lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            # One fd for the life of the forwarder: every connection thread
            # enters the pod through it, and it tells us if the pod's file
            # is replaced (a new pod of the same name).
            self._ns_fd = os.open(self.netns_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            self._close_wake()
            raise ForwardError(f"cannot open the network namespace of pod {pod} "
                               f"{self.netns_path}: {e.strerror} "
                               f"({errno.errorcode.get(e.errno, e.errno)})") from None
        st = os.fstat(self._ns_fd)
        self._ns_id = (st.st_dev, st.st_ino)
        self._workers = Workers()

    # -- listening -------------------------------------------------------------

    def listen(self) -> list[tuple[str, int, int]]:
        """Bind every (address, port); print kubectl's `Forwarding from` lines.

        All or nothing: if any address:port cannot be bound, the ones bound
        so far are closed and ListenError names the one that failed."""
        bound = []
        try:
            for local, remote in self.ports:
                for sock, ip, port in self._listen_port(local):
                    self.listeners.append((sock, port, remote))
                    bound.append((ip, port, remote))
        except BaseException:
            self._close_listeners()
            raise
        for ip, port, remote in bound:
            self._say(f"Forwarding from {format_hostport(ip, port)} -> {remote}")
        return bound

    def _listen_port(self, local: int) -> list[tuple[socket.socket, str, int]]:
        """Listeners for one local port on every address; port 0: the port the
        kernel picks for the first address, then the same one on the others."""
        for attempt in range(RANDOM_PORT_TRIES if local == 0 else 1):
            made, port = [], local
            try:
                for addr in self.addresses:
                    sock = _bind(addr, port)
                    if sock is None:
                        continue                     # ::1 without IPv6: skipped
                    made.append((sock, addr.ip, sock.getsockname()[1]))
                    port = made[-1][2]
            except ListenError:
                for sock, _, _ in made:
                    sock.close()
                # A random port free on the first address but taken on
                # another: try another random port.
                if local == 0 and made and attempt + 1 < RANDOM_PORT_TRIES:
                    continue
                raise
            if not made:
                raise ListenError(f"unable to listen on port {local}: none of the "
                                  f"addresses {', '.join(a.ip for a in self.addresses)} "
                                  "is available on this host")
            return made
        raise AssertionError("unreachable")

    # -- serving ------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Accept and relay until stop() is called; raise PodGone when the pod goes."""
        sel = selectors.DefaultSelector()
        try:
            sel.register(self._wake_r, selectors.EVENT_READ, None)
            for sock, local, remote in self.listeners:
                sock.setblocking(False)
                sel.register(sock, selectors.EVENT_READ, (local, remote))
            while True:
                for key, _ in sel.select(POLL):
                    if key.data is None:
                        return                        # stop()
                    self._accept_all(key.fileobj, *key.data)
                reason = self._gone()
                if reason:
                    raise PodGone(f"lost connection to pod {self.pod}: {reason}")
        finally:
            sel.close()

    def stop(self) -> None:
        """Make serve_forever return; safe from a signal handler or a thread."""
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        """Close the listeners, end every relayed connection, release the netns fd."""
        self._close_listeners()
        with self._lock:
            relays = list(self._relays)
        for relay in relays:
            relay.abort()
        if self._ns_fd >= 0:
            os.close(self._ns_fd)
            self._ns_fd = -1
        self._close_wake()

    def active(self) -> int:
        """Connections being relayed now."""
        with self._lock:
            return len(self._relays)

    def _accept_all(self, listener: socket.socket, local: int, remote: int) -> None:
        while True:          # a burst of connects: take them all
            try:
                client, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:    # EMFILE and friends: say so, keep serving
                self._warn(f"accept on port {local}: {e.strerror} "
                           f"({errno.errorcode.get(e.errno, e.errno)})")
                time.sleep(0.1)     # the listener stays readable: do not spin
                return
            self._say(f"Handling connection for {local}")
            self._workers.submit(self._connection, client, local, remote)

    def _connection(self, client: socket.socket, local: int, remote: int) -> None:
        """On a worker: into the pod's netns (this thread only; a worker that
        is there already stays), connect to localhost:remote there, relay."""
        try:
            namespaces.setns(self._ns_fd, namespaces.CLONE_NEWNET, self.netns_path)
        except OSError as e:
            client.close()
            self._warn(f"an error occurred forwarding {local} -> {remote}: cannot enter "
                       f"the network namespace of pod {self.pod} {self.netns_path}: "
                       f"{os.strerror(e.errno)} ({errno.errorcode.get(e.errno, e.errno)})")
            return
        upstream, failures = _dial_localhost(remote)
        if upstream is None:
            client.close()
            refused = all(code == errno.ECONNREFUSED for code, _ in failures)
            what = "nothing is listening on" if refused else "cannot connect to"
            self._warn(f"an error occurred forwarding {local} -> {remote}: {what} port "
                       f"{remote} in pod {self.pod} ({'; '.join(t for _, t in failures)}); "
                       "connection closed, still forwarding")
            return
        relay = Relay(client, upstream, self._forget)
        with self._lock:
            self._relays.add(relay)
        relay.run()

    def _forget(self, relay: Relay) -> None:
        with self._lock:
            self._relays.discard(relay)

    def _gone(self) -> str | None:
        """Why the pod is gone, or None while it is there."""
        try:
            st = os.stat(self.netns_path)
        except FileNotFoundError:
            return f"its network namespace {self.netns_path} is gone (the pod was deleted)"
        except OSError as e:
            return f"cannot check its network namespace {self.netns_path}: {e.strerror}"
        if (st.st_dev, st.st_ino) != self._ns_id:
            return (f"{self.netns_path} is no longer the pod's network namespace "
                    "(the pod was deleted, maybe re-created)")
        return self.pod_gone() if self.pod_gone else None

    # -- helpers ------------------------------------------------------------------

    def _say(self, line: str) -> None:
        self._print(self.out, line)

    def _warn(self, line: str) -> None:
        self._print(self.err, line)

    def _print(self, stream, line: str) -> None:
        """One line, at once; a reader that went away (`| head -1`) does not
        stop the forwarding."""
        with self._print_lock:
            try:
                stream.write(line + "\n")
                stream.flush()
            except (BrokenPipeError, ValueError):
                pass

    def _close_listeners(self) -> None:
        for sock, _, _ in self.listeners:
            sock.close()
        self.listeners = []

    def _close_wake(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _bind(addr: Address, port: int) -> socket.socket | None:
    """A listening TCP socket on addr:port; None if addr is optional and absent."""
    family = socket.AF_INET6 if ":" in addr.ip else socket.AF_INET
    where = format_hostport(addr.ip, port)
    try:
        sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    except OSError as e:
        if addr.if_available and e.errno in _UNAVAILABLE:
            return None
        raise ListenError(f"unable to listen on {where}: {e.strerror}") from None
    try:
        # As Go (and so kubectl) does: a port whose last connections are in
        # TIME_WAIT can be reused; a port someone listens on still cannot.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((addr.ip, port))
        sock.listen(socket.SOMAXCONN)
    except OSError as e:
        sock.close()
        if addr.if_available and e.errno in _UNAVAILABLE:
            return None
        name = errno.errorcode.get(e.errno, str(e.errno))
        hint = ""
        if e.errno == errno.EADDRINUSE:
            hint = (f"; something else uses local port {port}: pick another one "
                    f"(LOCAL:REMOTE, e.g. {port + 1 if port < 65535 else 8080}:REMOTE, "
                    "or :REMOTE for a random one)")
        elif e.errno == errno.EADDRNOTAVAIL:
            hint = f"; {addr.ip} is not an address of this host"
        raise ListenError(f"unable to listen on {where}: bind: {e.strerror} ({name}){hint}") \
            from None
    return sock


def _dial_localhost(port: int) -> tuple[socket.socket | None, list[tuple[int, str]]]:
    """Connect to localhost:port in this thread's netns: 127.0.0.1, then ::1
    (containerd does the same). Returns (socket, []) or (None, [(errno, text)])."""
    failures = []
    for family, ip in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        except OSError as e:
            if e.errno not in _UNAVAILABLE:
                failures.append((e.errno, f"socket for {ip}: {e.strerror}"))
            continue
        try:
            sock.connect((ip, port))
            return sock, []
        except OSError as e:
            sock.close()
            if family == socket.AF_INET6 and e.errno in _UNAVAILABLE:
                continue                         # the pod has no IPv6 loopback
            failures.append((e.errno, f"connect to {format_hostport(ip, port)}: {e.strerror} "
                                      f"({errno.errorcode.get(e.errno, e.errno)})"))
    return None, failures
