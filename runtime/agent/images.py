"""Image pulls: the pull policy, pulls in child processes, their back-off.

    Always        pulled once per container of the pod (a restart reuses it)
    IfNotPresent  pulled only when the store lacks it
    Never         never pulled: ErrImageNeverPull when missing

A pull is `minipod pull -q REF` in a child (node.spawn_pull): the loop never
waits on the network, and several containers that need one image share
one pull. A failed pull waits as the kubelet's image back-off does
(ErrImagePull, then ImagePullBackOff): the same Backoff as restarts
(backoff.py), 10 s doubling to 5 min.
"""
from __future__ import annotations

import contextlib
import os

from minipod.runtime.agent.loop import find, update


class Images:
    """Image pulls (mixed into Agent)."""

    # ---- images: the pull policy, pulls in child processes ------------------

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
        c = self.container_of(record, name)
        try:
            image = self.images.get(c.image)
        except ImageNotFound:
            image = None
        if c.image_pull_policy == "Never" and image is None:
            msg = f'Container image "{c.image}" is not present with pull policy of Never'
            update(cs, state="waiting", reason="ErrImageNeverPull", message=msg)
            self.event(pod_name, "ErrImageNeverPull", msg, warning=True)
            return None
        if image is not None and (c.image_pull_policy != "Always" or cs.pulled):
            if not cs.pulled:
                cs.pulled = True
                self.event(pod_name, "Pulled", f'Container image "{c.image}" already present '
                                               f"on machine")
            return image
        self._pull(c.image, pod_name, name)
        return None

    def _pull(self, ref: str, pod_name: str, name: str) -> None:
        """`minipod pull -q REF` as a child process: the loop never waits on
        the network, and several containers needing one image share it."""
        entry = self.pulls.get(ref)
        if entry is None:
            pid, r = self.node.spawn_pull(ref)
            os.set_blocking(r, False)
            entry = self.pulls[ref] = {"pid": pid, "fd": r, "out": b"", "waiters": set(),
                                       "start": self.loop.clock()}
            self.pull_pids[pid] = ref
            self.loop.add_reader(r, self._on_pull_output)
            self.event(pod_name, "Pulling", f'Pulling image "{ref}"')
        entry["waiters"].add((pod_name, name))
        update(find(self.records[pod_name], name), state="waiting", reason="ContainerCreating",
               message=None)

    def _on_pull_output(self, fd: int) -> None:
        entry = next((e for e in self.pulls.values() if e["fd"] == fd), None)
        with contextlib.suppress(BlockingIOError):
            data = os.read(fd, 65536)
            if entry is not None:
                entry["out"] = (entry["out"] + data)[-8192:]
            if not data:
                self.loop.sel.unregister(fd)

    def _pull_done(self, pid: int, code: int) -> None:
        ref = self.pull_pids.pop(pid)
        entry = self.pulls.pop(ref)
        with contextlib.suppress(BlockingIOError, OSError):
            entry["out"] += os.read(entry["fd"], 65536)
        with contextlib.suppress(KeyError, ValueError):
            self.loop.sel.unregister(entry["fd"])
        os.close(entry["fd"])
        lines = [line for line in entry["out"].decode(errors="replace").splitlines()
                 if line.startswith("error:")]
        reason = lines[-1].split(":", 2)[-1].strip() if lines else f"pull exited with {code}"
        seconds = self.loop.clock() - entry["start"]
        for pod_name, name in entry["waiters"]:
            record = self.records.get(pod_name)
            if record is None or record.deletion_timestamp:
                continue
            cs = find(record, name)
            if code == 0:
                cs.pulled = True
                cs.pull_backoff = 0
                self.event(pod_name, "Pulled", f'Successfully pulled image "{ref}" in '
                                               f"{seconds:.3f}s")
                self.sync(pod_name)
                if cs.state == "waiting" and cs.restart_count:
                    self.start_container(pod_name, name)  # a restart that waited for it
            else:
                now = self.loop.wall()
                cs.pull_backoff = self.backoff.next(cs.pull_backoff, now, now)
                delay = cs.pull_backoff["seconds"]
                update(cs, state="waiting", reason="ErrImagePull", message=reason)
                self.event(pod_name, "Failed", f'Failed to pull image "{ref}": {reason}',
                           warning=True)
                self.call_later(min(1.0, delay), self._pull_backoff, pod_name, name,
                                record.uid, delay)
                self.call_later(delay, self._retry_pull, pod_name, name, record.uid)
            self._save(pod_name)

    def _pull_backoff(self, pod_name: str, name: str, uid: str, delay: float) -> None:
        record = self.records.get(pod_name)
        if record is not None and record.uid == uid:
            cs = find(record, name)
            if cs.reason == "ErrImagePull":
                update(cs, reason="ImagePullBackOff",
                          message=f'Back-off pulling image "{cs.image}" ({delay:.0f}s)')
                self.event(pod_name, "BackOff", f'Back-off pulling image "{cs.image}"')
                self._save(pod_name)

    def _retry_pull(self, pod_name: str, name: str, uid: str) -> None:
        record = self.records.get(pod_name)
        if record is not None and record.uid == uid and not record.deletion_timestamp:
            cs = find(record, name)
            if cs.state == "waiting" and cs.reason in ("ErrImagePull",
                                                                 "ImagePullBackOff"):
                self.start_container(pod_name, name)
