"""…/pods/NAME/exec (and …/attach, output only) over WebSocket, in the
`v5.channel.k8s.io` / `v4.channel.k8s.io` protocols that kubectl ≥ 1.30 and
the Python client speak.

Every message is binary, channel byte first (apimachinery wsstream/doc.go):

    0 stdin (client → server)     1 stdout     2 stderr
    3 error: a metav1.Status when the command ends; exit code N ≠ 0 as
      details.causes[{reason: ExitCode, message: "N"}]
    4 resize (client → server): {"Width": W, "Height": H}
    [255, ch] (v5 only, client → server): no more data on channel ch

The session ends with the Status on channel 3, then a WebSocket close
(1000). Every ping is answered with a pong (the reader thread of Session
stays in WebSocket.recv, which answers them): kubectl drops a session
after 61 s without one, even while output flows.

The command runs through `minipod exec [-i] [-t] POD -c C -- CMD`, spawned
with pipes (or on a pty for a TTY; a resize sets the pty's size and sends
the CLI SIGWINCH, which copies it inward), so entering the container, its
confinement and its exit code stay in one place (runtime/cli/cmd_exec.py).
An attach relays what the container writes from then on (its CRI log,
followed as `logs -f` follows it) and ends when the container ends; it
takes no input (the agent owns PID 1's stdin). The WebSocket is
websocket.py's (wsproto's framing); the TLS socket is read and written by
one relay thread only (podforward.TlsRelay), as OpenSSL wants.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import select
import selectors
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time

from minipod.runtime.apiserver.objects import ApiError

PROTOCOLS = ["v5.channel.k8s.io", "v4.channel.k8s.io"]
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


class Session:
    """One exec/attach WebSocket: websocket.WebSocket on the plain end of a
    podforward.TlsRelay (one thread alone touches the TLS socket). A reader
    thread stays in recv() for the session's life, so every ping is
    answered even while the command is silent; it queues whole messages
    and makes `fd` readable, for the relay loop's select."""

    def __init__(self, tls, trailing: bytes):
        from minipod.runtime.apiserver.podforward import TlsRelay
        from minipod.runtime.apiserver.websocket import WebSocket
        self.relay = TlsRelay(tls)
        self.ws = WebSocket(self.relay.plain, trailing=trailing)
        self.messages: queue.SimpleQueue = queue.SimpleQueue()
        self.fd, self._wake = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.closed = False
        self._gone = False
        self._reader = threading.Thread(target=self._read, daemon=True,
                                        name="minipod:api-exec-reader")
        self._reader.start()

    def _read(self) -> None:
        while True:
            message = self.ws.recv()
            self.messages.put(message)
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._wake, b"m")
            if message is None:
                return

    def frame(self, channel: int, data: bytes) -> None:
        if not self.closed and not self.ws.send_binary(bytes([channel]) + data):
            self.closed = True

    def close(self, code: int = 1000) -> None:
        self.ws.close(code)
        self.closed = True

    def receive(self) -> list[bytes] | None:
        """The client's messages queued so far; None once it is gone."""
        with contextlib.suppress(BlockingIOError, OSError):
            os.read(self.fd, 4096)
        out = []
        while not self._gone:
            try:
                message = self.messages.get_nowait()
            except queue.Empty:
                break
            if message is None:
                self._gone = True
            else:
                out.append(message)
        return None if self._gone and not out else out

    def end(self) -> None:
        """Flush what was sent, stop the relay and the reader, free the fds."""
        plain = self.relay.plain
        with contextlib.suppress(OSError):
            plain.shutdown(socket.SHUT_WR)      # the relay sends what is left, then ends
        self.relay.join()
        self._reader.join(5)
        plain.close()
        os.close(self.fd)
        os.close(self._wake)


def _flag(q: dict, key: str) -> bool:
    return (q.get(key) or [""])[-1] in ("true", "1")


