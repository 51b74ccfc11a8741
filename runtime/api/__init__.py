"""minipod.runtime.api: the Kubernetes objects, pure — no kernel calls.

The Pod manifest's parser and validator (every error with file, line and
field), the Pod's status as Kubernetes derives it, QoS classes, and the
checks of ConfigMaps, Secrets and the references to them. Nothing here
opens a namespace, a cgroup or a socket, and nothing imports from outside
api/ but the standard library and yaml: each module can be tried in a
Python shell.

    manifest.py    load_file / load_text / load_object, the public face
    podtypes.py    Pod, Container, Volume ... Problem, ManifestError
    parse.py       step 1: text -> plain values and their lines
    checker.py     step 2: the Checker that collects problems
    fields.py      the field tables of every level, enums, defaults, limits
    pod.py         the object and its spec (metadata.py: kind, metadata)
    containers.py  one container; probes.py, resources.py, security.py,
                   volumes.py its parts
    names.py       DNS names, label keys, config keys, paths
    quantity.py    "500m", "128Mi", exactly
    configrefs.py  env/volume references to ConfigMaps and Secrets
    configobject.py  ConfigMap and Secret objects themselves
    accountview.py the ServiceAccount volume as the API shows it
    record.py      the typed pod record (pod.json): PodRecord, ContainerRecord,
                   the container state table
    podstatus.py   phase, conditions, containerStatuses, kubectl's STATUS column
    podchange.py   `run` of a pod that exists: unchanged, or already exists
    qos.py         Guaranteed / Burstable / BestEffort
    timestamps.py  RFC 3339 in UTC, the one time format of every object

Check by hand: `python3 -c 'from minipod.runtime.api import manifest;
print(manifest.load_file("examples/kubia.yaml"))'`.
"""
