"""Pod manifests: parse, then validate, before anything is created.

A manifest is a file holding one or more Kubernetes v1 Pod objects, in YAML
(documents separated by ``---``) or JSON. It becomes a list of :class:`Pod`
values in two pure steps; nothing here touches the kernel:

1. **parse** -- yaml's *composer* turns the text into a tree of nodes, and
   every node knows the line it was written on. We walk that tree into plain
   dicts, lists, strings and numbers (kept as ``Pod.raw`` for ``get -o
   yaml``) and, beside them, a table ``path -> line`` such as
   ``("spec", "containers", 0, "image") -> 7``. JSON is YAML, so a ``.json``
   file takes the same road and its errors name lines too.

2. **validate** -- walk the plain object level by level (Pod, ObjectMeta,
   PodSpec, Container, ContainerPort, EnvVar, Volume, VolumeMount, Probe,
   Lifecycle, ResourceRequirements, SecurityContext) against the field
   tables below and *collect* every problem instead of stopping at the
   first, so the user fixes the whole file in one go. A :class:`Problem`
   names the file, the line, the field and what to do::

       kubia.yaml:7: spec.containers[0].images: unknown field "images"; did you mean "image"?

   Errors raise :class:`ManifestError`; warnings (fields that are valid
   Kubernetes but that minipod ignores) are returned, never dropped.

   Validation also does what the API server's *defaulting* does, so the
   values handed on are the ones a cluster would run: a volume without a
   source is an emptyDir, a probe's periodSeconds is 10 unless set, a
   resource request left out equals its limit, and a container's security
   settings are the pod's ``spec.securityContext`` with the container's own
   fields on top. Quantities ("500m", "128Mi", "1e3") are read the way
   Kubernetes' ``resource.Quantity`` reads them, exactly (fractions, no
   floats), and rounded up to millicores and bytes as the kubelet does.

The rules are the API server's (k8s.io/kubernetes
``pkg/apis/core/validation/validation.go``, ``pkg/apis/core/v1/defaults.go``
and apimachinery ``pkg/util/validation/validation.go``), so a manifest that
minipod accepts also runs unchanged on a real cluster with ``kubectl apply
-f``. A few are stricter, said where they are: they refuse what a cluster
accepts but could never run (a postStart hook of kind tcpSocket, runAsNonRoot
with runAsUser 0), or what only works on some runtimes (capability names
written "CAP_NET_ADMIN" or "net_admin"). Volume sources other than emptyDir
and hostPath are errors, not warnings: a pod cannot work without its volumes.

Usage::

    pods, warnings = load_file("pod.yaml")      # raises ManifestError
    pods[0].containers[0].resources.memory_limit  # 134217728 for "128Mi"
"""

from __future__ import annotations

import dataclasses
import math
import posixpath
import re
import sys
from dataclasses import dataclass

# yaml, difflib and fractions are imported inside the functions that need
# them: every CLI command imports this module (for the Pod type), few of
# them parse.


# ---------------------------------------------------------------------------
# Field tables: the complete field lists of the Kubernetes v1 schema (as of
# Kubernetes 1.37), split into what minipod implements and what it ignores
# with a warning. Anything in neither set is an unknown field: an error.

SUPPORTED = {
    "pod": {"apiVersion", "kind", "metadata", "spec"},
    "metadata": {"name", "namespace", "labels", "annotations"},
    "spec": {"containers", "initContainers", "restartPolicy",
             "terminationGracePeriodSeconds", "volumes", "hostname",
             "shareProcessNamespace", "securityContext",
             "automountServiceAccountToken"},
    "container": {"name", "image", "imagePullPolicy", "command", "args",
                  "env", "workingDir", "ports", "volumeMounts",
                  "livenessProbe", "readinessProbe", "startupProbe",
                  "lifecycle", "resources", "securityContext",
                  "restartPolicy", "envFrom"},
    "port": {"containerPort", "protocol", "name", "hostPort", "hostIP"},
    "env": {"name", "value", "valueFrom"},
    "status": set(),
    "volume": {"name", "emptyDir", "hostPath", "configMap", "secret", "downwardAPI",
               "projected"},
    "emptyDir": {"medium", "sizeLimit"},
    "hostPath": {"path", "type"},
    "volumeMount": {"name", "mountPath", "readOnly", "subPath"},
    # grpc is known here so that it is not an unknown field; the probe
    # check warns that minipod does not run it.
    "probe": {"exec", "httpGet", "tcpSocket", "grpc", "initialDelaySeconds",
              "periodSeconds", "timeoutSeconds", "successThreshold",
              "failureThreshold", "terminationGracePeriodSeconds"},
    "lifecycle": {"postStart", "preStop"},
    "handler": {"exec", "httpGet", "tcpSocket", "sleep"},
    "exec": {"command"},
    "httpGet": {"path", "port", "host", "scheme", "httpHeaders"},
    "httpHeader": {"name", "value"},
    "tcpSocket": {"port", "host"},
    "grpc": {"port", "service", "mode"},
    "sleep": {"seconds"},
    "resources": {"limits", "requests"},
    "securityContext": {"runAsUser", "runAsGroup", "runAsNonRoot",
                        "privileged", "allowPrivilegeEscalation",
                        "readOnlyRootFilesystem", "capabilities",
                        "seccompProfile"},
    "podSecurityContext": {"runAsUser", "runAsGroup", "runAsNonRoot",
                           "fsGroup", "supplementalGroups", "seccompProfile"},
    "capabilities": {"add", "drop"},
    "seccompProfile": {"type", "localhostProfile"},
}

NOT_IMPLEMENTED = {
    "pod": {"status"},
    "metadata": {
        "creationTimestamp", "deletionGracePeriodSeconds",
        "deletionTimestamp", "finalizers", "generateName", "generation",
        "managedFields", "ownerReferences", "resourceVersion", "selfLink",
        "uid",
    },
    "spec": {
        "activeDeadlineSeconds", "affinity",
        "dnsConfig", "dnsPolicy", "enableServiceLinks", "ephemeralContainers",
        "evictionResponders", "hostAliases", "hostIPC", "hostNetwork",
        "hostPID", "hostUsers", "hostnameOverride",
        "imagePullSecrets", "nodeName", "nodeSelector", "os",
        "overhead", "preemptionPolicy", "priority", "priorityClassName",
        "readinessGates", "resourceClaims", "resources", "runtimeClassName",
        "schedulerName", "schedulingGates", "schedulingGroup",
        "serviceAccount", "serviceAccountName",
        "setHostnameAsFQDN", "subdomain",
        "tolerations", "topologySpreadConstraints",
    },
    "container": {
        "resizePolicy", "restartPolicyRules", "stdin",
        "stdinOnce", "terminationMessagePath", "terminationMessagePolicy",
        "tty", "volumeDevices",
    },
    "port": set(),
    "env": set(),
    # status is written by the system, never by the user: minipod ignores
    # it as a whole, but still checks its field names for typos.
    "status": {
        "allocatedResources", "conditions", "containerStatuses",
        "ephemeralContainerStatuses", "extendedResourceClaimStatus",
        "hostIP", "hostIPs", "initContainerStatuses", "message",
        "nodeAllocatableResourceClaimStatuses", "nominatedNodeName",
        "observedGeneration", "phase", "podIP", "podIPs", "qosClass",
        "reason", "resize", "resourceClaimStatuses", "resources",
        "startTime", "volumeHealth",
    },
    # The other volume sources. Not warnings but errors (see _check_volume):
    # a container whose volume is missing cannot do its work.
    "volume": {
        "awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder",
        "csi", "ephemeral", "fc", "flexVolume",
        "flocker", "gcePersistentDisk", "gitRepo", "glusterfs", "image",
        "iscsi", "nfs", "persistentVolumeClaim", "photonPersistentDisk",
        "portworxVolume", "quobyte", "rbd", "scaleIO",
        "storageos", "vsphereVolume",
    },
    "emptyDir": {"mode"},
    "hostPath": set(),
    "volumeMount": {"subPathExpr", "mountPropagation", "recursiveReadOnly",
                    "bindMountOptions"},
    "probe": set(),
    "lifecycle": {"stopSignal"},
    "handler": set(),
    "exec": set(),
    "httpGet": {"protocol"},
    "httpHeader": set(),
    "tcpSocket": set(),
    "grpc": set(),
    "sleep": set(),
    "resources": {"claims"},
    "securityContext": {"procMount", "seLinuxOptions", "windowsOptions",
                        "appArmorProfile"},
    "podSecurityContext": {"fsGroupChangePolicy", "seLinuxOptions",
                           "seLinuxChangePolicy", "supplementalGroupsPolicy",
                           "sysctls", "windowsOptions", "appArmorProfile"},
    "capabilities": set(),
    "seccompProfile": set(),
}

# Where each level lives, to tell a user whose field is at the wrong
# indentation where it belongs.
WHERE = {
    "pod": "the Pod itself (top level)",
    "metadata": "metadata",
    "spec": "spec",
    "container": "a container (spec.containers[])",
    "port": "a port (spec.containers[].ports[])",
    "env": "an env entry (spec.containers[].env[])",
    "volume": "a volume (spec.volumes[])",
    "emptyDir": "an emptyDir volume (spec.volumes[].emptyDir)",
    "hostPath": "a hostPath volume (spec.volumes[].hostPath)",
    "volumeMount": "a volume mount (spec.containers[].volumeMounts[])",
    "probe": "a probe (livenessProbe, readinessProbe, startupProbe)",
    "lifecycle": "lifecycle (spec.containers[].lifecycle)",
    "handler": "a lifecycle hook (lifecycle.postStart, lifecycle.preStop)",
    "exec": "an exec action",
    "httpGet": "an httpGet action",
    "httpHeader": "an HTTP header (httpGet.httpHeaders[])",
    "tcpSocket": "a tcpSocket action",
    "grpc": "a grpc action",
    "sleep": "a sleep action",
    "resources": "resources (spec.containers[].resources)",
    "securityContext": "a container's securityContext "
                       "(spec.containers[].securityContext)",
    "podSecurityContext": "the pod's securityContext (spec.securityContext)",
    "capabilities": "securityContext.capabilities",
    "seccompProfile": "securityContext.seccompProfile",
}

