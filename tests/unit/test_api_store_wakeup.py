"""The API server's store hears of the agent's writes from the kernel (inotify),
not from a poll: with the periodic look set to an hour, a record written,
changed and removed still shows up in the change log, in order."""
from __future__ import annotations

import os
import shutil
import time

import pytest

from minipod.runtime import state
from minipod.runtime.apiserver import store as store_mod
from minipod.runtime.paths import Identity, Paths


def record(name: str, phase: str) -> dict:
    return {"name": name, "namespace": "default", "uid": f"uid-{name}", "phase": phase,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "manifest": {"metadata": {"name": name},
                         "spec": {"containers": [{"name": "main", "image": "busybox"}]}},
            "containers": [{"name": "main", "image": "busybox", "state": "waiting",
                            "reason": "ContainerCreating", "restartCount": 0}]}


def wait_for(st, test, what: str):
    """Until test() holds (cond held while testing); the 20 s are a safety net
    for a loaded machine, far below the hour a poll would take."""
    deadline = time.monotonic() + 20
    with st.cond:
        while not test():
            left = deadline - time.monotonic()
            assert left > 0, f"the store did not see {what}"
            st.cond.wait(left)


@pytest.fixture
def st(tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "POLL_IDLE", 3600.0)
    monkeypatch.setattr(store_mod, "LIVENESS_SECONDS", 3600.0)
    paths = Paths(str(tmp_path), identity=Identity("0badcafe"))
    s = store_mod.Store(paths)
    assert s._inotify is not None
    yield s
    s.stop()
    s._thread.join(10)


def kinds(st, name):
    return [c.type for c in st.log if c.kind == "pods" and c.obj["metadata"]["name"] == name]


def test_create_change_delete_are_logged_without_a_poll(st):
    pod_dir = st.paths.pod_dir("web")
    pod_dir.mkdir(parents=True)
    state.write(pod_dir, record("web", "Pending"))
    wait_for(st, lambda: "web" in st.pods, "a new pod")
    first = st.pods["web"].obj["metadata"]["resourceVersion"]
    state.write(pod_dir, record("web", "Running"))
    wait_for(st, lambda: st.pods["web"].record["phase"] == "Running", "a changed record")
    assert int(st.pods["web"].obj["metadata"]["resourceVersion"]) > int(first)
    shutil.rmtree(pod_dir)
    wait_for(st, lambda: "web" not in st.pods, "a removed pod")
    assert kinds(st, "web") == ["ADDED", "MODIFIED", "DELETED"]
    rvs = [c.rv for c in st.log]
    assert rvs == sorted(rvs)


def test_a_second_pod_made_after_the_first_is_seen(st):
    for name in ("a", "b"):
        d = st.paths.pod_dir(name)
        d.mkdir(parents=True)
        state.write(d, record(name, "Running"))
        wait_for(st, lambda name=name: name in st.pods, f"pod {name}")
    assert set(st._wds) == {"a", "b"}


def test_stop_closes_its_files(tmp_path, monkeypatch):
    before = len(os.listdir("/proc/self/fd"))
    s = store_mod.Store(Paths(str(tmp_path), identity=Identity("0badcafe")))
    s.stop()
    s._thread.join(10)
    assert not s._thread.is_alive()
    assert len(os.listdir("/proc/self/fd")) == before
