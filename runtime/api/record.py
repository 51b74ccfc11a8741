"""The pod record, typed: what the agent stores in RUN/pods/KEY/pod.json.

A `PodRecord` holds the facts the agent knows of one pod (its manifest,
sandbox, network, cgroup, volumes, events) and one `ContainerRecord` per
container: pid and start time, state, exit, restarts, back-off. What
Kubernetes shows (phase, conditions, the STATUS column) is derived from
these facts in one place, runtime/api/podstatus.py; nothing here computes it.

On disk the record stays the JSON object earlier versions wrote, key for
key (podIP, hostIfname, restartCount, initContainers ...): `to_dict()` gives
it back and `from_dict()` reads it, so an agent of the previous version and
tools reading pod.json (jq, the tests) keep working. A field is named after
its key in snake_case (podIP -> pod_ip), with one exception:

    sandbox_ready  (new key "sandboxReady") the pod's namespaces, IP,
                   cgroup and volumes are made. Earlier versions said so
                   with "phase": "Pending" -> "Running", and "Failed" once
                   evicted; a record without sandboxReady is read from its
                   phase (not Pending: ready), and "phase" is still written
                   for them.
    evicted        ("phase": "Failed") the node failed the pod (reason and
                   message say why): Failed, whatever its containers do.

Keys this version does not know are kept in `extra` and written back, so a
record from a newer agent loses nothing. A key that was stored with null
stays null; a field that is None (or at its default) and was not in the
stored record is left out, as the agent always did.

The container state table, written once (the kubelet's three states; the
reason says which kind of waiting, or how it ended):

    from \\ to    waiting             running           terminated
    waiting      reason changes      started           start failed
    running      never: ends first   a new agent       exited, killed, or
                                     adopts it         lost (unknown)
    terminated   back-off, image,    restarted at      restarted, and that
                 config wait         once              start failed again

    waiting     not running yet, or again: ContainerCreating,
                PodInitializing, ErrImagePull, ImagePullBackOff,
                CreateContainerConfigError, CrashLoopBackOff
    running     pid (+ pidStart, so a reused pid cannot fool a reader)
    terminated  exitCode (+ signal), reason Completed / Error / OOMKilled /
                StartError; "unknown" is a terminated container whose exit
                the agent could not see (exitCode None, reason Unknown):
                never invented.
"""
from __future__ import annotations

import enum

SCHEMA_VERSION = 1


class RecordError(ValueError):
    """A stored record of the wrong shape: says which key and what it holds."""


class ContainerState(enum.StrEnum):
    """A container's state as stored ("state" key); equal to its string."""
    WAITING = "waiting"
    RUNNING = "running"
    TERMINATED = "terminated"


W, R, T = ContainerState.WAITING, ContainerState.RUNNING, ContainerState.TERMINATED
TRANSITIONS: dict[ContainerState, frozenset[ContainerState]] = {
    W: frozenset({W, R, T}),   # reason changes; started; the start failed
    R: frozenset({R, T}),      # re-adopted by a new agent; exited or lost
    T: frozenset({W, R, T}),   # waits for back-off, image or config; starts at once,
}                              # or that start failed again (StartError)


class InvalidTransition(ValueError):
    """A container state change the table above does not allow."""

    def __init__(self, old: ContainerState, new: ContainerState):
        super().__init__(f"container state {old} cannot become {new}")
        self.old, self.new = old, new


def check_transition(old: ContainerState | str, new: ContainerState | str) -> ContainerState:
    """`new` as a ContainerState, if `old` may become it; InvalidTransition if not."""
    old, new = ContainerState(old), ContainerState(new)
    if new not in TRANSITIONS[old]:
        raise InvalidTransition(old, new)
    return new


def _camel(name: str) -> str:
    """The JSON key of a field: pod_ip -> podIP, image_id -> imageID."""
    first, *rest = name.split("_")
    return first + "".join(p.upper() if p in ("ip", "id") else p.capitalize() for p in rest)


class _Fresh:
    """A field's default made anew for each object (a list, a dict): what
    dataclasses calls a default_factory."""

    def __init__(self, make):
        self.make = make