# The maps nested in each level: an unknown field that belongs to one of
# them was most likely written one level too high ("command" right under
# livenessProbe instead of under livenessProbe.exec).
CHILDREN = {
    "spec": {"securityContext": "podSecurityContext"},
    "container": {"livenessProbe": "probe", "readinessProbe": "probe",
                  "startupProbe": "probe", "lifecycle": "lifecycle",
                  "resources": "resources",
                  "securityContext": "securityContext"},
    "volume": {"emptyDir": "emptyDir", "hostPath": "hostPath",
               "configMap": "configMapVolume", "secret": "secretVolume",
               "downwardAPI": "downwardAPIVolume", "projected": "projectedVolume"},
    "probe": {"exec": "exec", "httpGet": "httpGet", "tcpSocket": "tcpSocket",
              "grpc": "grpc"},
    "lifecycle": {"postStart": "handler", "preStop": "handler"},
    "handler": {"exec": "exec", "httpGet": "httpGet",
                "tcpSocket": "tcpSocket", "sleep": "sleep"},
    "securityContext": {"capabilities": "capabilities",
                        "seccompProfile": "seccompProfile"},
    "podSecurityContext": {"seccompProfile": "seccompProfile"},
}

# Levels that look alike but hold different fields: a field of one written
# in the other is misplaced, not misspelt ("fsGroup" is the pod's only).
TWINS = {"securityContext": "podSecurityContext",
         "podSecurityContext": "securityContext"}

RESTART_POLICIES = ("Always", "OnFailure", "Never")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
PROTOCOLS = ("TCP", "UDP", "SCTP")
HOST_PATH_TYPES = ("", "DirectoryOrCreate", "Directory", "FileOrCreate",
                   "File", "Socket", "CharDevice", "BlockDevice")
EMPTY_DIR_MEDIA = ("", "Memory")
HTTP_SCHEMES = ("HTTP", "HTTPS")
SECCOMP_TYPES = ("RuntimeDefault", "Unconfined", "Localhost")
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
# The actions each kind of handler may hold, exactly one at a time.
ACTIONS = {"probe": ("exec", "httpGet", "tcpSocket", "grpc"),
           "handler": ("exec", "httpGet", "tcpSocket", "sleep")}
# Probe timing: Kubernetes fills in these values for a field left out or
# set to 0 (SetDefaults_Probe), so 0 is accepted and means the default.
PROBE_DEFAULTS = {"initialDelaySeconds": 0, "timeoutSeconds": 1,
                  "periodSeconds": 10, "successThreshold": 1,
                  "failureThreshold": 3}
# Resource names a container may use (validateContainerResourceName):
# minipod implements cpu and memory; the others are warned about.
# ephemeral-storage limits are enforced by eviction (runtime/agent/eviction.py).
RESOURCES = ("cpu", "memory", "ephemeral-storage")
OTHER_RESOURCES = ()

# Linux capabilities as Kubernetes writes them: the kernel's names
# (capabilities(7)) without the CAP_ prefix, plus "ALL".
CAPABILITIES = frozenset("""
    AUDIT_CONTROL AUDIT_READ AUDIT_WRITE BLOCK_SUSPEND BPF CHECKPOINT_RESTORE
    CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID IPC_LOCK IPC_OWNER KILL
    LEASE LINUX_IMMUTABLE MAC_ADMIN MAC_OVERRIDE MKNOD NET_ADMIN
    NET_BIND_SERVICE NET_BROADCAST NET_RAW PERFMON SETFCAP SETGID SETPCAP
    SETUID SYSLOG SYS_ADMIN SYS_BOOT SYS_CHROOT SYS_MODULE SYS_NICE SYS_PACCT
    SYS_PTRACE SYS_RAWIO SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG WAKE_ALARM
    ALL""".split())

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
MAX_ID = INT32_MAX                  # uids and gids (IsValidUserID)

DEFAULT_NAMESPACE = "default"
DEFAULT_RESTART_POLICY = "Always"
DEFAULT_GRACE_SECONDS = 30

NOT_IMPLEMENTED_MESSAGE = ("field is valid Kubernetes but not implemented "
                           "by minipod yet; ignored")

# The name rules of apimachinery's validation.go.
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
IANA_SVC_NAME = re.compile(r"[-a-z0-9]+")
HTTP_HEADER_NAME = re.compile(r"[-A-Za-z0-9]+")
# Kubernetes >= 1.34 accepts any printable ASCII but '=' in env var names;
# minipod keeps the older rule, which every cluster accepts.
ENV_VAR_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")

MAX_ANNOTATIONS_BYTES = 256 * 1024

# Limits on the YAML tree. Aliases let a few lines expand to billions of
# nodes ("billion laughs"): count nodes as they are expanded and stop early.
MAX_NODES = 100_000
# kube-apiserver refuses a request body over 3 MiB ("request entity too large")
MAX_MANIFEST_BYTES = 3 * 1024 * 1024
MAX_DEPTH = 100


# ---------------------------------------------------------------------------
# The public types.

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


# A Kubernetes quantity: a decimal number and a suffix, either SI ("m" for
# 1/1000, "k", "M", "G" ... for powers of 1000), binary ("Ki", "Mi", "Gi" ...
# for powers of 1024) or an exponent ("1e3"). apimachinery's
# pkg/api/resource/quantity.go, ParseQuantity.
# (A pattern string: re compiles and caches it on first use, not at import.)
_QUANTITY = (r"([+-]?)(\d+(?:\.\d*)?|\.\d+)"
             r"(?:([KMGTPE]i|[numkMGTPE])|[eE]([+-]?\d+))?")
_SUFFIXES = {"n": (10, -9), "u": (10, -6), "m": (10, -3), "": (10, 0),
             "k": (10, 3), "M": (10, 6), "G": (10, 9), "T": (10, 12),
             "P": (10, 15), "E": (10, 18), "Ki": (2, 10), "Mi": (2, 20),
             "Gi": (2, 30), "Ti": (2, 40), "Pi": (2, 50), "Ei": (2, 60)}
QUANTITY_HELP = ("a number with an optional suffix: m, k, M, G, T, P, E "
                 "(powers of 1000), Ki, Mi, Gi, Ti, Pi, Ei (powers of 1024) "
                 "or an exponent (1e3)")


def parse_quantity(value: str | int | float):
    """The exact value of a Kubernetes quantity, as a ``Fraction``.

    ``"500m"`` -> 1/2, ``"128Mi"`` -> 134217728, ``"1e3"`` -> 1000, ``0.5``
    -> 1/2. Raises ``ValueError`` with a message naming the quantity. Round
    up to whole millicores or bytes with ``math.ceil``, as Kubernetes does.
    """
    from fractions import Fraction
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"expected a quantity such as \"500m\" or "
                         f"\"128Mi\", got {_describe(value)}")
    text = value if isinstance(value, str) else repr(value)
    match = re.fullmatch(_QUANTITY, text) if len(text) <= 64 else None
    if match is None:
        message = f'invalid quantity "{text}": must be {QUANTITY_HELP}'
        guess = _quantity_guess(text)
        if guess:
            message += f'; did you mean "{guess}"?'
        raise ValueError(message)
    sign, number, suffix, exponent = match.groups()
    base, power = _SUFFIXES[suffix or ""]
    if exponent is not None:
        power = int(exponent)
        if abs(power) > 30:     # Fraction(10)**10**9 would never finish
            raise ValueError(f'quantity "{text}" is out of range')
    quantity = Fraction(number) * Fraction(base) ** power
    return -quantity if sign == "-" else quantity


def _quantity_guess(text: str) -> str | None:
    """A valid quantity close to ``text``: "12MB" -> "12M", "1gi" -> "1Gi"."""
    match = re.fullmatch(r"([+-]?[0-9.]+) ?([A-Za-z]+)", text.strip())
    if not match:
        return None
    number, suffix = match.groups()
    fixes = {}
    for letter in "KMGTPE":
        decimal = "k" if letter == "K" else letter
        low = letter.lower()
        fixes.update({low + "b": decimal, low + "i": letter + "i",
                      low + "ib": letter + "i"})
        if letter not in "ME":  # "m" is milli and "1e" an exponent: no guess
            fixes[low] = decimal
    fixed = fixes.get(suffix.lower())
    guess = number + fixed if fixed else None
    if guess and guess != text and re.fullmatch(_QUANTITY, guess):
        return guess
    return None


# ---------------------------------------------------------------------------
# Entry points.

def load_file(path: str, objects: list | None = None) -> tuple[list[Pod], list[Problem]]:
    """Read and validate the manifest at ``path`` ("-" for stdin).

    Returns ``(pods, warnings)``; raises :class:`ManifestError` listing all
    errors found, including a file that cannot be read. With ``objects``
    (a list), ConfigMap and Secret documents are checked too and appended
    to it (configobjects.ConfigObject); without, they are refused.
    """
    source = "<stdin>" if path == "-" else path
    try:
        if path == "-":
            stream = getattr(sys.stdin, "buffer", None)
            data = stream.read() if stream is not None else sys.stdin.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
    except OSError as e:
        raise ManifestError([Problem(source, None, "",
                                     f"cannot read file: {e.strerror}")])
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data[:e.start].count(b"\n") + 1
            raise ManifestError([Problem(
                source, line, "",
                f"file is not UTF-8 text (byte 0x{data[e.start]:02x} "
                f"at offset {e.start})")])
    return load_text(data, source, objects)


def load_text(text: str, source: str,
              objects: list | None = None) -> tuple[list[Pod], list[Problem]]:
    """Parse and validate manifest text; see :func:`load_file`."""
    size = len(text) if len(text) > MAX_MANIFEST_BYTES else len(text.encode("utf-8", "replace"))
    if size > MAX_MANIFEST_BYTES:
        raise ManifestError([Problem(source, None, "", (
            f"the file is {size / 2**20:.1f} MiB; Kubernetes takes at most "
            f"{MAX_MANIFEST_BYTES // 2**20} MiB in one request: split it into several files"))])
    roots = _compose(text, source)
    builder = _Builder(source)
    pods: list[Pod] = []
    errors: list[Problem] = []
    warnings: list[Problem] = []
    first_seen: dict[tuple[str, ...], int | None] = {}
    for number, root in enumerate(roots, 1):
        pod, doc_errors, doc_warnings = _load_document(root, builder, source,
                                                       objects is not None, number)
        if pod is not None and not isinstance(pod, Pod):    # a ConfigMap or Secret
            key = (pod.kind, pod.namespace, pod.name)
            if key in first_seen:
                doc_errors.append(Problem(
                    source, pod.line, "metadata.name",
                    f'{pod.kind} "{pod.name}" is defined twice in this file '
                    f"(first at line {first_seen[key]})"))
            else:
                first_seen[key] = pod.line
                objects.append(pod)
        elif pod is not None:
            key = (pod.namespace, pod.name)
            if key in first_seen:
                doc_errors.append(Problem(
                    source, pod.line, "metadata.name",
                    f'pod "{pod.name}" is defined twice in this file '
                    f"(first at line {first_seen[key]})"))
            else:
                first_seen[key] = pod.line
                pods.append(pod)
        errors += _by_line(doc_errors)
        warnings += _by_line(doc_warnings)
    if not pods and not objects and not errors:
        errors.append(Problem(source, None, "",
                              "no Pod found: the file has no documents"))
    if errors:
        raise ManifestError(errors, warnings)
    return pods, warnings


