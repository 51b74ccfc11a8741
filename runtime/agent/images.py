"""Image pulls: the pull policy, and pulls in child processes.

    Always        pulled once per container of the pod (a restart reuses it)
    IfNotPresent  pulled only when the store lacks it
    Never         never pulled: ErrImageNeverPull when missing

A pull is `minipod pull -q REF` in a child (node.spawn_pull): the loop never
waits on the network, and several containers that need one image share
one pull. `Puller` owns the children; when one ends it reports through its
callback, on_done(ref, waiters, ok, reason, seconds), and the worker
(worker.py `_pulled`) decides: start the containers, or wait in the
kubelet's image back-off (ErrImagePull, then ImagePullBackOff), timed by
the same Backoff as restarts (backoff.py), 10 s doubling to 5 min.
"""
from __future__ import annotations

import contextlib
import os

from minipod.runtime.agent.loop import find, update


class Puller:
    """The pulls in flight, one child per image ref."""

    def __init__(self, loop, node, on_done):
        self.loop, self.node, self.on_done = loop, node, on_done
        self.pulls: dict[str, dict] = {}     # image ref -> its pull in flight
        self.pids: dict[int, str] = {}       # pull child pid -> image ref

    def pull(self, ref: str, waiter) -> bool:
        """Pull ref for waiter (any hashable: the agent's (pod, container));
        True if this started a new pull, False if it joined one."""
        entry = self.pulls.get(ref)
        started = entry is None
        if started:
            pid, r = self.node.spawn_pull(ref)
            os.set_blocking(r, False)
            entry = self.pulls[ref] = {"pid": pid, "fd": r, "out": b"", "waiters": set(),
                                       "start": self.loop.clock()}
            self.pids[pid] = ref
            self.loop.add_reader(r, self._on_output)
        entry["waiters"].add(waiter)
        return started

    def owns(self, pid: int) -> bool:
        return pid in self.pids

    def _on_output(self, fd: int) -> None:
        entry = next((e for e in self.pulls.values() if e["fd"] == fd), None)
        with contextlib.suppress(BlockingIOError):
            data = os.read(fd, 65536)
            if entry is not None:
                entry["out"] = (entry["out"] + data)[-8192:]
            if not data:
                self.loop.sel.unregister(fd)

    def reaped(self, pid: int, code: int) -> None:
        """The pull child pid ended with code: on_done(ref, waiters, ok,
        reason (its last "error:" line), seconds)."""
        ref = self.pids.pop(pid)
        entry = self.pulls.pop(ref)
        with contextlib.suppress(BlockingIOError, OSError):
            entry["out"] += os.read(entry["fd"], 65536)
        with contextlib.suppress(KeyError, ValueError):
            self.loop.sel.unregister(entry["fd"])
        os.close(entry["fd"])
        lines = [line for line in entry["out"].decode(errors="replace").splitlines()
                 if line.startswith("error:")]
        reason = lines[-1].split(":", 2)[-1].strip() if lines else f"pull exited with {code}"
        self.on_done(ref, entry["waiters"], code == 0, reason,
                     self.loop.clock() - entry["start"])


class Images:
    """The pull policy (mixed into Agent; the pulls are its `puller`)."""

    def _image_ready(self, pod_name: str, name: str):
        """The container's image, if the store has it and imagePullPolicy is
        satisfied; otherwise a pull is started (or joined) and None returned.

            Always        pulled once per container of the pod (a restart reuses it)
            IfNotPresent  pulled only when the store lacks it
            Never         never pulled: ErrImageNeverPull when missing
        """
        from minipod.rootfs.store import ImageNotFound
        record = self.records[pod_name]
        cs = find(record, name)
        c = self.store.container_of(record, name)
        try:
            image = self.images.get(c.image)
        except ImageNotFound:
            image = None
        if c.image_pull_policy == "Never" and image is None:
            msg = f'Container image "{c.image}" is not present with pull policy of Never'
            update(cs, state="waiting", reason="ErrImageNeverPull", message=msg)
            self.store.event(pod_name, "ErrImageNeverPull", msg, warning=True)
            return None
        if image is not None and (c.image_pull_policy != "Always" or cs.pulled):
            if not cs.pulled:
                cs.pulled = True
                self.store.event(pod_name, "Pulled", f'Container image "{c.image}" already present '
                                               f"on machine")
            return image
        self._pull(c.image, pod_name, name)
        return None

    def _pull(self, ref: str, pod_name: str, name: str) -> None:
        """Pull ref for this container (or join its pull): it waits."""
        if self.puller.pull(ref, (pod_name, name)):
            self.store.event(pod_name, "Pulling", f'Pulling image "{ref}"')
        update(find(self.records[pod_name], name), state="waiting", reason="ContainerCreating",
               message=None)
