"""Where minipod keeps things, all movable by one variable, MINIPOD_ROOT.

    /run/minipod            runtime state: agent socket, one dir per pod
    /var/lib/minipod        images and layers, container upper dirs
    /var/log/minipod        container logs, CRI format

With MINIPOD_ROOT=/some/dir the three become /some/dir/{run,lib,log}, so a
test suite runs beside the host's minipod without touching it.
"""
from __future__ import annotations

import os
from pathlib import Path


class Paths:
    """All paths of one minipod installation (one MINIPOD_ROOT)."""

    def __init__(self, root: str | None = None):
        root = root if root is not None else os.environ.get("MINIPOD_ROOT", "")
        self.root = root
        if root:
            base = Path(root)
            self.run, self.lib, self.log = base / "run", base / "lib", base / "log"
        else:
            self.run = Path("/run/minipod")
            self.lib = Path("/var/lib/minipod")
            self.log = Path("/var/log/minipod")
        self.socket = self.run / "agent.sock"
        self.agent_lock = self.run / "agent.lock"
        self.agent_log = self.log / "agent.log"
        self.pods = self.run / "pods"
        self.ipam = self.run / "ipam"
        self.hostports = self.run / "hostports"
        self.images = self.lib / "images"
        self.containers = self.lib / "containers"
        self.pod_logs = self.log / "pods"

    @property
    def netns_prefix(self) -> str:
        """minipod-, or for a test root minipod-TAG- (its pods' names in /run/netns)."""
        return f"minipod-{self._tag()}-" if self.root else "minipod-"

    @property
    def cgroup_parent(self) -> str:
        return f"minipod-{self._tag()}" if self.root else "minipod"

    def _tag(self) -> str:
        # hashlib loads OpenSSL: only the commands that name a netns or cgroup pay for it
        import hashlib
        return hashlib.sha256(self.root.encode()).hexdigest()[:6]

    def pod_dir(self, name: str) -> Path:
        return self.pods / name

    def netns_name(self, pod: str) -> str:
        return self.netns_prefix + pod

    def netns_path(self, pod: str) -> Path:
        return Path("/run/netns") / self.netns_name(pod)

    def container_dir(self, pod_uid: str, container: str) -> Path:
        return self.containers / pod_uid / container

    def log_path(self, pod: str, container: str, restart: int) -> Path:
        return self.pod_logs / pod / container / f"{restart}.log"