def load_object(obj: dict, source: str = "<object>") -> Pod:
    """Validate an already-parsed Pod object (no line numbers)."""
    if not isinstance(obj, dict):
        raise ManifestError([Problem(
            source, None, "",
            f"expected a Pod object (a map), got {_describe(obj)}")])
    check = _Checker(source, {}, None)
    pod = _validate(_copy(obj), check)
    if check.errors:
        raise ManifestError(_by_line(check.errors), check.warnings)
    return pod


def _copy(value):
    """A copy of plain data (maps, lists, scalars), so that ``Pod.raw`` is
    never the caller's object. Five times faster than copy.deepcopy, which
    the agent would pay for every pod it re-reads."""
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


# ---------------------------------------------------------------------------
# Step 1: parse. Text -> yaml nodes -> plain values plus a table of lines.

def _compose(text: str, source: str) -> list:
    """Compose every YAML document of ``text`` into a node tree."""
    import yaml
    text = _untab_json(text)
    _count_events(text, source)
    try:
        return list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        what = "; ".join(s for s in (e.context, e.problem) if s)
        where = f" (column {mark.column + 1})" if mark else ""
        raise ManifestError([Problem(source, mark.line + 1 if mark else None,
                                     "", f"invalid YAML: {what}{where}")])
    except yaml.reader.ReaderError as e:
        # Raised for characters YAML forbids (NUL, most control characters).
        line = text[:e.position].count("\n") + 1
        char = e.character
        code = f"#x{char:04x}" if isinstance(char, int) else repr(char)
        raise ManifestError([Problem(
            source, line, "",
            f"invalid YAML: character {code} is not allowed")])
    except yaml.YAMLError as e:
        raise ManifestError([Problem(source, None, "", f"invalid YAML: {e}")])
    except RecursionError:
        raise ManifestError([Problem(source, None, "",
                                     "invalid YAML: nested too deeply")])


def _count_events(text: str, source: str) -> None:
    """Refuse a file of more than MAX_NODES nodes before composing it:
    libyaml's event parser counts 200k events in 0.2 s, composing them
    takes seconds. Its syntax errors are left to the composer, whose
    messages say more."""
    import yaml
    loader = getattr(yaml, "CSafeLoader", None)
    if loader is None:
        return
    depth = 0
    try:
        for n, event in enumerate(yaml.parse(text, Loader=loader)):
            if n > 2 * MAX_NODES:
                raise ManifestError([Problem(source, event.start_mark.line + 1, "", (
                    f"the file expands to more than {MAX_NODES} YAML nodes; "
                    "refusing to load it"))])
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise ManifestError([Problem(source, event.start_mark.line + 1, "", (
                        f"nested more than {MAX_DEPTH} levels deep"))])
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
    except yaml.YAMLError:
        return


def _untab_json(text: str) -> str:
    """Let JSON indented with tabs through YAML, which forbids tab indents.

    Valid JSON cannot hold a raw tab inside a string (it must be written
    ``\\t``), so in valid JSON every tab is whitespace and may become a
    space; lines do not move. Anything else is left for YAML to judge.
    """
    if text.lstrip()[:1] not in ("{", "["):
        return text
    import json
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return text
    # characters JSON strings may hold raw but YAML's reader refuses
    return re.sub("[\x7f-\x9f\ufffe\uffff]", lambda m: f"\\u{ord(m.group()):04x}",
                  text.replace("\t", " "))


class _Stop(Exception):
    """The document cannot be walked further (too big or too deep)."""

    def __init__(self, problem: Problem):
        self.problem = problem


class _Builder:
    """Turn yaml nodes into plain values, noting the line of every field.

    One builder serves a whole file, so the node budget covers the file.
    """

    TAG = "tag:yaml.org,2002:"

    def __init__(self, source: str):
        import yaml
        from yaml.constructor import SafeConstructor
        self.yaml = yaml
        self.constructor = SafeConstructor()
        self.source = source
        self.nodes = 0
        self.lines: dict[tuple, int] = {}
        self.problems: list[Problem] = []

    def document(self, root) -> tuple[dict, dict[tuple, int], list[Problem]]:
        self.lines, self.problems = {}, []
        value = self._build(root, (), 0)
        return value, self.lines, self.problems

    def _problem(self, node, path: tuple, message: str) -> Problem:
        return Problem(self.source, node.start_mark.line + 1,
                       _field_name(path), message)

    def _build(self, node, path: tuple, depth: int):
        yaml = self.yaml
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _Stop(self._problem(
                node, (), f"the file expands to more than {MAX_NODES} "
                "YAML nodes (nested aliases?); refusing to load it"))
        if depth > MAX_DEPTH:
            raise _Stop(self._problem(
                node, path, f"nested more than {MAX_DEPTH} levels deep"))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            items = []
            for i, item in enumerate(node.value):
                self.lines[path + (i,)] = item.start_mark.line + 1
                items.append(self._build(item, path + (i,), depth + 1))
            return items
        return self._scalar(node, path)

    def _mapping(self, node, path: tuple, depth: int) -> dict:
        yaml = self.yaml
        out: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == self.TAG + "merge":
                self.problems.append(self._problem(
                    key_node, path, "YAML merge keys (<<) are not supported; "
                    "write the fields out"))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(self._problem(
                    key_node, path, "a field name must be a plain string"))
                continue
            # The key as written: Kubernetes turns `80:` or `true:` into the
            # strings "80" and "true" too (sigs.k8s.io/yaml).
            key = key_node.value
            if key in out:
                self.problems.append(self._problem(
                    key_node, path + (key,),
                    f'field "{key}" appears twice in this map (first at '
                    f"line {self.lines[path + (key,)]})"))
                continue
            self.lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = self._build(value_node, path + (key,), depth + 1)
        return out

    def _scalar(self, node, path: tuple):
        tag = node.tag.removeprefix(self.TAG)
        if tag in ("str", "value"):     # "value" is a lone "=": a string
            return node.value
        if tag == "null":
            return None
        if tag in ("bool", "int", "float"):
            constructor = self.constructor
            try:
                return constructor.yaml_constructors[node.tag](constructor, node)
            except ValueError:   # an integer of more than 4300 digits
                self.problems.append(self._problem(
                    node, path, f"a number of {len(node.value)} digits is out of range"))
                return node.value
        if tag == "timestamp":
            # Kept as written: Kubernetes reads timestamps as strings, and
            # raw must stay printable as JSON.
            return node.value
        self.problems.append(self._problem(
            node, path, f"unsupported YAML tag {node.tag}"))
        return node.value               # reported once: no "got null" after


def _load_document(root, builder: _Builder, source: str, objects: bool = False,
                   number: int = 1):
    """Build and validate one document: ``(pod or None, errors, warnings)``;
    with ``objects``, a ConfigMap or Secret document gives its
    configobjects.ConfigObject in place of the pod."""
    import yaml
    start = root.start_mark.line + 1
    if isinstance(root, yaml.ScalarNode) and root.tag.endswith(":null"):
        return None, [], []             # an empty document, e.g. a stray ---
    if not isinstance(root, yaml.MappingNode):
        kind = "a list" if isinstance(root, yaml.SequenceNode) else "a value"
        message = f"expected a Pod object (a map), got {kind}"
        return None, [Problem(source, start, "", message)], []
    try:
        obj, lines, problems = builder.document(root)
    except _Stop as stop:
        return None, [stop.problem], []
    check = _Checker(source, lines, start)
    check.errors += problems
    check.document = number
    if objects and obj.get("kind") in ("ConfigMap", "Secret"):
        from minipod.runtime import configobjects
        return configobjects.check_object(obj, check), check.errors, check.warnings
    volumes = (obj.get("spec") or {}).get("volumes") if isinstance(obj.get("spec"), dict) else None
    if isinstance(volumes, list) and any(isinstance(v, dict) and str(v.get("name", ""))
                                         .startswith("kube-api-access-") for v in volumes):
        from minipod.runtime import serviceaccount  # (hashlib: only when needed)
        serviceaccount.strip_view(obj)  # `kubectl get pod -o yaml`, run again: its own token
    pod = _validate(obj, check)
    return pod, check.errors, check.warnings


# ---------------------------------------------------------------------------
# Step 2: validate. A _Checker collects problems; one function per level.

