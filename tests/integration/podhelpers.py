"""Helpers the integration tests share (not fixtures)."""
from __future__ import annotations

import json
import os
import socket
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


def socket_in(netns_path: str, family=socket.AF_INET, type=socket.SOCK_STREAM,
              proto=0) -> socket.socket:
    """A socket created inside netns_path by a forked child (setns there is
    only safe in a fresh single-threaded child), passed back by SCM_RIGHTS."""
    parent, child = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            parent.close()
            fd = os.open(netns_path, os.O_RDONLY)
            from minipod.linux import namespaces
            namespaces.setns(fd, namespaces.CLONE_NEWNET, netns_path)
            s = socket.socket(family, type, proto)
            socket.send_fds(child, [b"ok"], [s.fileno()])
            status = 0
        except BaseException as e:       # report, never return into pytest
            try:
                child.sendall(repr(e).encode())
            except BaseException:
                pass
        finally:
            os._exit(status)
    child.close()
    try:
        msg, fds, _, _ = socket.recv_fds(parent, 4096, 1)
    finally:
        parent.close()
        os.waitpid(pid, 0)
    if not fds:
        raise RuntimeError(f"socket_in({netns_path}) failed: {msg.decode()}")
    return socket.socket(fileno=fds[0])
