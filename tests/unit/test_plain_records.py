"""The pod record's classes and paths.Identity without dataclasses (a
cost of every command's start) behave as the dataclasses they were:
constructor, equality, repr, and dataclasses' own functions."""
from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from minipod.runtime.api.record import ContainerRecord, PodRecord, ProcessRef, User
from minipod.runtime.paths import Identity, Paths


def test_the_constructor_takes_fields_in_order_or_by_name():
    assert User(1, 2, [3]) == User(uid=1, gid=2, groups=[3])
    assert ProcessRef(5) == ProcessRef(pid=5, pid_start=None)
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        ContainerRecord(bogus=1)
    with pytest.raises(TypeError, match="multiple values for argument 'pid'"):
        ProcessRef(5, pid=6)
    with pytest.raises(TypeError, match="takes 2 positional arguments"):
        ProcessRef(1, 2, 3)


def test_defaults_are_fresh_and_equality_is_by_value():
    a, b = PodRecord(name="p"), PodRecord(name="p")
    assert a == b and a.containers is not b.containers and a.volumes is not b.volumes
    a.extra["x"] = 1            # extra and _keys are not compared, as before
    assert a == b
    b.containers.append(ContainerRecord(name="c"))
    assert a != b
    assert PodRecord(name="p") != ProcessRef()
    with pytest.raises(TypeError):
        hash(a)                 # mutable: unhashable, as a dataclass with eq
    assert repr(User(1, 2, [3])) == "User(uid=1, gid=2, groups=[3])"
    assert copy.deepcopy(a) == a and pickle.loads(pickle.dumps(a)) == a


def test_dataclasses_replace_and_fields_still_take_a_record():
    c = ContainerRecord.from_dict({"name": "c", "state": "running", "pid": 5, "new": 1})
    d = dataclasses.replace(c, pid=7)       # as the agent's prober does
    assert (d.pid, d.name, d.state, d.extra) == (7, "c", "running", {"new": 1})
    assert dataclasses.replace(d, pid=5) == c
    names = [f.name for f in dataclasses.fields(PodRecord)]
    assert names[:3] == ["name", "namespace", "uid"] and "evicted" in names
    assert dataclasses.asdict(User(1, 2, [3]))["groups"] == [3]


def test_identity_is_read_only_and_compared_by_value(tmp_path):
    i = Identity("1a2b3c4d", legacy=True)
    assert i == Identity("1a2b3c4d", True) != Identity("1a2b3c4d")
    assert hash(i) == hash(Identity("1a2b3c4d", True)) and i.tag == "minipod-1a2b3c4d"
    with pytest.raises(AttributeError):
        i.id = "0badcafe"
    assert pickle.loads(pickle.dumps(i)) == i == copy.deepcopy(i)
    paths = Paths(str(tmp_path) + "/", i)
    assert paths.pods == tmp_path / "run" / "pods" and str(paths.pods) == paths.string("pods")
    assert pickle.loads(pickle.dumps(paths)).socket == tmp_path / "run" / "agent.sock"
    assert Paths("").log == Paths("").pod_logs.parent
    with pytest.raises(AttributeError):
        paths.nothing