class _Checker:
    """Collects errors and warnings for one document, locating each one."""

    def __init__(self, source: str, lines: dict[tuple, int],
                 start: int | None):
        self.source = source
        self.lines = lines
        self.start = start
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        self.document = 1              # which document of the file

    def line(self, path: tuple) -> int | None:
        # A missing field has no line: use the nearest enclosing one.
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.start

    def where(self, path: tuple) -> str:
        """How a message points at another field: "line 7", or its name."""
        line = self.line(path)
        return f"line {line}" if line is not None else _field_name(path)

    def error(self, path: tuple, message: str) -> None:
        self.errors.append(Problem(self.source, self.line(path),
                                   _field_name(path), message))

    def error_once(self, path: tuple, message: str) -> None:
        """Like :meth:`error`, for a pod-level field judged per container:
        only the first message about that field is kept."""
        name = _field_name(path)
        if not any(p.field == name for p in self.errors):
            self.error(path, message)

    def warn(self, path: tuple, message: str) -> None:
        self.warnings.append(Problem(self.source, self.line(path),
                                     _field_name(path), message))

    def get(self, obj: dict, key: str, path: tuple, want: type):
        """``obj[key]`` if present and of type ``want``; else report, None.

        A null value counts as absent, as in Kubernetes.
        """
        value = obj.get(key)
        if value is None or _is(value, want):
            return value
        hint = ""
        if want is str and isinstance(value, (bool, int, float)):
            hint = "; put the value in quotes to make it a string"
        elif want is bool and str(value).lower() in ("true", "false"):
            hint = f"; write {str(value).lower()} without quotes"
        self.error(path + (key,),
                   f"expected {_TYPE_NAMES[want]}, got {_describe(value)}"
                   + hint)
        return None

    def require(self, obj: dict, key: str, path: tuple, want: type,
                suggested: set[str]):
        """Like :meth:`get`, and report the field missing.

        Not reported when an unknown field here was taken for a misspelling
        of it: the user should see one fix, not two messages.
        """
        if obj.get(key) is None:
            if key not in suggested:
                self.error(path + (key,), "required field is missing")
            return None
        return self.get(obj, key, path, want)

    def fields(self, obj: dict, path: tuple, level: str,
               warn: bool = True) -> set[str]:
        """Report unknown fields (errors) and ignored ones (warnings).

        ``warn=False`` leaves the warnings to the caller. Returns the field
        names suggested for the unknown ones.
        """
        known, ignored = SUPPORTED[level], NOT_IMPLEMENTED[level]
        suggested = set()
        for key in obj:
            if not isinstance(key, str):    # only from load_object
                self.error(path, f"field names must be strings, got {key!r}")
                continue
            if key in known:
                continue
            if key in ignored:
                if warn:
                    self.warn(path + (key,), NOT_IMPLEMENTED_MESSAGE)
                continue
            twin = TWINS.get(level)
            if twin and key in SUPPORTED[twin]:
                self.error(path + (key,), f'unknown field "{key}"; "{key}" '
                           f"is a field of {WHERE[twin]}")
                continue
            guess = _suggest(key, known | ignored)
            if guess:
                suggested.add(guess)
                message = f'unknown field "{key}"; did you mean "{guess}"?'
            else:
                message = f'unknown field "{key}"' + _elsewhere(key, level)
            self.error(path + (key,), message)
        return suggested

    def enum(self, obj: dict, key: str, path: tuple,
             allowed: tuple[str, ...]) -> str | None:
        """``obj[key]`` if it is one of ``allowed`` (case-sensitive)."""
        value = self.get(obj, key, path, str)
        if value is None or value in allowed:
            return value
        choices = ", ".join(f'"{a}"' for a in allowed)
        message = f'unsupported value "{value}": must be one of {choices}'
        guess = _suggest(value, allowed)
        if guess:
            case = "values are case-sensitive: " \
                if guess.lower() == value.lower() else ""
            message += f'; {case}did you mean "{guess}"?'
        self.error(path + (key,), message)
        return None

    def integer(self, obj: dict, key: str, path: tuple,
                low: int, high: int) -> int | None:
        value = self.get(obj, key, path, int)
        if value is not None and not low <= value <= high:
            self.error(path + (key,),
                       f"must be between {low} and {high}, got {value}")
            return None
        return value

    def strings(self, obj: dict, key: str, path: tuple) -> list[str] | None:
        """A list of strings (command, args)."""
        items = self.get(obj, key, path, list)
        if items is None:
            return None
        ok = True
        for i, item in enumerate(items):
            if not isinstance(item, str):
                hint = ("; put it in quotes to make it a string"
                        if isinstance(item, (bool, int, float)) else "")
                self.error(path + (key, i),
                           f"expected a string, got {_describe(item)}{hint}")
                ok = False
        return items if ok else None

    def string_map(self, obj: dict, key: str, path: tuple) -> dict[str, str]:
        """A map of strings to strings (labels, annotations)."""
        mapping = self.get(obj, key, path, dict) or {}
        for k, v in mapping.items():
            if not isinstance(k, str):      # only from load_object
                self.error(path + (key,), f"keys must be strings, got {k!r}")
            elif not isinstance(v, str):
                hint = ("; put the value in quotes to make it a string"
                        if isinstance(v, (bool, int, float)) else "")
                self.error(path + (key, k),
                           f"expected a string, got {_describe(v)}{hint}")
        return {k: v for k, v in mapping.items()
                if isinstance(k, str) and isinstance(v, str)}


def _validate(obj: dict, check: _Checker) -> Pod | None:
    """Validate one Pod object; the Pod if it has no errors, else None."""
    if not _check_type_meta(obj, check):
        return None                     # not a Pod at all: say only that
    suggested = check.fields(obj, (), "pod")
    meta = check.require(obj, "metadata", (), dict, suggested)
    spec = check.require(obj, "spec", (), dict, suggested)
    status = check.get(obj, "status", (), dict)
    if status:
        # Already warned about as a whole; only typos are worth a word.
        check.fields(status, ("status",), "status", warn=False)
    # A missing metadata or spec is one error, not one per field inside.
    if meta is not None:
        name, namespace, labels, annotations = _check_metadata(meta, check)
    if spec is not None:
        pod_spec = _check_spec(spec, check)
    if check.errors or meta is None or spec is None:
        return None
    return Pod(name=name, namespace=namespace, labels=labels,
               annotations=annotations, raw=obj, source=check.source,
               line=check.start, **pod_spec)


def _check_type_meta(obj: dict, check: _Checker) -> bool:
    """Check apiVersion and kind. False if the object is not a Pod at all."""
    kind = check.get(obj, "kind", (), str)
    if "kind" not in obj or obj["kind"] is None:
        check.error(("kind",), 'required field is missing; add "kind: Pod"')
    elif kind is not None and kind != "Pod":
        if kind.lower() == "pod":
            check.error(("kind",), f'kind "{kind}" is not supported; kind is '
                        'case-sensitive: did you mean "Pod"?')
        else:
            more = ("; put each object in its own YAML document, separated by "
                    '"---"' if kind == "List" else "")
            check.error(("kind",), f'kind "{kind}" is not supported (document '
                        f"{check.document}): minipod runs Pods, ConfigMaps and Secrets only; "
                        f"nothing in this file is created{more}")
            return False
    api = check.get(obj, "apiVersion", (), str)
    if "apiVersion" not in obj or obj["apiVersion"] is None:
        check.error(("apiVersion",),
                    'required field is missing; add "apiVersion: v1"')
    elif api is not None and api != "v1":
        check.error(("apiVersion",), f'apiVersion "{api}" is not supported: '
                    'Pods are apiVersion "v1"')
    return True


def _check_metadata(meta: dict, check: _Checker):
    """ObjectMeta: name, namespace, labels, annotations."""
    path = ("metadata",)
    suggested = check.fields(meta, path, "metadata")
    name = check.require(meta, "name", path, str, suggested)
    if name is not None:
        _check_name(name, path + ("name",), DNS1123_SUBDOMAIN, 253,
                    "a lowercase RFC 1123 subdomain", "'-' or '.'", check)
    namespace = check.get(meta, "namespace", path, str)
    if namespace is not None:
        _check_name(namespace, path + ("namespace",), DNS1123_LABEL, 63,
                    "a lowercase RFC 1123 label", "'-'", check)
    labels = check.string_map(meta, "labels", path)
    for key, value in labels.items():
        where = path + ("labels", key)
        for message in _qualified_name_problems(key):
            check.error(where, f'invalid label key "{key}": {message}')
        for message in _label_value_problems(value):
            check.error(where, f'invalid label value "{value}": {message}')
    annotations = check.string_map(meta, "annotations", path)
    for key in annotations:
        for message in _qualified_name_problems(key):
            check.error(path + ("annotations", key),
                        f'invalid annotation key "{key}": {message}')
    size = sum(len(k.encode()) + len(v.encode())
               for k, v in annotations.items())
    if size > MAX_ANNOTATIONS_BYTES:
        check.error(path + ("annotations",), f"annotations take {size} bytes;"
                    f" the limit is {MAX_ANNOTATIONS_BYTES}")
    return name, namespace or DEFAULT_NAMESPACE, labels, annotations


class _PodContext:
    """What the checks of one container need to know about its pod.

    A plain class, not a dataclass: each dataclass costs ~0.5 ms at import.
    """

    def __init__(self, volume_names: list[str], security: dict, grace: int):
        self.volume_names = volume_names    # declared in spec.volumes
        self.security = security            # the pod's securityContext
        self.grace = grace                  # terminationGracePeriodSeconds


def _check_spec(spec: dict, check: _Checker) -> dict:
    """PodSpec; returns the Pod fields it holds, by name."""
    path = ("spec",)
    suggested = check.fields(spec, path, "spec")
    restart = check.enum(spec, "restartPolicy", path, RESTART_POLICIES)
    grace = check.integer(spec, "terminationGracePeriodSeconds", path,
                          0, INT64_MAX)
    grace = DEFAULT_GRACE_SECONDS if grace is None else grace
    hostname = check.get(spec, "hostname", path, str)
    if hostname is not None:
        _check_name(hostname, path + ("hostname",), DNS1123_LABEL, 63,
                    "a lowercase RFC 1123 label", "'-'", check)
    check.get(spec, "automountServiceAccountToken", path, bool)  # runtime/serviceaccount.py
    share = check.get(spec, "shareProcessNamespace", path, bool)
    if share and spec.get("hostPID") is True:
        check.error(path + ("shareProcessNamespace",),
                    "may not be true together with hostPID: true")
    volumes, volume_names = _check_volumes(spec, check)
    pod = _PodContext(volume_names, _check_pod_security(spec, check), grace)
    items = check.require(spec, "containers", path, list, suggested)
    if items == []:
        check.error(path + ("containers",),
                    "a pod needs at least one container")
    containers = _check_containers(spec, "containers", check, pod)
    inits = _check_containers(spec, "initContainers", check, pod)
    _check_container_names(spec, check)
    # Sidecars run beside the main containers, in the same port space;
    # regular init containers run one at a time, each on its own.
    _check_pod_ports(containers + [(where, c) for where, c in inits
                                   if c.restart_policy == "Always"], check)
    for where, c in inits:
        if c.restart_policy != "Always":
            _check_pod_ports([(where, c)], check)
    return {"containers": [c for _, c in containers],
            "init_containers": [c for _, c in inits],
            "restart_policy": restart or DEFAULT_RESTART_POLICY,
            "termination_grace_period_seconds": grace,
            "volumes": volumes, "share_process_namespace": bool(share),
            "hostname": hostname}


def _check_containers(spec: dict, key: str, check: _Checker,
                      pod: _PodContext) -> list[tuple[tuple, Container]]:
    """spec.containers or spec.initContainers: ``[(path, Container)]``."""
    found = []
    for i, item in enumerate(check.get(spec, key, ("spec",), list) or []):
        where = ("spec", key, i)
        if not isinstance(item, dict):
            check.error(where, f"expected a container (a map), got "
                        f"{_describe(item)}")
            continue
        container = _check_container(item, where, check, pod,
                                     init=key == "initContainers")
        if container is not None:
            found.append((where, container))
    return found


