"""The Kubernetes remotecommand channel protocol (exec and attach over WebSocket).

Each WebSocket binary message is one frame: a channel byte, then payload::

    +---------+---------------------------+
    | channel | payload (may be empty)    |      channel  direction  meaning
    +---------+---------------------------+      0 STDIN  C->S  bytes for the process
                                                 1 STDOUT S->C  process output (all of it with a TTY)
                                                 2 STDERR S->C  process stderr (no TTY)
                                                 3 ERROR  S->C  metav1.Status JSON, once, at the end
                                                 4 RESIZE C->S  {"Width":W,"Height":H} JSON (+ newline)
                                               255 CLOSE  C->S  v5 only: payload = [channel]; that
                                                                channel is done (stdin EOF)

Subprotocols: `v5.channel.k8s.io` (kubectl >= 1.30; adds CLOSE) and
`v4.channel.k8s.io` (the Python client; Status JSON on channel 3).
Sequence, as kubectl sees it from a kubelet::

    C: upgrade (v5)          S: 101
    C: [4]{"Width":80,"Height":24}          (TTY only; again on SIGWINCH)
    C: [0]ls\\n ...  [255,0] (stdin EOF)
    S: [1]... [2]...
    S: [3]{"metadata":{},"status":"Success"}   then WebSocket close 1000

The Status objects are built exactly as the kubelet's ServeExec builds
them (kubernetes pkg/kubelet/cri/streaming/remotecommand/exec.go; Go's
json field order, empty `metadata`): client-go reads the exit code from
`details.causes[reason=ExitCode].message` when `reason` is
`NonZeroExitCode` (client-go tools/remotecommand v4.go errorDecoderV4),
and shows the message of any other Failure as `error: ...`.
"""

import json

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
# exec/attach, best first; port-forward over WebSocket is v4-only (kubelet).
EXEC_PROTOCOLS = [V5, V4]

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255
NAMES = {STDIN: "stdin", STDOUT: "stdout", STDERR: "stderr", ERROR: "error",
         RESIZE: "resize", CLOSE: "close"}


class ChannelError(ValueError):
    """A frame that breaks the channel protocol (message says which)."""


def encode(channel: int, payload: bytes = b"") -> bytes:
    """One frame: the channel byte, then PAYLOAD."""
    if not 0 <= channel <= 255:
        raise ChannelError(f"channel {channel} is out of range 0..255")
    return bytes((channel,)) + bytes(payload)


def decode(message: bytes) -> tuple[int, bytes]:
    """(channel, payload) of one received message; empty messages are an error."""
    if not message:
        raise ChannelError("empty message: a channel frame needs its channel byte")
    return message[0], bytes(message[1:])


def decode_close(payload: bytes) -> int:
    """The channel a v5 CLOSE frame ([255, ch]) closes."""
    if len(payload) != 1:
        raise ChannelError(f"close frame must carry exactly one channel byte, got {len(payload)}")
    return payload[0]


def decode_resize(payload: bytes) -> tuple[int, int]:
    """(width, height) from a RESIZE payload `{"Width":W,"Height":H}`.

    Sizes are uint16 in the kubelet (TerminalSize); anything else is refused
    so a hostile client cannot hand ioctl(TIOCSWINSZ) junk.
    """
    try:
        size = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ChannelError(f"resize frame is not JSON: {e}") from None
    if not isinstance(size, dict):
        raise ChannelError('resize frame must be an object {"Width":W,"Height":H}')
    out = []
    for field in ("Width", "Height"):
        value = size.get(field, 0)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF:
            raise ChannelError(f"resize frame: {field} must be an integer 0..65535, got {value!r}")
        out.append(value)
    return out[0], out[1]


def encode_resize(width: int, height: int) -> bytes:
    """A RESIZE frame as client-go sends it (JSON, newline-terminated)."""
    return encode(RESIZE, json.dumps({"Width": width, "Height": height},
                                     separators=(",", ":")).encode() + b"\n")


def _status(status: str, message: str | None = None, reason: str | None = None,
            details: dict | None = None, code: int | None = None) -> dict:
    # Field order follows metav1.Status's JSON tags; kind/apiVersion are
    # absent because the kubelet leaves TypeMeta empty.
    obj = {"metadata": {}, "status": status}
    if message:
        obj["message"] = message
    if reason:
        obj["reason"] = reason
    if details:
        obj["details"] = details
    if code:
        obj["code"] = code
    return obj


def success_status() -> dict:
    """The Status of a command that exited 0."""
    return _status("Success")


def exit_status(code: int) -> dict:
    """The Status of a command that exited with CODE != 0.

    Go's `exec.ExitError` prints as "exit status N", hence the message.
    """
    if code == 0:
        return success_status()
    return _status("Failure",
                   message=f"command terminated with non-zero exit code: exit status {code}",
                   reason="NonZeroExitCode",
                   details={"causes": [{"reason": "ExitCode", "message": str(code)}]})


def internal_error_status(error: str) -> dict:
    """The Status of an exec that could not run (apierrors.NewInternalError).

    kubectl prints `error: Internal error occurred: error executing command
    in container: ERROR` and exits 1.
    """
    err = f"error executing command in container: {error}"
    return _status("Failure", message=f"Internal error occurred: {err}",
                   reason="InternalError", details={"causes": [{"message": err}]},
                   code=500)


def failure_status(message: str, reason: str = "", code: int = 0) -> dict:
    """Any other Failure Status (message shown as `error: MESSAGE`)."""
    return _status("Failure", message=message, reason=reason or None, code=code or None)


def encode_status(status: dict) -> bytes:
    """The ERROR frame carrying STATUS (compact JSON, as Go marshals it)."""
    return encode(ERROR, json.dumps(status, separators=(",", ":")).encode("utf-8"))


def exit_code_of(status: dict) -> int | None:
    """What client-go derives from a Status: 0, the exit code, or None for
    a failure that is not an exit code (for tests and clients)."""
    if status.get("status") == "Success":
        return 0
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                return int(cause.get("message"))
    return None
