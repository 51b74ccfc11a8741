"""Helpers the integration tests share (not fixtures)."""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
BUSYBOX_IMAGE = "minipod.test/busybox:1"


def http_get(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def http_get_when_up(url: str, wait: float = 10) -> str:
    """http_get, retried while the server in the pod is still starting."""
    import time
    deadline = time.monotonic() + wait
    while True:
        try:
            return http_get(url)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def pod_manifest(name: str, command: str, image: str = BUSYBOX_IMAGE, **spec) -> str:
    """A one-container pod running `sh -c COMMAND`."""
    extra = "".join(f"  {k}: {v}\n" for k, v in spec.items())
    return (f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{extra}"
            f"  containers:\n  - name: main\n    image: {image}\n"
            f"    command: [\"sh\", \"-c\", {json.dumps(command)}]\n")
