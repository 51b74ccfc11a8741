"""The checks of probes and lifecycle hooks (validateProbe, validateLifecycle).

    named_ports(container, ports) -> {port name: number}
    check_probe(container, key, path, check, named, grace) -> Probe | None
    check_lifecycle(container, path, check, named, grace) -> Lifecycle

A probe or hook runs exactly one action (ACTIONS): exec, httpGet,
tcpSocket, grpc (ignored, with a warning) or sleep (hooks only). A port may
be named ("http"): resolved here to the container's port number, and
refused when the container has no such port (the kubelet would fail every
probe). Timing fields of 0 mean Kubernetes' defaults (PROBE_DEFAULTS).
"""
from __future__ import annotations

from minipod.runtime.api.checker import Checker, describe, is_type, suggest
from minipod.runtime.api.fields import (ACTIONS, HTTP_SCHEMES, INT32_MAX, INT64_MAX,
                                        PROBE_DEFAULTS, SUPPORTED)
from minipod.runtime.api.names import HTTP_HEADER_NAME, iana_svc_name_problems
from minipod.runtime.api.podtypes import Handler, Lifecycle, Port, Probe


def named_ports(obj: dict, ports: list[Port]) -> dict[str, int | None]:
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


def check_probe(container: dict, key: str, path: tuple, check: Checker,
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


def check_lifecycle(container: dict, path: tuple, check: Checker,
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


def _check_handler(obj: dict, path: tuple, check: Checker, level: str,
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


def _check_port_ref(action: dict, path: tuple, check: Checker,
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
    if is_type(value, int):
        if 1 <= value <= 65535:
            return value
        check.error(where, f"must be between 1 and 65535, got {value}")
        return None
    if not isinstance(value, str) or not names_allowed:
        what = "a port number or name" if names_allowed else "an integer"
        check.error(where, f"expected {what}, got {describe(value)}")
        return None
    problems = iana_svc_name_problems(value)
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
        guess = suggest(value, named)
        if guess:
            message += f'; did you mean "{guess}"?'
    else:
        message = (f'no port named "{value}" in this container: name one of '
                   f"its ports (ports: [{{containerPort: 8080, name: "
                   f"{value}}}]) or use the number")
    check.error(where, message)
    return None


def _check_http_headers(action: dict, path: tuple,
                        check: Checker) -> list[tuple[str, str]]:
    """httpGet.httpHeaders: [{name, value}], names as HTTP allows them."""
    headers = []
    for where, item in check.maps(action, "httpHeaders", path,
                                  "an HTTP header (a map with name and value)"):
        suggested = check.fields(item, where, "httpHeader")
        name = check.require(item, "name", where, str, suggested)
        value = check.get(item, "value", where, str) or ""
        if name is not None and not HTTP_HEADER_NAME.fullmatch(name):
            check.error(where + ("name",), f'invalid HTTP header name '
                        f'"{name}": use only letters, digits and "-"')
        elif name is not None:
            headers.append((name, value))
    return headers
