"""The checks of a Pod object: the top level and its spec.

    check_pod(obj, check) -> Pod | None      the whole object (None: errors,
                                             collected in check)

check_pod checks kind and apiVersion (metadata.py), metadata, then the
spec: restartPolicy, the grace period, hostname, the volumes (volumes.py),
the pod's securityContext (security.py), each container and init container
(containers.py), names unique across both, and the ports of containers that
run side by side: one network namespace, one port space. Defaults are
filled in as the API server's defaulting would (restartPolicy Always,
terminationGracePeriodSeconds 30). PodContext carries to each container
what it needs of its pod.
"""
from __future__ import annotations

from minipod.runtime.api.checker import Checker, field_name
from minipod.runtime.api.containers import PodContext, check_container
from minipod.runtime.api.fields import (DEFAULT_GRACE_SECONDS, DEFAULT_RESTART_POLICY, INT64_MAX,
                                        RESTART_POLICIES)
from minipod.runtime.api.metadata import check_metadata, check_type_meta
from minipod.runtime.api.names import check_label
from minipod.runtime.api.podtypes import Container, Pod
from minipod.runtime.api.security import check_pod_security
from minipod.runtime.api.volumes import check_volumes


def check_pod(obj: dict, check: Checker) -> Pod | None:
    """Validate one Pod object; the Pod if it has no errors, else None."""
    if not check_type_meta(obj, check):
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
        name, namespace, labels, annotations = check_metadata(meta, check)
    if spec is not None:
        pod_spec = _check_spec(spec, check)
    if check.errors or meta is None or spec is None:
        return None
    return Pod(name=name, namespace=namespace, labels=labels,
               annotations=annotations, raw=obj, source=check.source,
               line=check.start, **pod_spec)


def _check_spec(spec: dict, check: Checker) -> dict:
    """PodSpec; returns the Pod fields it holds, by name."""
    path = ("spec",)
    suggested = check.fields(spec, path, "spec")
    restart = check.enum(spec, "restartPolicy", path, RESTART_POLICIES)
    grace = check.integer(spec, "terminationGracePeriodSeconds", path,
                          0, INT64_MAX)
    grace = DEFAULT_GRACE_SECONDS if grace is None else grace
    hostname = check.get(spec, "hostname", path, str)
    if hostname is not None:
        check_label(hostname, path + ("hostname",), check)
    check.get(spec, "automountServiceAccountToken", path, bool)  # runtime/serviceaccount.py
    share = check.get(spec, "shareProcessNamespace", path, bool)
    if share and spec.get("hostPID") is True:
        check.error(path + ("shareProcessNamespace",),
                    "may not be true together with hostPID: true")
    volumes, volume_names = check_volumes(spec, check)
    pod = PodContext(volume_names, check_pod_security(spec, check), grace)
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


def _check_containers(spec: dict, key: str, check: Checker,
                      pod: PodContext) -> list[tuple[tuple, Container]]:
    """spec.containers or spec.initContainers: ``[(path, Container)]``."""
    found = []
    for where, item in check.maps(spec, key, ("spec",), "a container (a map)"):
        container = check_container(item, where, check, pod,
                                     init=key == "initContainers")
        if container is not None:
            found.append((where, container))
    return found


def _check_container_names(spec: dict, check: Checker) -> None:
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
                       f"{field_name(other[:-1])} ({check.where(other)}) "
                       "has it too; names are unique across containers and "
                       "initContainers")
        check.error(where, message)


def _check_pod_ports(containers: list[tuple[tuple, Container]],
                     check: Checker) -> None:
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
