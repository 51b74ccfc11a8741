"""Patches of a Pod: strategic merge, JSON merge (RFC 7386), JSON patch (RFC 6902).

PATCH's Content-Type picks the function:

    application/strategic-merge-patch+json  strategic_merge(obj, patch)
                                            (kubectl apply, edit, set image)
    application/merge-patch+json            merge_patch(obj, patch)
                                            (kubectl label/annotate)
    application/json-patch+json             json_patch(obj, ops)
                                            (kubectl patch --type=json)

Each returns a new object and never changes its arguments; bad patches raise
PatchError(message), which the server answers as a 422 (or 400) Status.

Strategic merge patch (apimachinery pkg/util/strategicpatch) is a JSON
merge patch with list rules from the API schema: a list field tagged
`patchStrategy: merge` with a `patchMergeKey` merges element by element
(containers by name, ports by containerPort, ...); one tagged `merge`
without a key (finalizers) is a set union; every other list is replaced.
Maps merge recursively and `null` deletes a key. Directives:

    {"$patch": "replace", ...}        this map replaces the original one
    {"$patch": "delete"}              delete this map
    [{"name": "c", "$patch": "delete"}]   in a merging list: drop element c
    [{"$patch": "replace"}, ...]      in a merging list: replace the list
    "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}]
                                      order of the merged list (kubectl
                                      apply sends it for every merged list)
    "$retainKeys": ["name", "emptyDir"]   keep only these keys of the map
                                      (volumes: patchStrategy merge,retainKeys)
    "$deleteFromPrimitiveList/finalizers": ["x"]   remove values of a set

What kubectl 1.32's client-side apply sends for an image change:

    {"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{...}\\n"}},
     "spec":{"$setElementOrder/containers":[{"name":"main"}],
             "containers":[{"image":"nginx:1.28","name":"main"}]}}

The list rules come from POD_SCHEMA below: per definition (short name),
field -> [definition of its values or None, patch strategy, merge key].
It is generated, not typed: `python -m minipod.runtime.apiserver.patch
_definitions.json` prints it from the x-kubernetes-patch-strategy /
x-kubernetes-patch-merge-key annotations of the upstream schema, as the
kubernetes-validate package ships it (v1.32.0-local/_definitions.json;
schema_from_definitions() also reads an OpenAPI v3 document's
components.schemas). Elements not named in a $setElementOrder keep their
relative order after the named ones (upstream interleaves server-only
elements by their old position; for apply's own lists the result is the same).
"""

import copy
import json
import sys


class PatchError(ValueError):
    """A patch that cannot be applied; the message says what and where."""


def schema_from_definitions(defs: dict, root: str = "io.k8s.api.core.v1.Pod") -> dict:
    """The POD_SCHEMA-style table for ROOT's closure in DEFS (JSON schema
    `$defs` or OpenAPI v3 `components.schemas`, keyed by full name)."""
    def ref(p):
        if not isinstance(p, dict):
            return None
        if "$ref" in p:
            return p["$ref"].rsplit("/", 1)[-1]
        for k in ("allOf", "anyOf", "oneOf"):
            for x in p.get(k, []):
                if (r := ref(x)):
                    return r
        return ref(p.get("items")) or ref(p.get("additionalProperties"))

    out, todo = {}, [root]
    while todo:
        name = todo.pop()
        if name in out:
            continue
        entries = {}
        for fieldname, prop in (defs.get(name, {}).get("properties") or {}).items():
            r = ref(prop)
            strategy = prop.get("x-kubernetes-patch-strategy")
            if r and r not in out:
                todo.append(r)
            if r or strategy:
                entry = [r.rsplit(".", 1)[-1] if r else None]
                if strategy:
                    entry += [strategy, prop.get("x-kubernetes-patch-merge-key")]
                entries[fieldname] = entry
        out[name] = entries
    return {n.rsplit(".", 1)[-1]: e for n, e in out.items() if e}


