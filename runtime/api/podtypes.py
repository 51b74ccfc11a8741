"""The Pod as minipod runs it: the types a validated manifest becomes.

    Pod            name, namespace, labels, containers, init containers,
                   volumes, restart policy, grace period; ``raw``: the
                   object as loaded
    Container      image, command, env, ports, mounts, probes, lifecycle,
                   resources, security context, with Kubernetes' defaults
    Port, EnvVar, VolumeMount, Volume, Handler, Probe, Lifecycle,
    Resources, SecurityContext      the levels inside
    Problem        one error or warning: file, line, field, message
    ManifestError  the manifest is invalid: every Problem, one a line

Plain dataclasses, filled in by the checks (pod.py and the modules it
calls); default_pull_policy is Kubernetes' imagePullPolicy default.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One error or warning, located as precisely as the input allows."""
    source: str            # file path as given, or "<stdin>"
    line: int | None       # 1-based; None when unknown (load_object)
    field: str             # "spec.containers[0].images"; "" for the file
    message: str

    def __str__(self) -> str:
        head = self.source or ""
        if self.line is not None:
            head += f":{self.line}"
        parts = [p for p in (head, self.field) if p]
        return ": ".join(parts + [self.message])


class ManifestError(Exception):
    """The manifest is not valid; ``str(e)`` lists every problem, one a line.

    ``problems`` are the errors; ``warnings`` those found along the way.
    """

    def __init__(self, problems: list[Problem],
                 warnings: list[Problem] | None = None):
        self.problems = list(problems)
        self.warnings = list(warnings or [])
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class Port:
    """A container port (spec.containers[].ports[])."""
    container_port: int
    protocol: str = "TCP"
    name: str | None = None
    host_port: int | None = None
    host_ip: str | None = None


@dataclass
class EnvVar:
    """An environment variable: a literal value, or ``value_from`` (the
    checked valueFrom map, resolved when the container starts:
    runtime/configobjects.py)."""
    name: str
    value: str = ""
    value_from: dict | None = None


@dataclass
class VolumeMount:
    """Where a container sees a volume (spec.containers[].volumeMounts[])."""
    name: str                   # a volume of spec.volumes
    mount_path: str             # absolute, inside the container
    read_only: bool = False
    sub_path: str | None = None  # relative path inside the volume


@dataclass
class Volume:
    """A pod volume: emptyDir, hostPath, or one whose files minipod writes
    (configMap, secret, downwardAPI, projected: ``source`` is the checked
    map, runtime/api/configrefs.py; the files: runtime/projection.py)."""
    name: str
    kind: str                   # "emptyDir" | "hostPath" | "configMap" | ...
    medium: str = ""            # emptyDir: "" (disk) or "Memory" (tmpfs)
    size_limit: int | None = None   # emptyDir sizeLimit in bytes; None: none
    path: str | None = None     # hostPath.path, absolute, on the host
    # hostPath type: "" (no check), DirectoryOrCreate, Directory,
    # FileOrCreate, File, Socket, CharDevice, BlockDevice
    host_path_type: str = ""
    source: dict | None = None


@dataclass
class Handler:
    """One action of a probe or of a lifecycle hook.

    ``kind`` says which fields mean something: exec -> command; httpGet ->
    port, host, path, scheme, headers; tcpSocket -> port, host; sleep ->
    seconds. A named port ("http") is already resolved to its number.
    ``host`` None means the pod's IP, as in Kubernetes.
    """
    kind: str                   # "exec" | "httpGet" | "tcpSocket" | "sleep"
    command: list[str] | None = None
    port: int | None = None
    host: str | None = None
    path: str = "/"
    scheme: str = "HTTP"
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    seconds: int | None = None


@dataclass
class Probe:
    """A liveness, readiness or startup probe, with Kubernetes' defaults."""
    handler: Handler
    initial_delay_seconds: int = 0
    period_seconds: int = 10
    timeout_seconds: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3
    termination_grace_period_seconds: int | None = None  # None: the pod's


@dataclass
class Lifecycle:
    """Hooks run right after a container starts and before it is stopped."""
    post_start: Handler | None = None
    pre_stop: Handler | None = None


@dataclass
class Resources:
    """cpu in millicores, memory in bytes; None where nothing is set.

    A request left out equals its limit, as Kubernetes defaults it.
    """
    cpu_request_milli: int | None = None
    cpu_limit_milli: int | None = None
    memory_request: int | None = None
    memory_limit: int | None = None
    # bytes of local disk (writable layer + logs), enforced by eviction
    ephemeral_storage_limit: int | None = None


@dataclass
class SecurityContext:
    """The *effective* security settings of one container.

    The pod's spec.securityContext with the container's own fields on top
    (fsGroup and supplementalGroups exist only at the pod level). None
    means "not set": the image's user, or the runtime's default.
    Capabilities are named as in Kubernetes: "NET_ADMIN", "ALL".
    """
    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    fs_group: int | None = None
    supplemental_groups: list[int] = dataclasses.field(default_factory=list)
    privileged: bool = False
    allow_privilege_escalation: bool | None = None
    read_only_root_filesystem: bool = False
    capabilities_add: list[str] = dataclasses.field(default_factory=list)
    capabilities_drop: list[str] = dataclasses.field(default_factory=list)
    seccomp_profile: str = "RuntimeDefault"   # or "Unconfined"


@dataclass
class Container:
    """A container of a pod: regular, init, or sidecar (an init container
    with restart_policy "Always"), with Kubernetes' defaults filled in."""
    name: str
    image: str
    image_pull_policy: str
    command: list[str] | None
    args: list[str] | None
    env: list[EnvVar]
    working_dir: str | None
    ports: list[Port]
    volume_mounts: list[VolumeMount] = dataclasses.field(default_factory=list)
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None
    startup_probe: Probe | None = None
    lifecycle: Lifecycle = dataclasses.field(default_factory=Lifecycle)
    resources: Resources = dataclasses.field(default_factory=Resources)
    security_context: SecurityContext = dataclasses.field(
        default_factory=SecurityContext)
    # Only on init containers, and only "Always": a native sidecar, started
    # before the main containers and kept running beside them.
    restart_policy: str | None = None
    # envFrom: [{"prefix", "kind": "configMap"|"secret", "name", "optional"}]
    env_from: list[dict] = dataclasses.field(default_factory=list)


@dataclass
class Pod:
    """A validated Pod; ``raw`` is the object exactly as it was loaded."""
    name: str
    namespace: str
    labels: dict[str, str]
    annotations: dict[str, str]
    containers: list[Container]
    restart_policy: str
    termination_grace_period_seconds: int
    raw: dict                 # the object as loaded, for `get -o yaml`
    source: str
    line: int | None          # where the document starts
    init_containers: list[Container] = dataclasses.field(default_factory=list)
    volumes: list[Volume] = dataclasses.field(default_factory=list)
    share_process_namespace: bool = False
    hostname: str | None = None     # spec.hostname; None: the pod's name


def default_pull_policy(image: str) -> str:
    """Kubernetes' default imagePullPolicy for ``image``.

    ``Always`` when the tag is ``latest``, or when there is neither tag nor
    digest (which means latest); ``IfNotPresent`` otherwise. Follows
    ``SetDefaults_Container`` in pkg/apis/core/v1/defaults.go.
    """
    rest, _, digest = image.partition("@")
    last = rest.rsplit("/", 1)[-1]      # a registry "host:5000/" is no tag
    tag = last.partition(":")[2]
    if tag == "latest" or (not tag and not digest):
        return "Always"
    return "IfNotPresent"