class _DataclassFields:
    """A record class's `__dataclass_fields__`, made on first use from a
    dataclass of the same fields (dataclasses.make_dataclass): so
    dataclasses.replace(record, pid=...) works as when these classes were
    dataclasses (the agent's prober calls it), and only a process that asks
    imports dataclasses."""

    def __get__(self, obj, cls):
        import dataclasses
        specs = [(name, object, dataclasses.field(default_factory=default.make)
                  if isinstance(default, _Fresh) else dataclasses.field(default=default))
                 for name, default in cls._defaults]
        hidden = {"kw_only": True, "repr": False, "compare": False}
        specs += [("extra", dict, dataclasses.field(default_factory=dict, **hidden)),
                  ("_keys", frozenset, dataclasses.field(default=frozenset(), **hidden))]
        fields = dataclasses.make_dataclass(cls.__name__, specs).__dataclass_fields__
        cls.__dataclass_fields__ = fields    # made once per class
        return fields


class _Stored:
    """The fields, from_dict/to_dict of the record's classes.

    A field is an annotated class attribute with its default (a _Fresh for
    a list or dict), as in a dataclass, but without dataclasses: importing
    it (and inspect, ast, dis with it) and generating the classes' methods
    cost every `minipod get` 14 ms, more than all else it does. The
    constructor takes the fields in order or by name, as a dataclass's does;
    two records are equal when their fields are; dataclasses' functions
    (replace, fields, asdict) still take them (_DataclassFields).

    ALWAYS: JSON keys written even at their default (the agent always wrote
    them). NESTED: field -> class of its value (or of each item of a list).
    NOT_STORED: fields kept in memory only. `extra` holds the keys this
    version does not know; `_keys` remembers which keys the stored dict had,
    so a key stored as null or at its default is written back as it was.
    Both are keyword-only and not compared: two records of the same facts
    are equal."""
    ALWAYS = frozenset()
    NESTED = {}
    NOT_STORED = frozenset()
    _defaults = ()          # (field, default) of each field, in order
    _stored = ()            # (field, JSON key, default) of each stored field
    __dataclass_fields__ = _DataclassFields()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        fields = {}
        for klass in reversed(cls.__mro__):   # a base's fields first, as dataclasses orders them
            for name in vars(klass).get("__annotations__", {}):
                fields[name] = getattr(klass, name)
        cls._defaults = tuple(fields.items())
        cls._stored = tuple((name, _camel(name), default) for name, default in cls._defaults
                            if name not in cls.NOT_STORED)

    def __init__(self, *args, extra: dict | None = None, _keys: frozenset = frozenset(),
                 **kwargs):
        cls = type(self).__name__
        if len(args) > len(self._defaults):
            raise TypeError(f"{cls}() takes {len(self._defaults)} positional arguments, "
                            f"{len(args)} were given")
        for (name, _), value in zip(self._defaults, args):
            if name in kwargs:
                raise TypeError(f"{cls}() got multiple values for argument {name!r}")
            kwargs[name] = value
        for name, default in self._defaults:
            if name in kwargs:
                value = kwargs.pop(name)
            else:
                value = default.make() if isinstance(default, _Fresh) else default
            setattr(self, name, value)
        if kwargs:
            raise TypeError(f"{cls}() got an unexpected keyword argument {next(iter(kwargs))!r}")
        self.extra = {} if extra is None else extra
        self._keys = _keys

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name, _ in self._defaults)

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    __hash__ = None      # mutable, compared by value: as a dataclass

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name, _ in self._defaults)
        return f"{type(self).__qualname__}({fields})"

    @classmethod
    def from_dict(cls, d: dict, where: str = ""):
        """The object of a stored dict; RecordError names a key of the wrong shape."""
        where = where or cls.__name__
        if not isinstance(d, dict):
            raise RecordError(f"{where}: expected an object, got {type(d).__name__}")
        kwargs, known = {}, set()
        for name, key, _ in cls._stored:
            known.add(key)
            if key in d:
                kwargs[name] = cls._load(name, d[key], f"{where}.{key}")
        obj = cls(**kwargs)
        obj.extra = {k: v for k, v in d.items() if k not in known}
        obj._keys = frozenset(d)
        return obj

    @classmethod
    def _load(cls, name: str, value: object, where: str) -> object:
        kind = cls.NESTED.get(name)
        if kind is None or value is None:
            return value
        if issubclass(kind, enum.Enum):
            try:
                return kind(value)
            except ValueError:
                raise RecordError(f"{where}: unknown value {value!r}") from None
        if name in _LISTS:
            if not isinstance(value, list):
                raise RecordError(f"{where}: expected a list, got {type(value).__name__}")
            return [kind.from_dict(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return kind.from_dict(value, where)

    def to_dict(self) -> dict:
        """The stored JSON object: the keys earlier versions wrote, and `extra`."""
        out = dict(self.extra)
        for name, key, default in self._stored:
            value = getattr(self, name)
            if isinstance(default, _Fresh):
                default = default.make()
            if key in self.ALWAYS or key in self._keys or value != default:
                out[key] = _dump(value)
        return out


_LISTS = frozenset({"containers", "init_containers", "events"})


def _dump(value: object) -> object:
    if isinstance(value, _Stored):
        return value.to_dict()
    if isinstance(value, list):
        return [_dump(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    return value


# A back-off entry (runtime/agent/backoff.py), kept as stored: {"seconds":
# how long the next wait is, "since": when the last retry was (wall clock,
# seconds)}. A plain dict: a TypedDict would import typing into every command.
BackoffEntry = dict


class ProcessRef(_Stored):
    """A process the agent started: pid and its start time (field 22 of
    /proc/PID/stat), so a reused pid is never taken for it."""
    pid: int | None = None
    pid_start: int | None = None
    ALWAYS = frozenset({"pid", "pidStart"})


class User(_Stored):
    """Who the container's process runs as (uid, gid, supplementary groups):
    exec and probes enter as the same user."""
    uid: int = 0
    gid: int = 0
    groups: list[int] = _Fresh(list)
    ALWAYS = frozenset({"uid", "gid", "groups"})


class LastState(_Stored):
    """How the container's previous run ended (Kubernetes' lastState)."""
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None
    message: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    state: str | None = None
    ALWAYS = frozenset({"exitCode", "signal", "reason", "message", "startedAt",
                        "finishedAt", "state"})


class Event(_Stored):
    """A Kubernetes-style event of the pod (`describe` shows them); a repeat
    bumps count and lastTimestamp."""
    type: str = "Normal"
    reason: str = ""
    message: str = ""
    count: int = 1
    first_timestamp: str | None = None
    last_timestamp: str | None = None
    ALWAYS = frozenset({"type", "reason", "message", "count", "firstTimestamp",
                        "lastTimestamp"})


class ContainerRecord(_Stored):
    """One container (main, init or sidecar) of the pod, as the agent knows it.

    image_id is the digest of the image it runs ("" until looked up);
    env is what exec, probes and hooks run with: a dict, or None with
    env_file (a Secret's values, in a 0600 file), or absent in records of
    older versions (then computed again). backoff and pull_backoff are the
    back-off entries (BackoffEntry) of restarts and of image pulls, None
    (or 0, as earlier versions reset it) when there is none. The flags:
    pulled (image present, no pull again), config_wait (waits for a ConfigMap/Secret), respec
    (killed for a new image: restart at once), stopping (a sidecar told to
    end)."""
    name: str = ""
    image: str | None = None
    image_id: str = ""
    state: ContainerState = ContainerState.WAITING
    reason: str | None = None
    message: str | None = None
    restart_count: int = 0
    sidecar: bool = False
    pid: int | None = None
    pid_start: int | None = None
    container_id: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    started: bool = True
    ready: bool = True
    cgroup: str | None = None
    user: User | None = None
    env: dict | None = None
    env_file: str | None = None
    last_state: LastState | None = None
    exited_at: float | None = None
    restart_at: float | None = None
    backoff: BackoffEntry | None = None
    pulled: bool = False
    pull_backoff: BackoffEntry | None = None
    config_wait: bool = False
    respec: bool = False
    stopping: bool = False
    ALWAYS = frozenset({"name", "image", "imageID", "state", "restartCount"})
    NESTED = {"state": ContainerState, "user": User, "last_state": LastState}

    @property
    def process(self) -> ProcessRef | None:
        """pid and pid_start, while it runs."""
        return ProcessRef(self.pid, self.pid_start) if self.pid else None

    @property
    def exit_unknown(self) -> bool:
        """Ended while the agent could not see it: its exit code is unknown."""
        return self.state == ContainerState.TERMINATED and self.exit_code is None


class PodRecord(_Stored):
    """One pod, as the agent stores it (see the module docstring).

    manifest is the Pod object the user sent (a dict: the Kubernetes object,
    not the record), source where it came from (a file name, "<api>").
    netns is the pinned network namespace's name, cgroup the pod's cgroup,
    volumes {volume name: host path}, pause the process that holds the
    PID namespace when shareProcessNamespace is set."""
    name: str = ""
    namespace: str = "default"
    uid: str = ""
    manifest: dict = _Fresh(dict)
    source: str | None = None
    creation_timestamp: str | None = None
    sandbox_ready: bool = False
    evicted: bool = False          # stored as "phase": "Failed"
    restart_policy: str = "Always"
    termination_grace_period_seconds: int = 30
    node_name: str | None = None
    netns: str | None = None
    containers: list[ContainerRecord] = _Fresh(list)
    init_containers: list[ContainerRecord] = _Fresh(list)
    pod_ip: str | None = None
    host_ifname: str | None = None
    host_ip: str | None = None
    bridge: str | None = None
    service_account_dir: str | None = None
    cgroup: str | None = None
    qos_class: str | None = None
    pause: ProcessRef | None = None
    volumes: dict[str, str] = _Fresh(dict)
    start_time: str | None = None
    deletion_timestamp: str | None = None
    reason: str | None = None
    message: str | None = None
    events: list[Event] = _Fresh(list)
    version: int = SCHEMA_VERSION
    NOT_STORED = frozenset({"evicted"})
    ALWAYS = frozenset({"name", "namespace", "uid", "manifest", "source", "creationTimestamp",
                        "sandboxReady", "restartPolicy", "terminationGracePeriodSeconds",
                        "nodeName", "netns", "containers", "initContainers", "version"})
    NESTED = {"containers": ContainerRecord, "init_containers": ContainerRecord,
              "pause": ProcessRef, "events": Event}

    @classmethod
    def from_dict(cls, d: dict, where: str = "") -> PodRecord:
        """A stored record; one without sandboxReady (an earlier version's)
        is read from its "phase" as that version did: anything but Pending
        (Running, Failed) means the sandbox was made."""
        record = super().from_dict(d, where)
        phase = record.extra.pop("phase", None)
        if "sandboxReady" not in d:
            record.sandbox_ready = phase != "Pending"
        record.evicted = phase == "Failed"
        return record

    def to_dict(self) -> dict:
        """The stored JSON object, with "phase" as earlier versions wrote it."""
        out = super().to_dict()
        out["phase"] = "Failed" if self.evicted else "Running" if self.sandbox_ready \
            else "Pending"
        return out

    def all_containers(self) -> list[ContainerRecord]:
        """Init containers (and sidecars) first, then the main ones."""
        return self.init_containers + self.containers

    def container(self, name: str) -> ContainerRecord | None:
        """The container called `name`, or None."""
        return next((c for c in self.all_containers() if c.name == name), None)


def as_pod(record: PodRecord | dict) -> PodRecord:
    """`record` as a PodRecord: the functions that take a pod record also
    take it as stored (the JSON object: tests, tools, an agent answer)."""
    return record if isinstance(record, PodRecord) else PodRecord.from_dict(record)


def as_container(cs: ContainerRecord | dict) -> ContainerRecord:
    """`cs` as a ContainerRecord (see as_pod)."""
    return cs if isinstance(cs, ContainerRecord) else ContainerRecord.from_dict(cs)