def serve(handler, method: str, kind: str, record, q: dict) -> None:
    """Check the request, upgrade to WebSocket, run the command, report its end
    (`record`: the pod's PodRecord)."""
    offered = [p.strip() for h in handler.headers.get_all("Sec-WebSocket-Protocol") or []
               for p in h.split(",")]
    chosen = next((p for p in PROTOCOLS if p in offered), None)
    if method != "GET" or handler.headers.get("Upgrade", "").lower() != "websocket" \
            or chosen is None:
        raise ApiError(400, "BadRequest",
                       f"minipod serves {kind} over WebSocket ({', '.join(PROTOCOLS)}) only: "
                       f"use kubectl 1.30 or newer")
    containers = record.containers
    name = (q.get("container") or [""])[-1] or (containers[0].name if containers else "")
    cs = record.container(name)
    if cs is None:
        raise ApiError(400, "BadRequest", f'container {name} is not valid for pod '
                                          f'{record.name}')
    if cs.state != "running":
        raise ApiError(400, "BadRequest", f'unable to upgrade connection: container not '
                                          f'running ("{name}")')
    command = q.get("command") or []
    if kind == "exec" and not command:
        raise ApiError(400, "BadRequest", "you must specify at least 1 command")
    tty, stdin = _flag(q, "tty"), _flag(q, "stdin")
    if kind == "attach" and stdin:
        raise ApiError(400, "BadRequest", "minipod attaches to a container's output only "
                                          "(no -i): its PID 1 reads no input from the API")

    from minipod.runtime.apiserver import podforward, websocket
    try:
        response, _ = websocket.handshake(handler.headers, [chosen])
    except websocket.HandshakeError as e:
        raise ApiError(400, "BadRequest", str(e))
    handler.send_response(101, "Switching Protocols")
    for k, v in response.items():
        handler.send_header(k, v)
    handler.end_headers()
    handler.close_connection = True
    trailing = podforward.trailing_bytes(handler)
    handler.connection.settimeout(None)
    session = Session(handler.connection, trailing)
    try:
        _serve(session, handler, kind, record, cs, name, command, tty, stdin, chosen)
    finally:
        session.end()


def _serve(session, handler, kind, record, cs, name, command, tty, stdin, chosen) -> None:
    if kind == "attach":
        return attach(session, handler.server.paths, record, cs)
    argv = [sys.executable, "-m", "minipod", "exec"] + (["-i"] if stdin else []) \
        + (["-t"] if tty else []) + ["-n", record.namespace or "default",
                                     record.name, "-c", name, "--"] + command
    run(session, argv, tty, stdin, v5=chosen.startswith("v5"))


