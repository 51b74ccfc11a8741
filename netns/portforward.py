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
for this pod cannot leak the pod's namespace into anything else.

Worker threads are reused (a small pool, idle ones end after a minute):
starting a Python thread costs 100-250 us on a small VM, more than the
rest of a connection's setup.

The relay: splice(2), zero-copy
-------------------------------
Each direction of a connection moves data with

    splice(from_socket -> pipe)      # moves page references, no copy
    splice(pipe -> to_socket)        # until the pipe is empty again

over a pipe enlarged to 1 MiB (F_SETPIPE_SZ, within fs.pipe-max-size), so
the data never enters Python: two syscalls per chunk of up to 1 MiB (about
700 KiB on average in a bulk transfer here). One thread per connection
runs both directions: the sockets are non-blocking, and the thread poll(2)s
for what each direction waits for (its source readable, or, while its pipe
holds bytes, its destination writable) and moves only the directions poll
named, at most one chunk each per turn, so neither starves the other and
an idle direction costs nothing. When a side sends FIN,
splice returns 0 and the relay passes the half-close on with
shutdown(SHUT_WR): a client that sends a request, closes its write side
and then reads the answer works as it does directly. When a side resets
or vanishes, both sockets are shut down and the relay ends.

What it costs (bench/portforward.py, 2 cores, kernel 6.18): the relay
spends ~360 CPU-ms per GiB relayed, ~50 of them in Python and the rest in
the kernel, nearly all of it the TCP of the second connection (perf shows
no copy of the data: tcp_sendmsg, tcp_v4_rcv and the loopback softirq,
which on loopback runs in the sender's context). All parties together
(client, relay, server) spend ~1.4x the CPU per byte of a direct
connection to the pod's IP; when every core is busy, throughput follows
CPU, so one stream through port-forward moves ~0.7x what a direct
connection does. Only a path with no second TCP connection (DNAT, as
hostPort does) goes faster, and DNAT cannot reach the pod's 127.0.0.1.

Why a thread per connection and not one epoll loop for all: splice
releases the GIL, so connections are relayed in parallel on every core;
one loop would put every connection's kernel work on one core. Why one
thread per connection and not one per direction: every thread wake-up is
a hand-off that costs 50-100 us on a small VM, and a second thread per
connection put one more on the path of each new connection (measured with
bench/portforward.py; throughput was the same).

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
import fcntl
import os
import queue
import select
import selectors
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

from minipod.linux import namespaces

__all__ = ["Address", "ForwardError", "ListenError", "PodGone", "PortForwarder",
           "format_hostport"]

PIPE_SIZE = 1 << 20          # bytes per splice; the default pipe holds 64 KiB
POLL = 0.25                  # seconds between looks at the pod
RANDOM_PORT_TRIES = 10       # `:REMOTE` on several addresses: same random port on each
WORKER_IDLE = 60.0           # seconds an idle worker thread waits for work before it ends
_FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
_UNAVAILABLE = (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT)   # e.g. a kernel without IPv6
_WAKE_ALWAYS = select.POLLHUP | select.POLLERR | select.POLLNVAL   # every way on the fd looks


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
        self._relays: set[_Relay] = set()
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
        self._workers = _Workers()

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
        relay = _Relay(client, upstream, self._forget)
        with self._lock:
            self._relays.add(relay)
        relay.run()

    def _forget(self, relay: _Relay) -> None:
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


class _Relay:
    """One connection: client <-> upstream, both directions on this thread."""

    def __init__(self, client: socket.socket, upstream: socket.socket, done):
        self.client, self.upstream = client, upstream
        self._done = done

    def run(self) -> None:
        """Relay until both directions have ended, then close both sockets.

        The first turn tries both directions; after that a direction moves
        only when poll(2) said its side is ready (its source readable, or,
        with bytes still in its pipe, its destination writable, or a
        hang-up or error on it), at most one chunk per turn, so a busy
        direction cannot starve the other and an idle one costs no failed
        splice per turn. One poll object lives for the whole connection;
        an fd is re-registered only when what it waits for changes."""
        ways = [_Way(self.client, self.upstream), _Way(self.upstream, self.client)]
        poller = select.poll()
        registered: dict[int, int] = {}
        try:
            for sock in (self.client, self.upstream):
                sock.setblocking(False)
            ready: dict[int, int] | None = None      # None: the first turn, try all
            while True:
                for way in ways:
                    if way.done:
                        continue
                    fd, event = way.waits_for()
                    if ready is None or ready.get(fd, 0) & (event | _WAKE_ALWAYS):
                        way.step()
                waiting: dict[int, int] = {}
                for way in ways:
                    if not way.done:
                        fd, event = way.waits_for()
                        waiting[fd] = waiting.get(fd, 0) | event
                if not waiting:
                    break                      # both FINs passed on: done
                # Only what we wait for: a hung-up socket we no longer
                # read must not wake us forever.
                for fd in registered.keys() - waiting.keys():
                    poller.unregister(fd)
                for fd, events in waiting.items():
                    if registered.get(fd) != events:
                        poller.register(fd, events)   # register again = modify
                registered = waiting
                ready = dict(poller.poll())
        except OSError:
            # A reset, the other side gone, or close() shut us down.
            self.abort()
        finally:
            for way in ways:
                way.close()
            self.client.close()
            self.upstream.close()
            self._done(self)

    def abort(self) -> None:
        """Shut both sockets down: the relay's next splice fails and it ends.
        (close(2) would not wake a poll on the fd in another thread.)"""
        for sock in (self.client, self.upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass                   # already closed or never connected


class _Way:
    """One direction of a relay: src -> pipe -> dst, with splice(2)."""

    def __init__(self, src: socket.socket, dst: socket.socket):
        self.src, self.dst = src, dst
        self.r, self.w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            fcntl.fcntl(self.w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass                       # over fs.pipe-max-size: the default 64 KiB works
        self.pending = 0               # bytes in the pipe, not yet sent to dst
        self.eof = False               # src sent FIN
        self.done = False              # ... and it was passed on to dst

    def step(self) -> None:
        """Move what can move now; raise OSError when a side fails."""
        if self.done:
            return
        if not self.pending and not self.eof:
            try:
                n = os.splice(self.src.fileno(), self.w, PIPE_SIZE, flags=_FLAGS)
            except BlockingIOError:
                n = -1
            if n == 0:
                self.eof = True
            elif n > 0:
                self.pending = n
        while self.pending:
            try:
                self.pending -= os.splice(self.r, self.dst.fileno(), self.pending, flags=_FLAGS)
            except BlockingIOError:
                return
        if self.eof:
            try:
                self.dst.shutdown(socket.SHUT_WR)   # pass the half-close on
            except OSError:
                pass                                # dst already gone: nothing to tell
            self.done = True

    def waits_for(self) -> tuple[int, int]:
        if self.pending:
            return self.dst.fileno(), select.POLLOUT
        return self.src.fileno(), select.POLLIN

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


class _Workers:
    """Daemon threads that run jobs and are reused: submit() hands a job to
    an idle worker, or starts a new one when none is idle. A worker idle
    for WORKER_IDLE seconds ends. Daemon threads: a relay blocked in splice
    never holds up the exit of the process."""

    def __init__(self):
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._idle = 0              # workers waiting for a job nobody reserved
        self._lock = threading.Lock()

    def submit(self, fn, *args) -> None:
        with self._lock:
            reuse = self._idle > 0
            if reuse:
                self._idle -= 1     # reserve it: the job below is its
        self._jobs.put((fn, args))
        if not reuse:
            threading.Thread(target=self._work, name="minipod:pf-worker", daemon=True).start()

    def _work(self) -> None:
        job = self._jobs.get()              # the job this worker was started for
        while job is not None:
            fn, args = job
            try:
                fn(*args)
            except BaseException as e:      # jobs report their own errors; this is a bug
                print(f"port-forward: internal error in {fn.__qualname__}: {e!r}",
                      file=sys.stderr, flush=True)
            with self._lock:
                self._idle += 1
            job = self._next()

    def _next(self):
        """The next job; None once idle for WORKER_IDLE with no job reserved."""
        while True:
            try:
                return self._jobs.get(timeout=WORKER_IDLE)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:      # no submit() is counting on us: end
                        self._idle -= 1
                        return None
                # else a job was reserved (idle taken) and is on its way
