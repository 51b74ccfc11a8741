"""A container's process spec: what runtime/container.py starts.

container_spec(paths, record, pod, c, image, gateway) puts together, for
one start of container c: a fresh upper dir over the image's layers, the
security plan (user from the image's /etc/passwd, capabilities, seccomp),
the environment (ConfigMaps, Secrets, the `kubernetes` Service), argv, the
mount plan (volumes, /etc files of the pod, the ServiceAccount token), the
pod's namespaces to join and the output files. The worker (worker.py)
calls it and hands the spec to node.launch.
"""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from minipod import cgroups
from minipod.rootfs import mounts
from minipod.runtime import configobjects, process, sandbox, security, serviceaccount, volumes
from minipod.runtime import container as ctr
from minipod.runtime.api import manifest
from minipod.runtime.api.record import PodRecord
from minipod.runtime.paths import record_key


def container_spec(paths, record: PodRecord, pod: manifest.Pod, c: manifest.Container, image,
                   gateway: str) -> ctr.ProcessSpec:
    """The ProcessSpec of one start of container c (see the module doc).
    configobjects.ConfigError while a ConfigMap, Secret or key it needs is
    missing; security.SecurityError for a security context it refuses."""
    name = c.name
    top = image.layer_dirs
    cdir = paths.container_dir(record.uid, name)
    upper, work, merged = cdir / "upper", cdir / "work", cdir / "merged"
    # every start is a new container: a fresh upper dir over the image
    shutil.rmtree(upper, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    for d in (upper, work, merged):
        d.mkdir(parents=True, exist_ok=True)
    passwd = _read_in_layers(top, "etc/passwd")
    group = _read_in_layers(top, "etc/group")
    where = f'pod: "{pod.name}_{pod.namespace}({record.uid})", container: {name}'
    sec = security.prepare(security.plan_security(
        c.security_context, image.config.get("User"), passwd, group, where))
    # valueFrom and envFrom: ConfigError while an object or key is missing
    env_list, _ = configobjects.container_env(paths, record, pod, c)
    # the `kubernetes` Service's variables first: the container's own env wins
    service = serviceaccount.service_env(gateway,
                                         serviceaccount.api_port(paths))
    env = process.environment(image.config, service + env_list, pod.name,
                              process.home(sec.uid, passwd))
    argv = process.argv(c.command, c.args, image.config, env)
    pod_dir = paths.pod_dir(record_key(record))
    binds = []
    written = {v.name for v in pod.volumes if v.source is not None}
    for vm in c.volume_mounts:
        if vm.name in written:  # configMap, secret, ...: read-only, as the kubelet does
            vm = replace(vm, read_only=True)
        binds.append(volumes.bind_for(record.volumes[vm.name], vm))
    token = serviceaccount.bind(record, c)
    if token is not None:
        binds.append(token)
    plan = mounts.plan([str(p) for p in top], str(upper), str(work), str(merged), {
        "/etc/hosts": str(pod_dir / "hosts"),
        "/etc/hostname": str(pod_dir / "hostname"),
        "/etc/resolv.conf": str(pod_dir / "resolv.conf"),
    }, binds)
    ns = {n: str(pod_dir / "ns" / n) for n in sandbox.SHARED}
    if record.pause:
        ns["pid"] = f"/proc/{record.pause.pid}/ns/pid"
    return ctr.ProcessSpec(
        name=f"{record_key(record)}/{name}", namespaces=ns, rootfs=plan, argv=argv, env=env,
        cwd=c.working_dir or image.config.get("WorkingDir") or "/",
        stdout=str(paths.container_dir(record.uid, name) / "stdout"),
        stderr=str(paths.container_dir(record.uid, name) / "stderr"),
        uid=sec.uid, gid=sec.gid, groups=sec.groups, security=sec)


def _read_in_layers(layers: list[Path], rel: str) -> str:
    """A file of the image as the container will see it: the top layer wins."""
    for layer in reversed(layers):
        p = layer / rel
        if p.is_file() and not p.is_symlink():
            return p.read_text(errors="replace")
    return ""


def limits_of(c: manifest.Container) -> cgroups.Limits:
    return cgroups.Limits(cpu_limit_milli=c.resources.cpu_limit_milli,
                          cpu_request_milli=c.resources.cpu_request_milli,
                          memory_limit=c.resources.memory_limit)