def _check_container_names(spec: dict, check: _Checker) -> None:
    """Container names are unique across containers and initContainers.

    The later one in the file is reported (in load_object, without lines:
    the init container, as the API server does).
    """
    named = []
    for key in ("containers", "initContainers"):
        items = spec.get(key)
        for i, item in enumerate(items if isinstance(items, list) else []):
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                where = ("spec", key, i, "name")
                named.append((check.line(where) or 0, where, item["name"]))
    first: dict[str, tuple] = {}
    for _, where, name in sorted(named, key=lambda n: n[0]):
        if name not in first:
            first[name] = where
            continue
        other = first[name]
        message = f'duplicate container name "{name}" (first at ' \
            f"{check.where(other)})"
        if other[1] != where[1]:
            message = (f'duplicate container name "{name}": '
                       f"{_field_name(other[:-1])} ({check.where(other)}) "
                       "has it too; names are unique across containers and "
                       "initContainers")
        check.error(where, message)


def _check_container(obj: dict, path: tuple, check: _Checker,
                     pod: _PodContext | None = None,
                     init: bool = False) -> Container | None:
    """Container; None if it has errors."""
    pod = pod or _PodContext([], {}, DEFAULT_GRACE_SECONDS)
    before = len(check.errors)
    suggested = check.fields(obj, path, "container")
    name = check.require(obj, "name", path, str, suggested)
    if name is not None:
        _check_name(name, path + ("name",), DNS1123_LABEL, 63,
                    "a lowercase RFC 1123 label", "'-'", check)
    image = check.require(obj, "image", path, str, suggested)
    if image is not None and (not image or image != image.strip()):
        check.error(path + ("image",),
                    "must not be empty or start or end with whitespace")
    policy = check.enum(obj, "imagePullPolicy", path, PULL_POLICIES)
    command = check.strings(obj, "command", path)
    args = check.strings(obj, "args", path)
    working_dir = check.get(obj, "workingDir", path, str)
    if working_dir is not None and not working_dir.startswith("/"):
        # Stricter than the API server, which leaves this to the runtime;
        # the OCI runtime spec requires an absolute cwd.
        check.error(path + ("workingDir",),
                    f'must be an absolute path, got "{working_dir}"')
    env = _check_env(obj, path, check)
    env_from = configrefs.check_env_from(obj, path, check)
    ports = _check_ports(obj, path, check)
    mounts = _check_volume_mounts(obj, path, check, pod.volume_names)
    restart = _check_container_restart_policy(obj, path, check, init)
    probes: dict[str, Probe | None] = {}
    lifecycle = Lifecycle()
    if init and restart != "Always":
        # kubelet: an init container runs to completion before the next
        # one starts; there is nothing to probe and no hook to run.
        for key in ("lifecycle",) + PROBES:
            if obj.get(key) is not None:
                check.error(path + (key,), "may not be set for an init "
                            "container without restartPolicy: Always (only "
                            "a sidecar init container has probes and "
                            "lifecycle hooks)")
    else:
        named = _named_ports(obj, ports)
        for key in PROBES:
            probes[key] = _check_probe(obj, key, path, check, named,
                                       pod.grace)
        lifecycle = _check_lifecycle(obj, path, check, named, pod.grace)
    resources = _check_resources(obj, path, check)
    security = _check_security_context(obj, path, check, pod.security)
    if len(check.errors) > before:
        return None
    return Container(name=name, image=image,
                     image_pull_policy=policy or default_pull_policy(image),
                     command=command, args=args, env=env,
                     working_dir=working_dir, ports=ports,
                     volume_mounts=mounts,
                     liveness_probe=probes.get("livenessProbe"),
                     readiness_probe=probes.get("readinessProbe"),
                     startup_probe=probes.get("startupProbe"),
                     lifecycle=lifecycle, resources=resources,
                     security_context=security, restart_policy=restart,
                     env_from=env_from)


def _check_container_restart_policy(obj: dict, path: tuple, check: _Checker,
                                    init: bool) -> str | None:
    """Container restartPolicy: "Always" on an init container, else none."""
    value = check.get(obj, "restartPolicy", path, str)
    if value is None:
        return None
    where = path + ("restartPolicy",)
    if not init:
        check.error(where, "may be set only on init containers, where "
                    "restartPolicy: Always makes a sidecar; the pod's "
                    "spec.restartPolicy applies to its containers")
        return None
    if value != "Always":
        message = (f'unsupported value "{value}": an init container takes '
                   'only "Always" (a sidecar); leave it out for an init '
                   "container that runs to completion")
        if value.lower() == "always":
            message += '; values are case-sensitive: did you mean "Always"?'
        check.error(where, message)
        return None
    return value


def _check_env(obj: dict, path: tuple, check: _Checker) -> list[EnvVar]:
    """Container env: [{name, value | valueFrom}] (configrefs.py checks valueFrom)."""
    env: list[EnvVar] = []
    first_line: dict[str, int | None] = {}
    for i, item in enumerate(check.get(obj, "env", path, list) or []):
        where = path + ("env", i)
        if not isinstance(item, dict):
            check.error(where, f"expected an env entry (a map with name and "
                        f"value), got {_describe(item)}")
            continue
        suggested = check.fields(item, where, "env", warn=False)
        name = check.require(item, "name", where, str, suggested)
        value = check.get(item, "value", where, str)
        if name is not None and not ENV_VAR_NAME.fullmatch(name):
            check.error(where + ("name",), f'invalid environment variable '
                        f'name "{name}": must start with a letter, "_", "-" '
                        'or "." and hold only letters, digits, "_", "-", "."')
        value_from = None
        if item.get("valueFrom") is not None:
            if value:
                check.error(where + ("valueFrom",),
                            'may not be set together with a non-empty "value"')
            value_from = configrefs.check_value_from(item, where, check, obj)
            if value_from is None:
                continue
        if name is None:
            continue
        if name in first_line:
            check.warn(where + ("name",), f'environment variable "{name}" is '
                       f"set twice (first at line {first_line[name]}); the "
                       "last value wins")
        first_line[name] = check.line(where + ("name",))
        env.append(EnvVar(name, value or "", value_from))
    return env


def _check_ports(obj: dict, path: tuple, check: _Checker) -> list[Port]:
    """Container ports: each one alone, then names unique in the container."""
    ports: list[Port] = []
    first_line: dict[str, int | None] = {}
    for i, item in enumerate(check.get(obj, "ports", path, list) or []):
        where = path + ("ports", i)
        if not isinstance(item, dict):
            check.error(where, f"expected a port (a map with containerPort), "
                        f"got {_describe(item)}")
            continue
        port = _check_port(item, where, check)
        if port is None:
            continue
        if port.name is not None:
            if port.name in first_line:
                check.error(where + ("name",), f'duplicate port name '
                            f'"{port.name}" in this container (first at line '
                            f"{first_line[port.name]})")
            first_line.setdefault(port.name, check.line(where + ("name",)))
        ports.append(port)
    return ports


def _check_port(obj: dict, path: tuple, check: _Checker) -> Port | None:
    """ContainerPort; None if it has errors."""
    before = len(check.errors)
    suggested = check.fields(obj, path, "port")
    number = check.integer(obj, "containerPort", path, 1, 65535)
    if obj.get("containerPort") is None and "containerPort" not in suggested:
        check.error(path + ("containerPort",), "required field is missing")
    protocol = check.enum(obj, "protocol", path, PROTOCOLS) or "TCP"
    name = check.get(obj, "name", path, str)
    if name is not None:
        for message in _iana_svc_name_problems(name):
            check.error(path + ("name",), f'invalid port name "{name}": '
                        f"{message}")
    # hostPort 0 is what Kubernetes itself writes for "no host port".
    host_port = check.integer(obj, "hostPort", path, 0, 65535) or None
    host_ip = check.get(obj, "hostIP", path, str)
    if host_ip is not None:
        import ipaddress
        try:
            ipaddress.ip_address(host_ip)
        except ValueError:
            check.error(path + ("hostIP",),
                        f'"{host_ip}" is not an IP address')
        if host_port is None:
            check.warn(path + ("hostIP",), "has no effect without hostPort")
    if len(check.errors) > before:
        return None
    return Port(container_port=number, protocol=protocol, name=name,
                host_port=host_port, host_ip=host_ip)


def _check_pod_ports(containers: list[tuple[tuple, Container]],
                     check: _Checker) -> None:
    """Ports across the pod: one network namespace, one port space.

    Every container of a pod has the same IP, so two of them cannot both
    listen on 8080/TCP. Kubernetes only warns about such duplicates; minipod
    refuses them before anything starts (the clash would otherwise show up
    later as a failed bind). Host ports clash the same way, on the host.
    """
    owner: dict[tuple[int, str], tuple[str, int | None]] = {}
    host_owner: dict[tuple, int | None] = {}
    for where, container in containers:
        for i, port in enumerate(container.ports):
            at = where + ("ports", i, "containerPort")
            key = (port.container_port, port.protocol)
            label = f"{port.container_port}/{port.protocol}"
            if key in owner and owner[key][0] != container.name:
                other, line = owner[key]
                check.error(at, f'containerPort {label} is also declared by '
                            f'container "{other}" (line {line}): the '
                            "containers of a pod share one network namespace "
                            "(same IP, same port space), so only one of them "
                            "can listen on it")
            elif key in owner:
                check.warn(at, f"containerPort {label} is declared twice in "
                           f"this container (first at line {owner[key][1]})")
            else:
                owner[key] = (container.name, check.line(at))
            if port.host_port is not None:
                hkey = (port.host_port, port.protocol, port.host_ip or "")
                hat = where + ("ports", i, "hostPort")
                if hkey in host_owner:
                    check.error(hat, f"hostPort {port.host_port}/"
                                f"{port.protocol} is already used in this pod "
                                f"(line {host_owner[hkey]})")
                else:
                    host_owner[hkey] = check.line(hat)


# ---------------------------------------------------------------------------
# Volumes and volume mounts.

def _check_volumes(spec: dict, check: _Checker) -> tuple[list[Volume],
                                                         list[str]]:
    """spec.volumes: the valid volumes, and every name declared.

    A volume with an error still declares its name, so that its mounts are
    not reported a second time as naming no volume.
    """
    volumes: list[Volume] = []
    names: list[str] = []
    first: dict[str, tuple] = {}
    containers = [c.get("name") for key in ("containers", "initContainers")
                  for c in (spec.get(key) if isinstance(spec.get(key), list) else [])
                  if isinstance(c, dict)]
    for i, item in enumerate(check.get(spec, "volumes", ("spec",), list)
                             or []):
        where = ("spec", "volumes", i)
        if not isinstance(item, dict):
            check.error(where, "expected a volume (a map with a name and a "
                        f"source such as emptyDir), got {_describe(item)}")
            continue
        volume = _check_volume(item, where, check, containers)
        name = item.get("name")
        if isinstance(name, str):
            if name in first:
                check.error(where + ("name",), f'duplicate volume name '
                            f'"{name}" (first at {check.where(first[name])})')
            else:
                first[name] = where + ("name",)
                names.append(name)
        if volume is not None:
            volumes.append(volume)
    return volumes, names


