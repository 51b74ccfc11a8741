"""Kubernetes' time format: RFC 3339 in UTC, whole seconds, as every
object's creationTimestamp, startedAt and event time is written
("2026-12-02T07:20:00Z"). One spelling for the agent, the API server and
the stored objects."""
from __future__ import annotations

import time

FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def rfc3339(seconds: float | None = None) -> str:
    """`seconds` since the epoch (now when None) in Kubernetes' format."""
    return time.strftime(FORMAT, time.gmtime(seconds))


def now_iso() -> str:
    return rfc3339()
