"""The typed pod record (runtime/api/record.py): real pod.json files read
and written back key for key, records of the previous version adopted."""
import copy
import json
from pathlib import Path

import pytest

from minipod.runtime.api import record as rec
from minipod.runtime.api.record import ContainerState, PodRecord

RECORDS = Path(__file__).resolve().parent.parent / "fixtures" / "records"
# pod.json copied from real runs (a busybox pod, shareProcessNamespace + probe +
# emptyDir; init + sidecar + a container in CrashLoopBackOff)
REAL = sorted(RECORDS.glob("*.json"))


def load(name: str) -> dict:
    return json.loads((RECORDS / name).read_text())


def new_format(d: dict) -> dict:
    """What this version writes for a stored record: sandboxReady beside phase."""
    return dict(d, sandboxReady=d["phase"] in ("Running", "Failed"))


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_a_real_record_round_trips_key_for_key(path):
    stored = new_format(json.loads(path.read_text()))
    before = copy.deepcopy(stored)
    assert PodRecord.from_dict(stored).to_dict() == before
    assert stored == before       # reading never changes what it read


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_a_record_of_the_previous_version_reads_its_phase(path):
    old = json.loads(path.read_text())
    assert "sandboxReady" not in old and old["phase"] == "Running"
    r = PodRecord.from_dict(old)
    assert r.sandbox_ready and not r.evicted
    out = r.to_dict()
    assert out == dict(old, sandboxReady=True)   # the old key kept, the new one added


def test_fields_read_as_attributes():
    r = PodRecord.from_dict(load("init-sidecar-crashloop.json"))
    assert r.name == "rec-init" and r.namespace == "default"
    assert r.pod_ip.startswith("10.") and r.host_ifname and r.bridge
    assert r.restart_policy == "OnFailure"
    assert [c.name for c in r.init_containers] == ["setup", "side"]
    setup, side = r.init_containers
    assert not setup.sidecar and side.sidecar and side.state is ContainerState.RUNNING
    crash = r.container("crash")
    assert crash.state == "waiting" and crash.reason == "CrashLoopBackOff"
    assert crash.restart_count >= 2 and crash.last_state.exit_code == 3
    assert crash.last_state.state == "terminated" and crash.backoff["seconds"] > 0
    assert crash.user.uid == 0 and crash.user.groups == [0]
    assert crash.env["HOME"] == "/root"
    assert r.events[0].reason == "Scheduled" and r.events[0].count == 1
    assert r.container("nope") is None
    shared = PodRecord.from_dict(load("running-shared-pid.json"))
    assert shared.pause.pid > 1 and shared.pause.pid_start > 0
    assert shared.containers[0].process.pid == shared.containers[0].pid
    assert shared.volumes["scratch"].endswith("scratch")


@pytest.mark.parametrize("phase,ready,evicted", [("Pending", False, False),
                                                 ("Running", True, False),
                                                 ("Failed", True, True)])
def test_sandbox_ready_and_evicted_from_an_old_phase(phase, ready, evicted):
    old = dict(load("running-shared-pid.json"), phase=phase)
    r = PodRecord.from_dict(old)
    assert (r.sandbox_ready, r.evicted) == (ready, evicted)
    assert r.to_dict()["phase"] == phase    # an agent of the previous version reads it
    assert "phase" not in r.extra


def test_phase_is_written_from_the_two_facts():
    r = PodRecord(name="p", uid="u")
    assert r.to_dict()["phase"] == "Pending" and r.to_dict()["sandboxReady"] is False
    r.sandbox_ready = True
    assert r.to_dict()["phase"] == "Running"
    r.evicted = True
    assert r.to_dict()["phase"] == "Failed" and "evicted" not in r.to_dict()


def test_unknown_keys_are_kept():
    d = new_format(load("running-shared-pid.json"))
    d["fromTheFuture"] = {"a": 1}
    d["containers"][0]["alsoNew"] = [1, 2]
    d["events"][0]["series"] = 7
    r = PodRecord.from_dict(d)
    assert r.extra == {"fromTheFuture": {"a": 1}}
    assert r.containers[0].extra == {"alsoNew": [1, 2]}
    assert r.to_dict() == d