def _check_volume(obj: dict, path: tuple, check: _Checker,
                  containers: list | None = None) -> Volume | None:
    """Volume: a name and exactly one source: emptyDir, hostPath, or one
    of configrefs.VOLUME_SOURCES."""
    before = len(check.errors)
    suggested = check.fields(obj, path, "volume", warn=False)
    name = check.require(obj, "name", path, str, suggested)
    if name is not None:
        _check_name(name, path + ("name",), DNS1123_LABEL, 63,
                    "a lowercase RFC 1123 label", "'-'", check)
    sources = [key for key in obj if key in NOT_IMPLEMENTED["volume"]
               or key in ("emptyDir", "hostPath") + configrefs.VOLUME_SOURCES]
    for key in sources:
        if key in NOT_IMPLEMENTED["volume"]:
            check.error(path + (key,), f'volume source "{key}" is not '
                        "supported by minipod yet (the pod could not work "
                        "without it); minipod has emptyDir, hostPath, configMap, "
                        "secret, downwardAPI and projected")
    for key in sources[1:]:
        check.error(path + (key,), f'a volume has exactly one source, and '
                    f'"{sources[0]}" ({check.where(path + (sources[0],))}) '
                    "is set too; declare another volume for this one")
    # A volume without a source is an emptyDir (SetDefaults_Volume).
    kind = sources[0] if sources else "emptyDir"
    volume = Volume(name=name, kind=kind)
    if kind == "emptyDir":
        _check_empty_dir(obj, path, check, volume)
    elif kind == "hostPath":
        _check_host_path(obj, path, check, volume)
    elif kind in configrefs.VOLUME_SOURCES:
        volume.source = configrefs.check_volume_source(obj, kind, path, check,
                                                       containers or [])
    return volume if len(check.errors) == before else None


def _check_empty_dir(obj: dict, path: tuple, check: _Checker,
                     volume: Volume) -> None:
    """emptyDir: medium "" (the node's disk) or "Memory" (tmpfs), sizeLimit."""
    where = path + ("emptyDir",)
    source = check.get(obj, "emptyDir", path, dict) or {}
    check.fields(source, where, "emptyDir")
    medium = check.get(source, "medium", where, str) or ""
    if medium.startswith("HugePages"):
        check.error(where + ("medium",), f'medium "{medium}" is not '
                    'supported by minipod yet; use "" (disk) or "Memory"')
    elif medium not in EMPTY_DIR_MEDIA:
        # Stricter than the API server: the kubelet fails such a pod at
        # mount time.
        message = (f'unsupported value "{medium}": must be "" (the node\'s '
                   'disk) or "Memory" (tmpfs, counted as the pod\'s memory)')
        if medium.lower() == "memory":
            message += '; values are case-sensitive: did you mean "Memory"?'
        check.error(where + ("medium",), message)
    volume.medium = medium
    size = _check_quantity(source, "sizeLimit", where, check)
    if size:
        # Whole bytes, rounded up. A zero sizeLimit is no limit, as in the
        # kubelet (and tmpfs size=0 means "unlimited" to the kernel too).
        volume.size_limit = math.ceil(size)


def _check_host_path(obj: dict, path: tuple, check: _Checker,
                     volume: Volume) -> None:
    """hostPath: an absolute path on the host, and its expected type."""
    where = path + ("hostPath",)
    source = check.get(obj, "hostPath", path, dict)
    if source is None:
        if obj.get("hostPath") is None:
            check.error(where, "needs a path, e.g. hostPath: {path: "
                        "/srv/data}")
        return
    suggested = check.fields(source, where, "hostPath")
    host_path = check.require(source, "path", where, str, suggested)
    if host_path is not None:
        # Absolute: stricter than the API server (which only refuses
        # ".."); a relative host path would depend on the agent's cwd.
        _check_path(host_path, where + ("path",), check, absolute=True)
    volume.path = host_path
    volume.host_path_type = check.enum(source, "type", where,
                                       HOST_PATH_TYPES) or ""


def _check_path(value: str, path: tuple, check: _Checker,
                absolute: bool) -> bool:
    """An absolute (mountPath, hostPath) or relative (subPath) path.

    No ".." element either way: validatePathNoBacksteps and
    validateLocalDescendingPath. False if reported.
    """
    if absolute and not value.startswith("/"):
        check.error(path, f'must be an absolute path, got "{value}"')
        return False
    if not absolute and value.startswith("/"):
        check.error(path, f'must be a path relative to the volume, got '
                    f'"{value}"')
        return False
    if ".." in value.split("/"):
        check.error(path, f'must not contain "..", got "{value}"')
        return False
    return True


def _check_volume_mounts(obj: dict, path: tuple, check: _Checker,
                         volume_names: list[str]) -> list[VolumeMount]:
    """Container volumeMounts: declared volumes, unique mount paths."""
    mounts: list[VolumeMount] = []
    first: dict[str, tuple] = {}
    for i, item in enumerate(check.get(obj, "volumeMounts", path, list)
                             or []):
        where = path + ("volumeMounts", i)
        if not isinstance(item, dict):
            check.error(where, "expected a volume mount (a map with name and "
                        f"mountPath), got {_describe(item)}")
            continue
        suggested = check.fields(item, where, "volumeMount")
        name = check.require(item, "name", where, str, suggested)
        mount_path = check.require(item, "mountPath", where, str, suggested)
        read_only = check.get(item, "readOnly", where, bool)
        sub_path = check.get(item, "subPath", where, str) or None
        if name is not None and name not in volume_names:
            check.error(where + ("name",), _no_volume(name, volume_names))
        if mount_path is not None and _check_path(
                mount_path, where + ("mountPath",), check, absolute=True):
            # "/data" and "/data/" are one mount point (the API server
            # compares the strings as written).
            key = posixpath.normpath(mount_path)
            if key in first:
                check.error(where + ("mountPath",), f'duplicate mountPath '
                            f'"{mount_path}" in this container (first at '
                            f"{check.where(first[key])})")
            else:
                first[key] = where + ("mountPath",)
        if sub_path is not None:
            _check_path(sub_path, where + ("subPath",), check, absolute=False)
        mounts.append(VolumeMount(name=name, mount_path=mount_path,
                                  read_only=bool(read_only),
                                  sub_path=sub_path))
    return mounts


def _no_volume(name: str, declared: list[str]) -> str:
    """The message for a volume mount whose volume is not declared."""
    if not declared:
        return (f'no volume named "{name}": spec.volumes declares none; '
                f'add one, e.g. "volumes: [{{name: {name}, emptyDir: {{}}}}]"')
    listed = ", ".join(f'"{n}"' for n in declared)
    message = f'no volume named "{name}" in spec.volumes (it has {listed})'
    guess = _suggest(name, declared)
    return message + (f'; did you mean "{guess}"?' if guess else "")


# ---------------------------------------------------------------------------
# Probes and lifecycle hooks.

def _named_ports(obj: dict, ports: list[Port]) -> dict[str, int | None]:
    """The container's port names -> numbers, to resolve "port: http".

    A name whose port has an error maps to None: already reported, and
    not to be reported again as unknown.
    """
    named: dict[str, int | None] = {}
    items = obj.get("ports")
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            named.setdefault(item["name"], None)
    for port in ports:
        if port.name is not None and named.get(port.name) is None:
            named[port.name] = port.container_port
    return named


def _check_probe(container: dict, key: str, path: tuple, check: _Checker,
                 named: dict[str, int | None], grace: int) -> Probe | None:
    """livenessProbe, readinessProbe or startupProbe (validateProbe)."""
    obj = check.get(container, key, path, dict)
    if obj is None:
        return None
    where = path + (key,)
    before = len(check.errors)
    suggested = check.fields(obj, where, "probe")
    handler = _check_handler(obj, where, check, "probe", suggested, named,
                             grace)
    timing = {}
    for name, default in PROBE_DEFAULTS.items():
        value = check.integer(obj, name, where, 0, INT32_MAX)
        if value == 0 and default:
            check.warn(where + (name,), f"0 means the default, {default} "
                       "(Kubernetes' minimum is 1)")
        timing[name] = value or default
    kind = key.removesuffix("Probe")
    if timing["successThreshold"] != 1 and key != "readinessProbe":
        check.error(where + ("successThreshold",), f"must be 1 for a {kind} "
                    f"probe, got {timing['successThreshold']}: one success "
                    "is enough to pass it")
    probe_grace = check.integer(obj, "terminationGracePeriodSeconds", where,
                                1, INT64_MAX)
    if key == "readinessProbe" and probe_grace is not None:
        check.error(where + ("terminationGracePeriodSeconds",),
                    "must not be set for a readiness probe: failing it never "
                    "stops the container")
    if handler is None or len(check.errors) > before:
        return None
    return Probe(handler=handler,
                 initial_delay_seconds=timing["initialDelaySeconds"],
                 period_seconds=timing["periodSeconds"],
                 timeout_seconds=timing["timeoutSeconds"],
                 success_threshold=timing["successThreshold"],
                 failure_threshold=timing["failureThreshold"],
                 termination_grace_period_seconds=probe_grace)


def _check_lifecycle(container: dict, path: tuple, check: _Checker,
                     named: dict[str, int | None], grace: int) -> Lifecycle:
    """lifecycle.postStart and lifecycle.preStop (validateLifecycle)."""
    obj = check.get(container, "lifecycle", path, dict)
    if obj is None:
        return Lifecycle()
    where = path + ("lifecycle",)
    check.fields(obj, where, "lifecycle")
    hooks = {}
    for key in ("postStart", "preStop"):
        hook = check.get(obj, key, where, dict)
        if hook is not None:
            suggested = check.fields(hook, where + (key,), "handler")
            hooks[key] = _check_handler(hook, where + (key,), check,
                                        "handler", suggested, named, grace)
    return Lifecycle(post_start=hooks.get("postStart"),
                     pre_stop=hooks.get("preStop"))


