"""The port-forward relay: two sockets joined with splice(2), zero-copy.

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

`Relay` is one connection; minipod.netns.portforward makes the pod side of
it on a worker thread inside the pod's network namespace and runs it there.
"""

from __future__ import annotations

import fcntl
import os
import select
import socket

PIPE_SIZE = 1 << 20          # bytes per splice; the default pipe holds 64 KiB
_FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
_WAKE_ALWAYS = select.POLLHUP | select.POLLERR | select.POLLNVAL   # every way on the fd looks


class Relay:
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