def test_a_new_record_writes_what_the_agent_always_wrote():
    r = PodRecord(name="p", namespace="ns", uid="u", source="p.yaml",
                  containers=[rec.ContainerRecord(name="c", image="busybox",
                                                  reason="ContainerCreating")])
    out = r.to_dict()
    for key in ("name", "namespace", "uid", "manifest", "source", "creationTimestamp",
                "phase", "restartPolicy", "terminationGracePeriodSeconds", "nodeName",
                "netns", "containers", "initContainers", "version"):
        assert key in out, key
    assert out["containers"] == [{"name": "c", "image": "busybox", "imageID": "",
                                  "state": "waiting", "reason": "ContainerCreating",
                                  "restartCount": 0}]
    assert "podIP" not in out and "deletionTimestamp" not in out   # None, never stored
    assert PodRecord.from_dict(out).to_dict() == out


def test_a_stored_null_stays_null_and_a_cleared_field_goes():
    d = new_format(load("running-shared-pid.json"))
    assert d["containers"][0]["exitCode"] is None
    r = PodRecord.from_dict(d)
    assert r.to_dict()["containers"][0]["exitCode"] is None   # still there, still null
    r.containers[0].state = ContainerState.TERMINATED
    r.containers[0].exit_code = 137
    out = r.to_dict()["containers"][0]
    assert out["state"] == "terminated" and out["exitCode"] == 137
    assert json.loads(json.dumps(r.to_dict(), sort_keys=True)) == r.to_dict()


def test_defaults_match_what_readers_assumed():
    c = rec.ContainerRecord.from_dict({"name": "c", "state": "running"})
    assert c.ready and c.started and c.restart_count == 0 and not c.sidecar
    r = PodRecord.from_dict({"name": "p"})
    assert r.sandbox_ready          # as before: only "phase": "Pending" said not yet
    assert r.namespace == "default" and r.restart_policy == "Always"
    assert r.termination_grace_period_seconds == 30 and r.containers == []


@pytest.mark.parametrize("bad,where", [
    ({"containers": {"a": 1}}, "PodRecord.containers: expected a list, got dict"),
    ({"containers": ["x"]}, "PodRecord.containers[0]: expected an object, got str"),
    ({"containers": [{"state": "sleeping"}]},
     "PodRecord.containers[0].state: unknown value 'sleeping'"),
    ({"pause": 5}, "PodRecord.pause: expected an object, got int"),
])
def test_a_record_of_the_wrong_shape_says_where(bad, where):
    with pytest.raises(rec.RecordError) as e:
        PodRecord.from_dict(bad)
    assert str(e.value) == where


def test_the_container_state_table():
    W, R, T = ContainerState.WAITING, ContainerState.RUNNING, ContainerState.TERMINATED
    assert rec.check_transition("waiting", "running") is R
    for old, new in [(W, W), (W, T), (R, R), (R, T), (T, W), (T, R), (T, T)]:
        assert rec.check_transition(old, new) is new
    for old, new in [(R, W)]:
        with pytest.raises(rec.InvalidTransition, match=f"{old} cannot become {new}"):
            rec.check_transition(old, new)
    assert ContainerState.RUNNING == "running"
    unknown = rec.ContainerRecord(state=T, exit_code=None, reason="Unknown")
    assert unknown.exit_unknown and not rec.ContainerRecord(state=T, exit_code=0).exit_unknown


def test_state_reads_typed_records_and_names_a_bad_one(tmp_path):
    from minipod.runtime import state
    good = new_format(load("running-shared-pid.json"))
    (tmp_path / "a").mkdir()
    state.write(tmp_path / "a", PodRecord.from_dict(good))
    assert state.read(tmp_path / "a") == good            # written key for key
    assert state.read_record(tmp_path / "a") == PodRecord.from_dict(good)
    (tmp_path / "b").mkdir()
    state.write(tmp_path / "b", dict(good, containers=[{"name": "c", "state": "asleep"}]))
    records, errors = state.read_records(tmp_path)
    assert [r.name for r in records] == ["rec-simple"]
    assert errors == [f"cannot read pod state {tmp_path}/b/pod.json: "
                      f"PodRecord.containers[0].state: unknown value 'asleep'"]