def run(session: Session, argv: list[str], tty: bool, stdin: bool, v5: bool) -> None:
    """Relay between the client's channels and the CLI's pipes (or pty) until
    the command's output ends; then report its exit on channel 3 and close."""
    sel = selectors.DefaultSelector()
    sel.register(session.fd, selectors.EVENT_READ, None)
    master = slave = proc = None
    outputs: dict[int, int] = {}
    size = None
    if tty:
        master, slave = os.openpty()
    spawn_by = time.monotonic() + (1.0 if tty else 0.0)  # kubectl sends the size at once
    gone = False

    def on_frame(data: bytes) -> None:
        nonlocal size
        if not data:
            return
        channel, payload = data[0], data[1:]
        if channel == STDIN and stdin:
            target = master if tty else (proc.stdin.fileno() if proc and proc.stdin else None)
            if target is not None:
                with contextlib.suppress(OSError):
                    os.write(target, payload)
        elif channel == RESIZE:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                wanted = json.loads(payload)
                size = (int(wanted["Height"]), int(wanted["Width"]))
                if master is not None:
                    _set_size(master, size)
                    if proc is not None:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(proc.pid, signal.SIGWINCH)
        elif channel == CLOSE and v5 and payload[:1] == bytes([STDIN]):
            if tty:
                with contextlib.suppress(OSError):
                    os.write(master, b"\x04")
            elif proc is not None and proc.stdin:
                with contextlib.suppress(OSError):
                    proc.stdin.close()

    try:
        while True:
            if proc is None and (not tty or size or time.monotonic() >= spawn_by):
                if tty:
                    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                            start_new_session=True, close_fds=True)
                    os.close(slave)
                    slave = None
                    outputs = {master: STDOUT}
                else:
                    proc = subprocess.Popen(
                        argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        start_new_session=True, close_fds=True)
                    outputs = {proc.stdout.fileno(): STDOUT, proc.stderr.fileno(): STDERR}
                for fd in outputs:
                    sel.register(fd, selectors.EVENT_READ, fd)
            if proc is not None and not outputs:
                break
            ready = [key.data for key, _ in sel.select(0.05 if proc is None else 1.0)]
            for fd in ready:
                if fd is None:
                    messages = session.receive()
                    if messages is None:
                        gone = True
                        break
                    for m in messages:
                        on_frame(m)
                    continue
                try:
                    data = os.read(fd, 65536)
                except OSError:         # EIO: the pty's other side is closed
                    data = b""
                if data:
                    session.frame(outputs[fd], data)
                else:
                    sel.unregister(fd)
                    del outputs[fd]
            if gone or session.closed:
                break
        if proc is None:
            return
        if proc.poll() is None and (gone or session.closed):
            _stop(proc)
        code = proc.wait()
    finally:
        sel.close()
        for fd in (master, slave):
            if fd is not None:
                os.close(fd)
        if proc is not None:
            for f in (proc.stdin, proc.stdout, proc.stderr):
                if f is not None:
                    with contextlib.suppress(OSError):
                        f.close()
    session.frame(ERROR, json.dumps(_status(code)).encode())
    session.close(1000)


def attach(session: Session, paths, record, cs) -> None:
    """Relay what the container writes from now on (its CRI log, followed the
    way `logs -f` follows it) to channels 1 and 2, until it ends for good."""
    from minipod.runtime import logs
    from minipod.runtime.cli import cmd_logs
    from minipod.runtime.paths import record_key
    import types

    class Frames(cmd_logs.Stream):
        def emit(self, lines, out) -> None:
            for line in lines:
                parsed = logs.parse_line(line)
                if parsed is not None:
                    _, stream, full, message = parsed
                    session.frame(STDERR if stream == "stderr" else STDOUT,
                                  message + (b"\n" if full else b""))

    opts = types.SimpleNamespace(prefix=False, timestamps=False, since_stamp=None)
    try:
        follower = Frames(paths, record_key(record), cs, False, opts, pod_name=record.name)
    except Exception as e:      # CommandError: no log yet
        session.frame(ERROR, json.dumps({"metadata": {}, "status": "Failure",
                                         "message": str(e)}).encode())
        session.close(1000)
        return
    try:
        follower.backlog(None, 0)   # skip what was written before the attach
        while not follower.done and not session.closed:
            busy = follower.poll(None)
            ready, _, _ = select.select([session.fd], [], [],
                                        0 if busy else cmd_logs.FOLLOW_POLL)
            if ready:
                if session.receive() is None:
                    return
    finally:
        follower.f.close()
    session.frame(ERROR, json.dumps(_status(0)).encode())
    session.close(1000)


def _set_size(master: int, size: tuple[int, int]) -> None:
    rows, cols = size
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _stop(proc: subprocess.Popen) -> None:
    """The client went away: end the CLI and the command it runs.

    SIGHUP, as a terminal's hang-up; the CLI passes it on to the command
    (cmd_exec._pass_signals: the command is in a session of its own, which
    a signal to the CLI's group would miss). If the command does not end
    within 2 s, SIGTERM: the CLI answers a second signal with SIGKILL to
    the command's group. SIGKILL to the CLI's group is the last word. The
    first two go to the CLI alone: its [1:JOIN] child must stay to report
    the command's end."""
    for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            if sig == signal.SIGKILL:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        try:
            proc.wait(2)
            return
        except subprocess.TimeoutExpired:
            pass
    proc.wait()


def _status(code: int) -> dict:
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: exit status {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