# Generated from kubernetes-validate 1.37.0, v1.32.0-local/_definitions.json.
POD_SCHEMA = {'Affinity': {'nodeAffinity': ['NodeAffinity'],
              'podAffinity': ['PodAffinity'],
              'podAntiAffinity': ['PodAntiAffinity']},
 'CSIVolumeSource': {'nodePublishSecretRef': ['LocalObjectReference']},
 'CephFSVolumeSource': {'secretRef': ['LocalObjectReference']},
 'CinderVolumeSource': {'secretRef': ['LocalObjectReference']},
 'ClusterTrustBundleProjection': {'labelSelector': ['LabelSelector']},
 'ConfigMapProjection': {'items': ['KeyToPath']},
 'ConfigMapVolumeSource': {'items': ['KeyToPath']},
 'Container': {'env': ['EnvVar', 'merge', 'name'],
               'envFrom': ['EnvFromSource'],
               'lifecycle': ['Lifecycle'],
               'livenessProbe': ['Probe'],
               'ports': ['ContainerPort', 'merge', 'containerPort'],
               'readinessProbe': ['Probe'],
               'resizePolicy': ['ContainerResizePolicy'],
               'resources': ['ResourceRequirements'],
               'securityContext': ['SecurityContext'],
               'startupProbe': ['Probe'],
               'volumeDevices': ['VolumeDevice', 'merge', 'devicePath'],
               'volumeMounts': ['VolumeMount', 'merge', 'mountPath']},
 'ContainerState': {'running': ['ContainerStateRunning'],
                    'terminated': ['ContainerStateTerminated'],
                    'waiting': ['ContainerStateWaiting']},
 'ContainerStateRunning': {'startedAt': ['Time']},
 'ContainerStateTerminated': {'finishedAt': ['Time'], 'startedAt': ['Time']},
 'ContainerStatus': {'allocatedResources': ['Quantity'],
                     'allocatedResourcesStatus': ['ResourceStatus', 'merge', 'name'],
                     'lastState': ['ContainerState'],
                     'resources': ['ResourceRequirements'],
                     'state': ['ContainerState'],
                     'user': ['ContainerUser'],
                     'volumeMounts': ['VolumeMountStatus', 'merge', 'mountPath']},
 'ContainerUser': {'linux': ['LinuxContainerUser']},
 'DownwardAPIProjection': {'items': ['DownwardAPIVolumeFile']},
 'DownwardAPIVolumeFile': {'fieldRef': ['ObjectFieldSelector'],
                           'resourceFieldRef': ['ResourceFieldSelector']},
 'DownwardAPIVolumeSource': {'items': ['DownwardAPIVolumeFile']},
 'EmptyDirVolumeSource': {'sizeLimit': ['Quantity']},
 'EnvFromSource': {'configMapRef': ['ConfigMapEnvSource'], 'secretRef': ['SecretEnvSource']},
 'EnvVar': {'valueFrom': ['EnvVarSource']},
 'EnvVarSource': {'configMapKeyRef': ['ConfigMapKeySelector'],
                  'fieldRef': ['ObjectFieldSelector'],
                  'resourceFieldRef': ['ResourceFieldSelector'],
                  'secretKeyRef': ['SecretKeySelector']},
 'EphemeralContainer': {'env': ['EnvVar', 'merge', 'name'],
                        'envFrom': ['EnvFromSource'],
                        'lifecycle': ['Lifecycle'],
                        'livenessProbe': ['Probe'],
                        'ports': ['ContainerPort', 'merge', 'containerPort'],
                        'readinessProbe': ['Probe'],
                        'resizePolicy': ['ContainerResizePolicy'],
                        'resources': ['ResourceRequirements'],
                        'securityContext': ['SecurityContext'],
                        'startupProbe': ['Probe'],
                        'volumeDevices': ['VolumeDevice', 'merge', 'devicePath'],
                        'volumeMounts': ['VolumeMount', 'merge', 'mountPath']},
 'EphemeralVolumeSource': {'volumeClaimTemplate': ['PersistentVolumeClaimTemplate']},
 'FlexVolumeSource': {'secretRef': ['LocalObjectReference']},
 'HTTPGetAction': {'httpHeaders': ['HTTPHeader'], 'port': ['IntOrString']},
 'ISCSIVolumeSource': {'secretRef': ['LocalObjectReference']},
 'LabelSelector': {'matchExpressions': ['LabelSelectorRequirement']},
 'Lifecycle': {'postStart': ['LifecycleHandler'], 'preStop': ['LifecycleHandler']},
 'LifecycleHandler': {'exec': ['ExecAction'],
                      'httpGet': ['HTTPGetAction'],
                      'sleep': ['SleepAction'],
                      'tcpSocket': ['TCPSocketAction']},
 'ManagedFieldsEntry': {'fieldsV1': ['FieldsV1'], 'time': ['Time']},
 'NodeAffinity': {'preferredDuringSchedulingIgnoredDuringExecution': ['PreferredSchedulingTerm'],
                  'requiredDuringSchedulingIgnoredDuringExecution': ['NodeSelector']},
 'NodeSelector': {'nodeSelectorTerms': ['NodeSelectorTerm']},
 'NodeSelectorTerm': {'matchExpressions': ['NodeSelectorRequirement'],
                      'matchFields': ['NodeSelectorRequirement']},
 'ObjectMeta': {'creationTimestamp': ['Time'],
                'deletionTimestamp': ['Time'],
                'finalizers': [None, 'merge', None],
                'managedFields': ['ManagedFieldsEntry'],
                'ownerReferences': ['OwnerReference', 'merge', 'uid']},
 'PersistentVolumeClaimSpec': {'dataSource': ['TypedLocalObjectReference'],
                               'dataSourceRef': ['TypedObjectReference'],
                               'resources': ['VolumeResourceRequirements'],
                               'selector': ['LabelSelector']},
 'PersistentVolumeClaimTemplate': {'metadata': ['ObjectMeta'],
                                   'spec': ['PersistentVolumeClaimSpec']},
 'Pod': {'metadata': ['ObjectMeta'], 'spec': ['PodSpec'], 'status': ['PodStatus']},
 'PodAffinity': {'preferredDuringSchedulingIgnoredDuringExecution': ['WeightedPodAffinityTerm'],
                 'requiredDuringSchedulingIgnoredDuringExecution': ['PodAffinityTerm']},
 'PodAffinityTerm': {'labelSelector': ['LabelSelector'],
                     'namespaceSelector': ['LabelSelector']},
 'PodAntiAffinity': {'preferredDuringSchedulingIgnoredDuringExecution': ['WeightedPodAffinityTerm'],
                     'requiredDuringSchedulingIgnoredDuringExecution': ['PodAffinityTerm']},
 'PodCondition': {'lastProbeTime': ['Time'], 'lastTransitionTime': ['Time']},
 'PodDNSConfig': {'options': ['PodDNSConfigOption']},
 'PodSecurityContext': {'appArmorProfile': ['AppArmorProfile'],
                        'seLinuxOptions': ['SELinuxOptions'],
                        'seccompProfile': ['SeccompProfile'],
                        'sysctls': ['Sysctl'],
                        'windowsOptions': ['WindowsSecurityContextOptions']},
 'PodSpec': {'affinity': ['Affinity'],
             'containers': ['Container', 'merge', 'name'],
             'dnsConfig': ['PodDNSConfig'],
             'ephemeralContainers': ['EphemeralContainer', 'merge', 'name'],
             'hostAliases': ['HostAlias', 'merge', 'ip'],
             'imagePullSecrets': ['LocalObjectReference', 'merge', 'name'],
             'initContainers': ['Container', 'merge', 'name'],
             'os': ['PodOS'],
             'overhead': ['Quantity'],
             'readinessGates': ['PodReadinessGate'],
             'resourceClaims': ['PodResourceClaim', 'merge,retainKeys', 'name'],
             'resources': ['ResourceRequirements'],
             'schedulingGates': ['PodSchedulingGate', 'merge', 'name'],
             'securityContext': ['PodSecurityContext'],
             'tolerations': ['Toleration'],
             'topologySpreadConstraints': ['TopologySpreadConstraint', 'merge', 'topologyKey'],
             'volumes': ['Volume', 'merge,retainKeys', 'name']},
 'PodStatus': {'conditions': ['PodCondition', 'merge', 'type'],
               'containerStatuses': ['ContainerStatus'],
               'ephemeralContainerStatuses': ['ContainerStatus'],
               'hostIPs': ['HostIP', 'merge', 'ip'],
               'initContainerStatuses': ['ContainerStatus'],
               'podIPs': ['PodIP', 'merge', 'ip'],
               'resourceClaimStatuses': ['PodResourceClaimStatus', 'merge,retainKeys', 'name'],
               'startTime': ['Time']},
 'PreferredSchedulingTerm': {'preference': ['NodeSelectorTerm']},
 'Probe': {'exec': ['ExecAction'],
           'grpc': ['GRPCAction'],
           'httpGet': ['HTTPGetAction'],
           'tcpSocket': ['TCPSocketAction']},
 'ProjectedVolumeSource': {'sources': ['VolumeProjection']},
 'RBDVolumeSource': {'secretRef': ['LocalObjectReference']},
 'ResourceFieldSelector': {'divisor': ['Quantity']},
 'ResourceRequirements': {'claims': ['ResourceClaim'],
                          'limits': ['Quantity'],
                          'requests': ['Quantity']},
 'ResourceStatus': {'resources': ['ResourceHealth']},
 'ScaleIOVolumeSource': {'secretRef': ['LocalObjectReference']},
 'SecretProjection': {'items': ['KeyToPath']},
 'SecretVolumeSource': {'items': ['KeyToPath']},
 'SecurityContext': {'appArmorProfile': ['AppArmorProfile'],
                     'capabilities': ['Capabilities'],
                     'seLinuxOptions': ['SELinuxOptions'],
                     'seccompProfile': ['SeccompProfile'],
                     'windowsOptions': ['WindowsSecurityContextOptions']},
 'StorageOSVolumeSource': {'secretRef': ['LocalObjectReference']},
 'TCPSocketAction': {'port': ['IntOrString']},
 'TopologySpreadConstraint': {'labelSelector': ['LabelSelector']},
 'Volume': {'awsElasticBlockStore': ['AWSElasticBlockStoreVolumeSource'],
            'azureDisk': ['AzureDiskVolumeSource'],
            'azureFile': ['AzureFileVolumeSource'],
            'cephfs': ['CephFSVolumeSource'],
            'cinder': ['CinderVolumeSource'],
            'configMap': ['ConfigMapVolumeSource'],
            'csi': ['CSIVolumeSource'],
            'downwardAPI': ['DownwardAPIVolumeSource'],
            'emptyDir': ['EmptyDirVolumeSource'],
            'ephemeral': ['EphemeralVolumeSource'],
            'fc': ['FCVolumeSource'],
            'flexVolume': ['FlexVolumeSource'],
            'flocker': ['FlockerVolumeSource'],
            'gcePersistentDisk': ['GCEPersistentDiskVolumeSource'],
            'gitRepo': ['GitRepoVolumeSource'],
            'glusterfs': ['GlusterfsVolumeSource'],
            'hostPath': ['HostPathVolumeSource'],
            'image': ['ImageVolumeSource'],
            'iscsi': ['ISCSIVolumeSource'],
            'nfs': ['NFSVolumeSource'],
            'persistentVolumeClaim': ['PersistentVolumeClaimVolumeSource'],
            'photonPersistentDisk': ['PhotonPersistentDiskVolumeSource'],
            'portworxVolume': ['PortworxVolumeSource'],
            'projected': ['ProjectedVolumeSource'],
            'quobyte': ['QuobyteVolumeSource'],
            'rbd': ['RBDVolumeSource'],
            'scaleIO': ['ScaleIOVolumeSource'],
            'secret': ['SecretVolumeSource'],
            'storageos': ['StorageOSVolumeSource'],
            'vsphereVolume': ['VsphereVirtualDiskVolumeSource']},
 'VolumeProjection': {'clusterTrustBundle': ['ClusterTrustBundleProjection'],
                      'configMap': ['ConfigMapProjection'],
                      'downwardAPI': ['DownwardAPIProjection'],
                      'secret': ['SecretProjection'],
                      'serviceAccountToken': ['ServiceAccountTokenProjection']},
 'VolumeResourceRequirements': {'limits': ['Quantity'], 'requests': ['Quantity']},
 'WeightedPodAffinityTerm': {'podAffinityTerm': ['PodAffinityTerm']}}


