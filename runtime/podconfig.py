"""The agent's part of ConfigMaps and Secrets: which pods an object change
touches, the volumes written before a container starts, and the secret-safe
record of a container's environment.

The kubelet's behaviour, followed here:
  - every configMap/secret/downwardAPI/projected volume of a pod is written
    before any of its containers starts; a required object or key that is
    missing keeps the containers waiting (ContainerCreating, event
    FailedMount `MountVolume.SetUp failed for volume "v" : configmap "x" not
    found`), retried until it appears;
  - env from a missing object or key: the container waits with reason
    CreateContainerConfigError (`configmap "x" not found`), retried;
  - a changed object is written again into the volumes of every running
    pod that names it (atomically, projection.write); a deleted one leaves
    the files as they were.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from minipod.runtime import configobjects, projection

RETRY_SECONDS = 2.0
ENV_FILE = "env.json"


def write_volumes(paths, record, pod) -> str | None:
    """Write (or update) the pod's written volumes (`record`: its PodRecord);
    the FailedMount message of the first one that cannot be written yet, or None."""
    gid = next((c.security_context.fs_group for c in pod.containers
                if c.security_context.fs_group is not None), None)
    for v in pod.volumes:
        if v.kind not in projection.KINDS or v.name not in record.volumes:
            continue
        try:
            files = projection.payload(paths, record, pod, v)
            projection.write(Path(record.volumes[v.name]), files, gid)
        except projection.NotReady as e:
            return f'MountVolume.SetUp failed for volume "{v.name}" : {e}'
        except OSError as e:    # the disk, not the user: said, and tried again
            return (f'MountVolume.SetUp failed for volume "{v.name}" : cannot write '
                    f"{e.filename or record.volumes[v.name]}: {e.strerror} (errno {e.errno})")
    return None


def uses(pod, resource: str, namespace: str, name: str) -> bool:
    return pod.namespace == namespace and (resource, name) in configobjects.names_used(pod)


def save_env(paths, record, cs, env: dict, secret: bool) -> None:
    """Keep what exec, probes and hooks run with in container record `cs`
    (cs.env, or cs.env_file). With a Secret's value in it, the environment
    goes to a 0600 file in the container's dir, never into the pod record
    (that one is world-readable: `minipod get` reads it)."""
    if not secret:
        cs.env, cs.env_file = env, None
        return
    from minipod.linux import files
    from minipod.runtime.paths import record_key
    # in the pod's run dir (RUN: /run, a tmpfs on Debian), not LIB (a disk),
    # so a Secret's bytes stay off the disk; 0700 as the ServiceAccount token's
    secrets = paths.pod_dir(record_key(record)) / "secrets"
    secrets.mkdir(mode=0o700, exist_ok=True)
    os.chmod(secrets, 0o700)
    path = secrets / f"{cs.name}.{ENV_FILE}"
    files.replace_file(path, json.dumps(env).encode(), 0o600)
    os.chmod(path, 0o600)
    cs.env, cs.env_file = None, str(path)


def load_env(cs) -> dict | None:
    """The environment save_env kept for a container (a ContainerRecord), if
    it went to a file."""
    env_file = cs.env_file
    if not env_file:
        return None
    try:
        with open(env_file, "rb") as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return None
