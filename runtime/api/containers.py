"""The checks of one container (regular, init, or sidecar).

    check_container(obj, path, check, pod, init) -> Container | None

name, image (imagePullPolicy defaulted from its tag), command, args,
workingDir, env (valueFrom and envFrom: configrefs.py), ports, volumeMounts
(volumes.py), restartPolicy (only "Always", only on an init container: a
sidecar), probes and lifecycle hooks (probes.py; none on a plain init
container), resources (resources.py) and the securityContext merged over
the pod's (security.py). None when the container has errors, all of them
collected in check.
"""
from __future__ import annotations

from minipod.runtime.api import configrefs
from minipod.runtime.api.checker import Checker
from minipod.runtime.api.fields import DEFAULT_GRACE_SECONDS, PROBES, PROTOCOLS, PULL_POLICIES
from minipod.runtime.api.names import ENV_VAR_NAME, check_label, iana_svc_name_problems
from minipod.runtime.api.podtypes import (Container, EnvVar, Lifecycle, Port, Probe,
                                          default_pull_policy)
from minipod.runtime.api.probes import check_lifecycle, check_probe, named_ports
from minipod.runtime.api.resources import check_resources
from minipod.runtime.api.security import check_security_context
from minipod.runtime.api.volumes import check_volume_mounts


class PodContext:
    """What the checks of one container need to know about its pod.

    A plain class, not a dataclass: each dataclass costs ~0.5 ms at import.
    """

    def __init__(self, volume_names: list[str], security: dict, grace: int):
        self.volume_names = volume_names    # declared in spec.volumes
        self.security = security            # the pod's securityContext
        self.grace = grace                  # terminationGracePeriodSeconds


def check_container(obj: dict, path: tuple, check: Checker,
                     pod: PodContext | None = None,
                     init: bool = False) -> Container | None:
    """Container; None if it has errors."""
    pod = pod or PodContext([], {}, DEFAULT_GRACE_SECONDS)
    before = len(check.errors)
    suggested = check.fields(obj, path, "container")
    name = check.require(obj, "name", path, str, suggested)
    if name is not None:
        check_label(name, path + ("name",), check)
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
    mounts = check_volume_mounts(obj, path, check, pod.volume_names)
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
        named = named_ports(obj, ports)
        for key in PROBES:
            probes[key] = check_probe(obj, key, path, check, named,
                                       pod.grace)
        lifecycle = check_lifecycle(obj, path, check, named, pod.grace)
    resources = check_resources(obj, path, check)
    security = check_security_context(obj, path, check, pod.security)
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


def _check_container_restart_policy(obj: dict, path: tuple, check: Checker,
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


def _check_env(obj: dict, path: tuple, check: Checker) -> list[EnvVar]:
    """Container env: [{name, value | valueFrom}] (configrefs.py checks valueFrom)."""
    env: list[EnvVar] = []
    first_line: dict[str, int | None] = {}
    for where, item in check.maps(obj, "env", path, "an env entry (a map with name and value)"):
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


def _check_ports(obj: dict, path: tuple, check: Checker) -> list[Port]:
    """Container ports: each one alone, then names unique in the container."""
    ports: list[Port] = []
    first_line: dict[str, int | None] = {}
    for where, item in check.maps(obj, "ports", path, "a port (a map with containerPort)"):
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


def _check_port(obj: dict, path: tuple, check: Checker) -> Port | None:
    """ContainerPort; None if it has errors."""
    before = len(check.errors)
    suggested = check.fields(obj, path, "port")
    number = check.integer(obj, "containerPort", path, 1, 65535)
    if obj.get("containerPort") is None and "containerPort" not in suggested:
        check.error(path + ("containerPort",), "required field is missing")
    protocol = check.enum(obj, "protocol", path, PROTOCOLS) or "TCP"
    name = check.get(obj, "name", path, str)
    if name is not None:
        for message in iana_svc_name_problems(name):
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