def _field(schema: dict, defname: str | None, key: str):
    """(value definition, strategies, merge key) of field KEY of DEFNAME."""
    entry = schema.get(defname or "", {}).get(key)
    if not entry:
        return None, (), None
    strategies = tuple(entry[1].split(",")) if len(entry) > 1 else ()
    return entry[0], strategies, entry[2] if len(entry) > 2 else None


def _where(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


# ------------------------------------------------------- strategic merge
def strategic_merge(original: dict, patch: dict, schema: dict = None,
                    root: str = "Pod") -> dict:
    """Apply strategic merge PATCH to ORIGINAL (a Pod unless ROOT says)."""
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object")
    result = _merge_map(copy.deepcopy(original if isinstance(original, dict) else {}),
                        patch, schema or POD_SCHEMA, root, "")
    return {} if result is None else result


def _merge_map(original: dict, patch: dict, schema, defname, path):
    directive = patch.get("$patch")
    if directive == "replace":
        return _strip({k: v for k, v in patch.items() if k != "$patch"}, schema, defname, path)
    if directive == "delete":
        return None
    if directive not in (None, "merge"):
        raise PatchError(f"{path or 'patch'}: unknown $patch directive {directive!r} "
                         "(expected replace, delete or merge)")
    retain = patch.get("$retainKeys")
    if retain is not None:
        if not isinstance(retain, list) or not all(isinstance(k, str) for k in retain):
            raise PatchError(f"{path or 'patch'}: $retainKeys must be a list of strings")
        for k in list(original):
            if k not in retain:
                del original[k]
    orders = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            if not isinstance(value, list):
                raise PatchError(f"{_where(path, key)}: must be a list")
            current = original.get(name)
            if isinstance(current, list):
                original[name] = [v for v in current if v not in value]
            continue
        if key.startswith("$"):
            raise PatchError(f"{_where(path, key)}: unknown directive")
        where = _where(path, key)
        if value is None:
            original.pop(key, None)
            continue
        sub, strategies, merge_key = _field(schema, defname, key)
        current = original.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            merged = _merge_map(current, value, schema, sub, where)
        elif isinstance(value, dict):
            merged = _merge_map({}, value, schema, sub, where)
        elif isinstance(value, list) and "merge" in strategies:
            merged = _merge_list(current if isinstance(current, list) else [], value,
                                 schema, sub, merge_key, where)
        elif isinstance(value, list):
            merged = _strip(value, schema, sub, where)
        else:
            merged = value
        if merged is None:
            original.pop(key, None)
        else:
            original[key] = merged
    for name, order in orders.items():
        if isinstance(original.get(name), list):
            _, _, merge_key = _field(schema, defname, name)
            original[name] = _order(original[name], order, merge_key, _where(path, name))
    return original


def _strip(value, schema, defname, path):
    """VALUE with directives resolved against nothing (a fresh subtree)."""
    if isinstance(value, dict):
        return _merge_map({}, value, schema, defname, path)
    if isinstance(value, list):
        return [_strip(v, schema, defname, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _merge_list(original: list, patch: list, schema, defname, merge_key, path):
    if merge_key is None:                      # a set of primitives (finalizers)
        out = list(original)
        for v in patch:
            if isinstance(v, (dict, list)):
                raise PatchError(f"{path}: a merging list of values cannot hold {json.dumps(v)}")
            if v not in out:
                out.append(v)
        return out
    if any(isinstance(v, dict) and v.get("$patch") == "replace" for v in patch):
        return [_strip(v, schema, defname, path) for v in patch
                if not (isinstance(v, dict) and v.get("$patch") == "replace")]
    out = [copy.deepcopy(v) for v in original]
    for i, item in enumerate(patch):
        where = f"{path}[{i}]"
        if not isinstance(item, dict):
            raise PatchError(f"{where}: elements of this list are objects merged by "
                             f"{merge_key!r}, got {json.dumps(item)}")
        if merge_key not in item:
            raise PatchError(f"{where}: map: {json.dumps(item)} does not contain declared "
                             f"merge key: {merge_key}")
        key = item[merge_key]
        index = next((j for j, v in enumerate(out)
                      if isinstance(v, dict) and v.get(merge_key) == key), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del out[index]
            continue
        if index is None:
            out.append(_strip(item, schema, defname, where))
        else:
            merged = _merge_map(out[index], item, schema, defname, where)
            if merged is None:
                del out[index]
            else:
                out[index] = merged
    return out


def _order(items: list, order, merge_key, path):
    if not isinstance(order, list):
        raise PatchError(f"{path}: $setElementOrder must be a list")

    def ident(v):
        return v.get(merge_key) if merge_key and isinstance(v, dict) else json.dumps(v, sort_keys=True)
    wanted = [o.get(merge_key) if merge_key and isinstance(o, dict) else json.dumps(o, sort_keys=True)
              for o in order]
    rank = {w: i for i, w in enumerate(wanted)}
    named = sorted((v for v in items if ident(v) in rank), key=lambda v: rank[ident(v)])
    return named + [v for v in items if ident(v) not in rank]


# ------------------------------------------------------------ RFC 7386
def merge_patch(target, patch):
    """JSON merge patch (RFC 7386): objects merge, null deletes, others replace."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


# ------------------------------------------------------------ RFC 6902
def _pointer(ptr, op_index):
    if not isinstance(ptr, str) or (ptr and not ptr.startswith("/")):
        raise PatchError(f"operation {op_index}: path {ptr!r} is not a JSON pointer "
                         "(it must be empty or start with '/')")
    if ptr == "":
        return []
    parts = ptr[1:].split("/")
    for p in parts:
        rest = p.replace("~0", "").replace("~1", "")
        if "~" in rest:
            raise PatchError(f"operation {op_index}: path {ptr!r} has a bad '~' escape")
    return [p.replace("~1", "/").replace("~0", "~") for p in parts]


def _index(container: list, token: str, ptr: str, op_index: int, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise PatchError(f"operation {op_index}: {ptr!r}: {token!r} is not an array index")
    i = int(token)
    if i > len(container) or (i == len(container) and not allow_end):
        raise PatchError(f"operation {op_index}: {ptr!r}: index {i} is out of range "
                         f"(the array has {len(container)} elements)")
    return i


def _parent(doc, tokens, ptr, op_index):
    node = doc
    for t in tokens[:-1]:
        if isinstance(node, dict):
            if t not in node:
                raise PatchError(f"operation {op_index}: {ptr!r}: no such path ({t!r} is missing)")
            node = node[t]
        elif isinstance(node, list):
            node = node[_index(node, t, ptr, op_index, False)]
        else:
            raise PatchError(f"operation {op_index}: {ptr!r}: {t!r} is not inside an object or array")
    return node


def _get(doc, ptr, op_index):
    tokens = _pointer(ptr, op_index)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, ptr, op_index)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"operation {op_index}: {ptr!r}: no such path")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, ptr, op_index, False)]
    raise PatchError(f"operation {op_index}: {ptr!r}: no such path")


def _add(doc, ptr, value, op_index):
    tokens = _pointer(ptr, op_index)
    if not tokens:
        return value
    parent = _parent(doc, tokens, ptr, op_index)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, ptr, op_index, True), value)
    else:
        raise PatchError(f"operation {op_index}: {ptr!r}: parent is not an object or array")
    return doc


def _remove(doc, ptr, op_index):
    tokens = _pointer(ptr, op_index)
    if not tokens:
        raise PatchError(f"operation {op_index}: cannot remove the whole document")
    parent = _parent(doc, tokens, ptr, op_index)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"operation {op_index}: {ptr!r}: no such path to remove")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, ptr, op_index, False))
    raise PatchError(f"operation {op_index}: {ptr!r}: no such path to remove")


def json_patch(doc, ops):
    """Apply an RFC 6902 JSON patch (a list of operations) to DOC."""
    if not isinstance(ops, list):
        raise PatchError("json patch must be a JSON array of operations")
    doc = copy.deepcopy(doc)
    for i, op in enumerate(ops):
        if not isinstance(op, dict) or not isinstance(op.get("op"), str):
            raise PatchError(f"operation {i}: must be an object with an \"op\"")
        name = op["op"]
        if "path" not in op:
            raise PatchError(f"operation {i} ({name}): missing \"path\"")
        path = op["path"]
        if name in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"operation {i} ({name}): missing \"value\"")
        if name in ("move", "copy") and "from" not in op:
            raise PatchError(f"operation {i} ({name}): missing \"from\"")
        if name == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]), i)
        elif name == "remove":
            _remove(doc, path, i)
        elif name == "replace":
            if not _pointer(path, i):
                doc = copy.deepcopy(op["value"])
                continue
            _get(doc, path, i)                      # must exist
            _remove(doc, path, i)
            doc = _add(doc, path, copy.deepcopy(op["value"]), i)
        elif name == "move":
            src = op["from"]
            if path != src and path.startswith(src + "/"):
                raise PatchError(f"operation {i} (move): cannot move {src!r} into its own child {path!r}")
            value = _remove(doc, src, i) if _pointer(src, i) else doc
            doc = _add(doc, path, value, i)
        elif name == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op["from"], i)), i)
        elif name == "test":
            actual = _get(doc, path, i)
            if not _json_equal(actual, op["value"]):
                raise PatchError(f"operation {i} (test): {path!r} is {json.dumps(actual)}, "
                                 f"not {json.dumps(op['value'])}")
        else:
            raise PatchError(f"operation {i}: unknown op {name!r} "
                             "(add, remove, replace, move, copy, test)")
    return doc


def _json_equal(a, b) -> bool:
    # JSON: 1 == 1.0 but True != 1
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    return a == b


if __name__ == "__main__":     # regenerate POD_SCHEMA from a schema file
    with open(sys.argv[1]) as f:
        document = json.load(f)
    definitions = (document.get("$defs") or document.get("definitions")
                   or document.get("components", {}).get("schemas", {}))
    import pprint
    print("POD_SCHEMA = " + pprint.pformat(schema_from_definitions(definitions), width=96))
