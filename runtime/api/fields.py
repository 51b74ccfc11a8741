"""The Kubernetes v1 Pod schema as minipod reads it: field tables and limits.

Every level of a Pod (the object, metadata, spec, a container, a port, a
probe ...) has a name ("container", "probe") and two sets of field names:

    SUPPORTED[level]         what minipod implements
    NOT_IMPLEMENTED[level]   valid Kubernetes that minipod ignores, with a warning

A field in neither set is an unknown field: an error, with a guess at what
was meant (checker.Checker.fields). WHERE says where each level lives,
CHILDREN which maps nest in it and TWINS which levels look alike, so that a
field at the wrong indentation gets told where it belongs. The allowed
values of the enum fields, the defaults and the numeric limits follow.

Pure data: the checks that read these tables are pod.py, containers.py,
volumes.py, probes.py, resources.py, security.py and configrefs.py.
"""

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

MAX_ANNOTATIONS_BYTES = 256 * 1024


# The levels of what a pod takes from ConfigMaps, Secrets and the downward
# API, checked in configrefs.py; same tables, same rules.
REF_SUPPORTED = {
    "envVarSource": {"configMapKeyRef", "secretKeyRef", "fieldRef", "resourceFieldRef"},
    "keySelector": {"name", "key", "optional"},
    "fieldRef": {"apiVersion", "fieldPath"},
    "resourceFieldRef": {"containerName", "resource", "divisor"},
    "envFrom": {"prefix", "configMapRef", "secretRef"},
    "objectRef": {"name", "optional"},
    "configMapVolume": {"name", "items", "defaultMode", "optional"},
    "secretVolume": {"secretName", "items", "defaultMode", "optional"},
    "keyToPath": {"key", "path", "mode"},
    "downwardAPIVolume": {"items", "defaultMode"},
    "downwardAPIFile": {"path", "fieldRef", "resourceFieldRef", "mode"},
    "projectedVolume": {"sources", "defaultMode"},
    "projection": {"configMap", "secret", "downwardAPI"},
    "projectedObject": {"name", "items", "optional"},
    "projectedDownwardAPI": {"items"},
}
REF_NOT_IMPLEMENTED = {level: set() for level in REF_SUPPORTED}
REF_NOT_IMPLEMENTED["envVarSource"] = {"fileKeyRef"}
REF_NOT_IMPLEMENTED["projection"] = {"serviceAccountToken", "clusterTrustBundle",
                                     "podCertificate"}
REF_WHERE = {
    "envVarSource": "env[].valueFrom",
    "keySelector": "valueFrom.configMapKeyRef / secretKeyRef",
    "fieldRef": "a fieldRef",
    "resourceFieldRef": "a resourceFieldRef",
    "envFrom": "an envFrom entry (spec.containers[].envFrom[])",
    "objectRef": "envFrom[].configMapRef / secretRef",
    "configMapVolume": "a configMap volume (spec.volumes[].configMap)",
    "secretVolume": "a secret volume (spec.volumes[].secret)",
    "keyToPath": "an item of a configMap or secret volume (items[])",
    "downwardAPIVolume": "a downwardAPI volume (spec.volumes[].downwardAPI)",
    "downwardAPIFile": "an item of a downwardAPI volume (items[])",
    "projectedVolume": "a projected volume (spec.volumes[].projected)",
    "projection": "a projected source (projected.sources[])",
    "projectedObject": "projected.sources[].configMap / secret",
    "projectedDownwardAPI": "projected.sources[].downwardAPI",
}
SUPPORTED.update(REF_SUPPORTED)
NOT_IMPLEMENTED.update(REF_NOT_IMPLEMENTED)
WHERE.update(REF_WHERE)
