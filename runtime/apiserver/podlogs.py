"""GET …/pods/NAME/log: a container's log, with kubectl's query options.

    container  previous  follow  tailLines  sinceSeconds  sinceTime
    timestamps  limitBytes        (others, such as stream, are ignored)

The reading is `minipod logs`' own (runtime/cli/cmd_logs.py Stream: CRI files,
rotation, restarts, the end of a followed container), so the API and the
CLI print the same lines. The answer is text/plain, chunked and flushed
per read; a followed log ends when the container has ended for good, the
pod is deleted, or the client goes away.
"""
from __future__ import annotations

import time
import types

from minipod.runtime.apiserver.objects import ApiError


class _Out:
    """Collects what Stream writes; sends it as chunks; stops at limitBytes."""

    def __init__(self, handler, limit: int | None):
        self.handler, self.limit, self.sent, self.buf = handler, limit, 0, b""

    @property
    def full(self) -> bool:
        return self.limit is not None and self.sent + len(self.buf) >= self.limit

    def write(self, data: bytes) -> None:
        if self.limit is not None:
            data = data[:max(0, self.limit - self.sent - len(self.buf))]
        self.buf += data

    def flush(self) -> None:
        if self.buf:
            self.handler.chunk(self.buf)
            self.sent += len(self.buf)
            self.buf = b""


def _int(q: dict, key: str) -> int | None:
    values = q.get(key)
    if not values or values[-1] == "":
        return None
    try:
        return int(values[-1])
    except ValueError:
        raise ApiError(400, "BadRequest", f"{key}: invalid integer {values[-1]!r}")


def serve(handler, record, q: dict) -> None:
    """GET .../pods/NAME/log of the pod's PodRecord: `minipod logs`, over HTTP."""
    from minipod.runtime.cli import cmd_logs
    from minipod.runtime.paths import record_key
    from minipod.runtime.cli.cmdutil import CommandError

    def flag(key):
        return (q.get(key) or [""])[-1] in ("true", "1")

    name = record.name
    container = (q.get("container") or [None])[-1] or None
    since_stamp = None
    since_seconds = _int(q, "sinceSeconds")
    if since_seconds is not None:
        since_stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - since_seconds))
    elif q.get("sinceTime"):
        since_stamp = q["sinceTime"][-1][:19]
    tail = _int(q, "tailLines")
    limit = _int(q, "limitBytes")
    opts = types.SimpleNamespace(prefix=False, timestamps=flag("timestamps"),
                                 since_stamp=since_stamp)
    try:
        cs = cmd_logs.pick_containers(record, container, False)[0]
        stream = cmd_logs.Stream(handler.server.paths, record_key(record), cs, flag("previous"),
                                 opts, pod_name=name)
    except CommandError as e:
        raise ApiError(400, "BadRequest", str(e))
    out = _Out(handler, limit)
    try:
        handler.start_stream("text/plain")
        stream.backlog(out, -1 if tail is None else max(0, tail))
        out.flush()
        if flag("follow") and not flag("previous"):
            while not stream.done and not out.full:
                busy = stream.poll(out)
                out.flush()
                if not busy:
                    if handler.client_gone():
                        break
                    time.sleep(cmd_logs.FOLLOW_POLL)
        out.flush()
        handler.end_stream()
    finally:
        stream.f.close()