def _check_handler(obj: dict, path: tuple, check: _Checker, level: str,
                   suggested: set[str], named: dict[str, int | None],
                   grace: int) -> Handler | None:
    """The one action of a probe (level "probe") or a hook ("handler").

    None if it has errors, or for a gRPC probe, which minipod ignores.
    """
    before = len(check.errors)
    what = "a probe" if level == "probe" else "a lifecycle hook"
    present = [key for key in ACTIONS[level] if obj.get(key) is not None]
    if not present:
        # Not when an unknown field was taken for a misspelt action, or
        # was told to move under one ("command" -> "exec:"): one mistake,
        # one message.
        misplaced = any(key in SUPPORTED[action] for key in obj
                        for action in ACTIONS[level])
        if not suggested & set(ACTIONS[level]) and not misplaced:
            usable = [f'"{a}"' for a in ACTIONS[level]
                      if a != "grpc" and (a, level) != ("tcpSocket",
                                                         "handler")]
            check.error(path, f"{what} needs one action: "
                        + ", ".join(usable[:-1]) + " or " + usable[-1])
        return None
    kind = present[0]
    for extra in present[1:]:
        check.error(path + (extra,), f'may not be set together with "{kind}" '
                    f"({check.where(path + (kind,))}): {what} runs exactly "
                    "one action")
    where = path + (kind,)
    action = check.get(obj, kind, path, dict)
    if action is None:
        return None
    action_suggested = check.fields(action, where, kind)
    handler = Handler(kind=kind)
    if kind == "exec":
        handler.command = check.strings(action, "command", where)
        if handler.command == [] or (action.get("command") is None
                                     and "command" not in action_suggested):
            check.error(where + ("command",), "needs the command to run, "
                        'e.g. command: ["cat", "/tmp/healthy"]')
    elif kind == "sleep":
        seconds = check.get(action, "seconds", where, int)
        if action.get("seconds") is None and "seconds" not in \
                action_suggested:
            check.error(where + ("seconds",), "required field is missing")
        elif seconds is not None and not 0 <= seconds <= grace:
            check.error(where + ("seconds",), f"must be between 0 and the "
                        f"pod's terminationGracePeriodSeconds ({grace}), got "
                        f"{seconds}")
        handler.seconds = seconds
    else:                               # httpGet, tcpSocket, grpc
        handler.port = _check_port_ref(action, where, check, named,
                                       action_suggested, kind != "grpc")
        handler.host = check.get(action, "host", where, str) or None
    if kind == "httpGet":
        # An empty path is "/" (SetDefaults_HTTPGetAction).
        handler.path = check.get(action, "path", where, str) or "/"
        handler.scheme = check.enum(action, "scheme", where,
                                    HTTP_SCHEMES) or "HTTP"
        handler.headers = _check_http_headers(action, where, check)
    if kind == "tcpSocket" and level == "handler":
        # Stricter than the API server, which keeps accepting it for old
        # manifests: the kubelet never runs it, and the hook fails.
        check.error(path + (kind,), "a lifecycle hook cannot be a "
                    'tcpSocket (the kubelet never runs it); use "exec", '
                    '"httpGet" or "sleep"')
    if kind == "grpc":
        check.get(action, "service", where, str)
        if len(check.errors) == before:
            check.warn(where, "gRPC probes are not implemented by minipod "
                       "yet; this probe is ignored")
        return None
    return handler if len(check.errors) == before else None


def _check_port_ref(action: dict, path: tuple, check: _Checker,
                    named: dict[str, int | None], suggested: set[str],
                    names_allowed: bool) -> int | None:
    """The port of an httpGet, tcpSocket or grpc action, as a number.

    A number 1..65535, or (not for grpc) the name of one of the
    container's ports. That the name is declared is stricter than the API
    server: the kubelet would fail every probe.
    """
    value = action.get("port")
    where = path + ("port",)
    if value is None:
        if "port" not in suggested:
            check.error(where, "required field is missing")
        return None
    if _is(value, int):
        if 1 <= value <= 65535:
            return value
        check.error(where, f"must be between 1 and 65535, got {value}")
        return None
    if not isinstance(value, str) or not names_allowed:
        what = "a port number or name" if names_allowed else "an integer"
        check.error(where, f"expected {what}, got {_describe(value)}")
        return None
    problems = _iana_svc_name_problems(value)
    if problems:
        hint = "; write the number without quotes" if value.isdigit() else ""
        check.error(where, f'invalid port name "{value}": '
                    + "; ".join(problems) + hint)
        return None
    if value in named:
        return named[value]             # None if that port has an error
    if named:
        listed = ", ".join(f'"{n}"' for n in named)
        message = (f'no port named "{value}" in this container (its named '
                   f"ports: {listed})")
        guess = _suggest(value, named)
        if guess:
            message += f'; did you mean "{guess}"?'
    else:
        message = (f'no port named "{value}" in this container: name one of '
                   f"its ports (ports: [{{containerPort: 8080, name: "
                   f"{value}}}]) or use the number")
    check.error(where, message)
    return None


def _check_http_headers(action: dict, path: tuple,
                        check: _Checker) -> list[tuple[str, str]]:
    """httpGet.httpHeaders: [{name, value}], names as HTTP allows them."""
    headers = []
    for i, item in enumerate(check.get(action, "httpHeaders", path, list)
                             or []):
        where = path + ("httpHeaders", i)
        if not isinstance(item, dict):
            check.error(where, "expected an HTTP header (a map with name and "
                        f"value), got {_describe(item)}")
            continue
        suggested = check.fields(item, where, "httpHeader")
        name = check.require(item, "name", where, str, suggested)
        value = check.get(item, "value", where, str) or ""
        if name is not None and not HTTP_HEADER_NAME.fullmatch(name):
            check.error(where + ("name",), f'invalid HTTP header name '
                        f'"{name}": use only letters, digits and "-"')
        elif name is not None:
            headers.append((name, value))
    return headers


# ---------------------------------------------------------------------------
# Resources: requests and limits of cpu and memory.

def _check_resources(container: dict, path: tuple,
                     check: _Checker) -> Resources:
    """resources.requests and .limits (ValidateContainerResourceRequirements).

    cpu becomes millicores and memory bytes, both rounded up; a request
    left out equals its limit (SetDefaults_Pod), and a request above its
    limit is an error.
    """
    obj = check.get(container, "resources", path, dict)
    if obj is None:
        return Resources()
    where = path + ("resources",)
    check.fields(obj, where, "resources")
    found: dict[tuple[str, str], object] = {}    # (kind, name) -> Fraction
    for kind in ("limits", "requests"):
        amounts = check.get(obj, kind, where, dict) or {}
        for name in amounts:
            at = where + (kind, name)
            if not isinstance(name, str):       # only from load_object
                check.error(where + (kind,), f"resource names must be "
                            f"strings, got {name!r}")
                continue
            if name not in RESOURCES and not _known_resource(name):
                message = (f'unknown resource "{name}": a container has cpu, '
                           "memory, ephemeral-storage, hugepages-<size> or "
                           "an extended resource such as nvidia.com/gpu")
                guess = _suggest(name, RESOURCES + OTHER_RESOURCES)
                if guess:
                    message += f'; did you mean "{guess}"?'
                check.error(at, message)
                continue
            value = _check_quantity(amounts, name, where + (kind,), check)
            if name not in RESOURCES:
                check.warn(at, f'resource "{name}" is valid Kubernetes but '
                           "not implemented by minipod yet; ignored")
            elif value is not None:
                found[kind, name] = value
                if name == "memory" and value.denominator != 1:
                    check.warn(at, _fractional_bytes(amounts[name]))
    for name in RESOURCES:
        request = found.get(("requests", name))
        limit = found.get(("limits", name))
        if request is not None and limit is not None and request > limit:
            at = where + ("requests", name)
            check.error(at, f"request {_show(obj['requests'][name])} is more "
                        f"than the {name} limit "
                        f"{_show(obj['limits'][name])} "
                        f"({check.where(where + ('limits', name))}); a "
                        "container may not request more than its limit")
    def rounded(kind: str, name: str, unit: int) -> int | None:
        value = found.get((kind, name))
        return None if value is None else math.ceil(value * unit)

    cpu_limit = rounded("limits", "cpu", 1000)
    cpu_request = rounded("requests", "cpu", 1000)
    memory_limit = rounded("limits", "memory", 1)
    memory_request = rounded("requests", "memory", 1)
    return Resources(
        cpu_request_milli=cpu_limit if cpu_request is None else cpu_request,
        cpu_limit_milli=cpu_limit,
        memory_request=memory_limit if memory_request is None
        else memory_request,
        memory_limit=memory_limit,
        ephemeral_storage_limit=rounded("limits", "ephemeral-storage", 1))


def _known_resource(name: str) -> bool:
    """Resource names Kubernetes knows beyond cpu and memory."""
    return (name in OTHER_RESOURCES or name.startswith("hugepages-")
            or "/" in name)             # extended: "example.com/foo"


def _check_quantity(obj: dict, key: str, path: tuple, check: _Checker):
    """``obj[key]`` as an exact non-negative Fraction, or None."""
    value = obj.get(key)
    if value is None:
        return None
    try:
        quantity = parse_quantity(value)
    except ValueError as e:
        check.error(path + (key,), str(e))
        return None
    if quantity < 0:
        check.error(path + (key,), f"must not be negative, got "
                    f"{_show(value)}")
        return None
    return quantity


def _show(value) -> str:
    """A quantity as the user wrote it."""
    return value if isinstance(value, str) else repr(value)


def _fractional_bytes(value) -> str:
    """The warning for a memory quantity that is not whole bytes."""
    text = _show(value)
    message = (f'fractional byte value "{text}" is rounded up to whole '
               "bytes")
    if text.endswith("m"):
        message += (f'; "m" means milli (1/1000): did you mean '
                    f'"{text[:-1]}Mi" or "{text[:-1]}M"?')
    return message


# ---------------------------------------------------------------------------
# Security contexts: the pod's, and each container's on top of it.

def _check_pod_security(spec: dict, check: _Checker) -> dict:
    """spec.securityContext: the fields that containers inherit, by name."""
    obj = check.get(spec, "securityContext", ("spec",), dict)
    if obj is None:
        return {}
    where = ("spec", "securityContext")
    check.fields(obj, where, "podSecurityContext")
    groups = []
    for i, gid in enumerate(check.get(obj, "supplementalGroups", where, list)
                            or []):
        at = where + ("supplementalGroups", i)
        if not _is(gid, int):
            check.error(at, f"expected an integer, got {_describe(gid)}")
        elif not 0 <= gid <= MAX_ID:
            check.error(at, f"must be between 0 and {MAX_ID}, got {gid}")
        else:
            groups.append(gid)
    return {"runAsUser": check.integer(obj, "runAsUser", where, 0, MAX_ID),
            "runAsGroup": check.integer(obj, "runAsGroup", where, 0, MAX_ID),
            "runAsNonRoot": check.get(obj, "runAsNonRoot", where, bool),
            "fsGroup": check.integer(obj, "fsGroup", where, 0, MAX_ID),
            "supplementalGroups": groups,
            "seccompProfile": _check_seccomp(obj, where, check)}


