"""minipod.runtime.api: the Kubernetes objects, pure — no kernel calls.

The Pod manifest's parser and validator (every error with file, line and
field), the Pod's status as Kubernetes derives it, QoS classes, and the
checks of ConfigMap/Secret references. Nothing here opens a namespace,
a cgroup or a socket: each module can be tried in a Python shell.

    manifest.py    Pod parse and checks
    podstatus.py   phase, conditions, containerStatuses, kubectl's STATUS column
    qos.py         Guaranteed / Burstable / BestEffort
    configrefs.py  env/volume references to ConfigMaps and Secrets

Check by hand: `python3 -c 'from minipod.runtime.api import manifest;
print(manifest.load_file("examples/kubia.yaml"))'`.
"""
