"""The checks of security contexts: the pod's, and each container's on top.

    check_pod_security(spec, check) -> {field: value} containers inherit
    check_security_context(container, path, check, pod) -> SecurityContext

The container's fields win over the pod's (the kubelet's
DetermineEffectiveSecurityContext); fsGroup and supplementalGroups are the
pod's only. Capabilities are written as Kubernetes writes them ("NET_ADMIN",
no CAP_ prefix); seccompProfile is RuntimeDefault unless Unconfined.
Contradictions the kubelet would refuse at start (runAsNonRoot with
runAsUser 0, no privilege escalation for a privileged container) are
errors here, before anything starts.
"""
from __future__ import annotations

from minipod.runtime.api.checker import Checker, describe, is_type, suggest
from minipod.runtime.api.fields import CAPABILITIES, MAX_ID, SECCOMP_TYPES
from minipod.runtime.api.podtypes import SecurityContext


def check_pod_security(spec: dict, check: Checker) -> dict:
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
        if not is_type(gid, int):
            check.error(at, f"expected an integer, got {describe(gid)}")
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


def check_security_context(container: dict, path: tuple, check: Checker,
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
                        check: Checker) -> list[str]:
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
            guess = suggest(bare, CAPABILITIES)
            message += (f'; did you mean "{guess}"?' if guess else
                        "; see capabilities(7), without the CAP_ prefix")
        check.error(path + ("capabilities", key, i), message)
    return names


def _check_seccomp(obj: dict, path: tuple, check: Checker) -> str | None:
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