def _check_security_context(container: dict, path: tuple, check: _Checker,
                            pod: dict) -> SecurityContext:
    """A container's securityContext, merged over the pod's.

    Follows ValidateSecurityContext; the container's fields win over the
    pod's (the kubelet's DetermineEffectiveSecurityContext).
    """
    obj = check.get(container, "securityContext", path, dict) or {}
    if not obj and not pod:
        return SecurityContext()        # the common case, made quick
    where = path + ("securityContext",)
    check.fields(obj, where, "securityContext")
    own = {"runAsUser": check.integer(obj, "runAsUser", where, 0, MAX_ID),
           "runAsGroup": check.integer(obj, "runAsGroup", where, 0, MAX_ID),
           "runAsNonRoot": check.get(obj, "runAsNonRoot", where, bool),
           "seccompProfile": _check_seccomp(obj, where, check)}
    privileged = check.get(obj, "privileged", where, bool)
    escalation = check.get(obj, "allowPrivilegeEscalation", where, bool)
    read_only = check.get(obj, "readOnlyRootFilesystem", where, bool)
    add, drop = [], []
    caps = check.get(obj, "capabilities", where, dict)
    if caps is not None:
        check.fields(caps, where + ("capabilities",), "capabilities")
        add = _check_capabilities(caps, "add", where, check)
        drop = _check_capabilities(caps, "drop", where, check)
    if escalation is False:
        # no_new_privs cannot hold for a process that may do anything.
        at = where + ("allowPrivilegeEscalation",)
        if privileged:
            check.error(at, "may not be false when privileged is true: a "
                        "privileged container can always gain privileges")
        for name in add:
            if name in ("SYS_ADMIN", "ALL"):
                # The API server checks the literal "CAP_SYS_ADMIN" only.
                check.error(at, f'may not be false when capabilities.add '
                            f'has "{name}", which holds CAP_SYS_ADMIN')
    # Each field: the container's own if set, else the pod's.
    value, owner = {}, {}
    for key in own:
        inherited = own[key] is None
        value[key] = pod.get(key) if inherited else own[key]
        owner[key] = (("spec", "securityContext") if inherited
                      else where) + (key,)
    if value["runAsNonRoot"] and value["runAsUser"] == 0:
        # The kubelet refuses to start it; say so before anything starts.
        # Said once, at the runAsUser in force, for all containers.
        check.error_once(owner["runAsUser"], "runAsUser 0 (root) contradicts "
                         "runAsNonRoot: true "
                         f"({check.where(owner['runAsNonRoot'])}): the "
                         "container could never start")
    return SecurityContext(
        run_as_user=value["runAsUser"], run_as_group=value["runAsGroup"],
        run_as_non_root=value["runAsNonRoot"], fs_group=pod.get("fsGroup"),
        supplemental_groups=list(pod.get("supplementalGroups", [])),
        privileged=bool(privileged), allow_privilege_escalation=escalation,
        read_only_root_filesystem=bool(read_only),
        capabilities_add=add, capabilities_drop=drop,
        seccomp_profile=value["seccompProfile"] or "RuntimeDefault")


def _check_capabilities(caps: dict, key: str, path: tuple,
                        check: _Checker) -> list[str]:
    """capabilities.add or .drop: names such as "NET_ADMIN", or "ALL".

    Stricter than the API server, which takes any string: containerd
    prefixes CAP_ itself (so "CAP_NET_ADMIN" fails there) and only some
    runtimes upper-case the name.
    """
    names = []
    for i, name in enumerate(check.strings(caps, key,
                                           path + ("capabilities",)) or []):
        if name in CAPABILITIES:
            names.append(name)
            continue
        bare = name.upper().removeprefix("CAP_")
        message = f'unknown capability "{name}"'
        if bare in CAPABILITIES:
            message += ('; Kubernetes writes capabilities in upper case '
                        f'without "CAP_": did you mean "{bare}"?')
        else:
            guess = _suggest(bare, CAPABILITIES)
            message += (f'; did you mean "{guess}"?' if guess else
                        "; see capabilities(7), without the CAP_ prefix")
        check.error(path + ("capabilities", key, i), message)
    return names


def _check_seccomp(obj: dict, path: tuple, check: _Checker) -> str | None:
    """securityContext.seccompProfile: its type, or None if not set."""
    profile = check.get(obj, "seccompProfile", path, dict)
    if profile is None:
        return None
    where = path + ("seccompProfile",)
    suggested = check.fields(profile, where, "seccompProfile")
    kind = check.enum(profile, "type", where, SECCOMP_TYPES)
    if profile.get("type") is None and "type" not in suggested:
        check.error(where + ("type",), 'required field is missing; e.g. '
                    '"type: RuntimeDefault"')
    local = check.get(profile, "localhostProfile", where, str)
    if kind == "Localhost":
        if not local:
            check.error(where + ("localhostProfile",), "required when type "
                        "is Localhost")
        else:
            check.warn(where + ("type",), "Localhost seccomp profiles are "
                       "not implemented by minipod yet; RuntimeDefault is "
                       "used instead")
        return "RuntimeDefault"
    if local is not None:
        check.error(where + ("localhostProfile",), 'may be set only when '
                    'type is "Localhost"')
    return kind


# ---------------------------------------------------------------------------
# Name rules and small helpers.

def _check_name(value: str, path: tuple, pattern: re.Pattern, limit: int,
                what: str, extra: str, check: _Checker) -> None:
    """Report ``value`` unless it is a DNS-1123 label/subdomain."""
    if len(value) <= limit and pattern.fullmatch(value):
        return
    shown = value if len(value) <= 80 else f"{value[:60]}…\" ({len(value)} characters)"
    message = (f'invalid name "{shown}": must be {what}: at most {limit} '
               f"characters, lowercase letters, digits and {extra}, starting "
               "and ending with a letter or digit")
    guess = _dns_guess(value, pattern, limit) if len(value) <= 2 * limit else None
    if guess:
        message += f'; did you mean "{guess}"?'
    check.error(path, message)


def _dns_guess(value: str, pattern: re.Pattern, limit: int) -> str | None:
    """A valid name close to ``value`` ("Kubia_Manual" -> "kubia-manual")."""
    allowed = "." if pattern is DNS1123_SUBDOMAIN else ""
    guess = re.sub(rf"[^a-z0-9{allowed}-]+", "-", value.lower())
    guess = guess[:limit].strip("-.")
    return guess if guess and pattern.fullmatch(guess) else None


def _qualified_name_problems(key: str) -> list[str]:
    """Label and annotation keys: an optional DNS prefix, '/', a name."""
    prefix, slash, name = key.rpartition("/")
    problems = []
    if slash and (not prefix or len(prefix) > 253
                  or not DNS1123_SUBDOMAIN.fullmatch(prefix)):
        problems.append("the prefix before '/' must be a lowercase DNS "
                        "subdomain (e.g. example.com) of at most 253 "
                        "characters")
    if not name or len(name) > 63 or not QUALIFIED_NAME.fullmatch(name):
        problems.append("the name must be at most 63 characters: letters, "
                        "digits, '-', '_' or '.', starting and ending with a "
                        "letter or digit")
    return problems


def _label_value_problems(value: str) -> list[str]:
    """Label values: empty, or like the name part of a key."""
    if value == "" or (len(value) <= 63 and QUALIFIED_NAME.fullmatch(value)):
        return []
    return ["must be empty or at most 63 characters: letters, digits, '-', "
            "'_' or '.', starting and ending with a letter or digit"]


def _iana_svc_name_problems(name: str) -> list[str]:
    """Port names (IANA service names, RFC 6335), as Kubernetes checks them."""
    problems = []
    if len(name) > 15:
        problems.append("must be no more than 15 characters")
    if not IANA_SVC_NAME.fullmatch(name):
        problems.append("must contain only lowercase letters, digits and '-'")
    if "--" in name:
        problems.append("must not contain consecutive hyphens")
    if not re.search("[a-z]", name):
        problems.append("must contain at least one letter")
    if name.startswith("-") or name.endswith("-"):
        problems.append("must not begin or end with a hyphen")
    return problems


def _suggest(word: str, choices) -> str | None:
    """The closest valid name to ``word``, or None."""
    import difflib
    for choice in sorted(choices):     # a case slip first: "pod" -> "Pod"
        if choice.lower() == word.lower():
            return choice
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def _elsewhere(key: str, level: str) -> str:
    """A hint when ``key`` is a field of another level (wrong indentation)."""
    parents = [name for name, child in CHILDREN.get(level, {}).items()
               if key in SUPPORTED[child] | NOT_IMPLEMENTED[child]]
    if parents:
        names = [f'"{name}:"' for name in parents]
        listed = names[0] if len(names) == 1 else \
            ", ".join(names[:-1]) + " or " + names[-1]
        return f'; "{key}" belongs under {listed}: check the indentation'
    for other, where in WHERE.items():
        if other != level and key in SUPPORTED[other] | NOT_IMPLEMENTED[other]:
            return f'; "{key}" is a field of {where}: check the indentation'
    return ""


_TYPE_NAMES = {str: "a string", int: "an integer", list: "a list",
               dict: "a map", bool: "a boolean (true or false)"}


def _is(value, want: type) -> bool:
    # bool is a subclass of int in Python; in a manifest it is not a number.
    if want is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, want)


def _describe(value) -> str:
    """How a value reads in a message: 'string "80"', 'boolean true'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f'string "{text}"'
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a map"
    return type(value).__name__


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _field_name(path: tuple) -> str:
    """("spec", "containers", 0, "image") -> "spec.containers[0].image"."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(str(part)):
            out += f".{part}" if out else part
        else:                           # a label key such as "app.k8s.io/x"
            out += f'["{part}"]'
    return out


def _by_line(problems: list[Problem]) -> list[Problem]:
    """Problems in file order; a stable sort keeps same-line ones in order."""
    return sorted(problems, key=lambda p: p.line or 0)


# The checks of what pods take from ConfigMaps, Secrets and the downward API
# live in their own module; their field tables join the ones above.
from minipod.runtime.api import configrefs  # noqa: E402  (it imports this module)

for _table, _more in ((SUPPORTED, configrefs.SUPPORTED),
                      (NOT_IMPLEMENTED, configrefs.NOT_IMPLEMENTED), (WHERE, configrefs.WHERE)):
    _table.update(_more)
