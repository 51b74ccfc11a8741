"""`minipod describe pod NAME`: the pod in kubectl's describe layout, with events.

Reads the state record only (no agent). The events are the ones the agent
recorded: Scheduled, Pulled, Created, Started, Killing, BackOff, Failed…
"""
from __future__ import annotations

import time

from minipod.runtime.api import podstatus
from minipod.runtime.cli.cmdutil import CommandError, add_namespace, namespace_of


def register(sub) -> None:
    p = sub.add_parser("describe", help="show a pod in detail, with its events",
                       description="Like `kubectl describe pod NAME`.")
    p.add_argument("kind", metavar="pod|pod/NAME")
    p.add_argument("names", nargs="*", metavar="NAME")
    add_namespace(p, all_namespaces=True)
    p.set_defaults(func=run)


def run(args, paths) -> int:
    from minipod.runtime.cli.cmd_get import load, resource_names
    names = resource_names(args.kind, args.names)
    records = load(paths, names, namespace_of(args), getattr(args, "all_namespaces", False))
    if not records:
        raise CommandError("No resources found" + ("" if args.all_namespaces else
                                                   f" in {namespace_of(args)} namespace") + ".")
    print("\n\n".join(describe(r) for r in records))
    return 0


def _when(iso: str | None) -> str:
    """kubectl's RFC 1123 time: Wed, 25 Nov 2026 13:09:15 +0000."""
    if not iso:
        return "<unknown>"
    t = time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", t)


def _map(d: dict | None, indent: int) -> list[str]:
    if not d:
        return ["<none>"]
    return [f"{k}={v}" for k, v in sorted(d.items())]


def _state_lines(state: dict, label: str) -> list[str]:
    (kind, detail), = state.items() if state else (("waiting", {}),)
    lines = [f"    {label}:{' ' * (max(1, 15 - len(label)))}{kind.capitalize()}"]
    if kind == "running":
        lines.append(f"      Started:      {_when(detail.get('startedAt'))}")
    elif kind == "terminated":
        lines.append(f"      Reason:       {detail.get('reason') or ''}")
        if detail.get("message"):
            lines.append(f"      Message:      {detail['message']}")
        code = detail.get("exitCode")
        lines.append(f"      Exit Code:    {'<unknown>' if code is None else code}")
        lines.append(f"      Started:      {_when(detail.get('startedAt'))}")
        lines.append(f"      Finished:     {_when(detail.get('finishedAt'))}")
    elif detail.get("reason"):
        lines.append(f"      Reason:       {detail['reason']}")
    return lines


def _env_line(e: dict) -> str:
    """One variable as kubectl describe shows it: a value from a Secret or
    ConfigMap is named, never shown (describe.go describeContainerEnvVars)."""
    src = e.get("valueFrom")
    if not isinstance(src, dict):
        return f"      {e['name']}:  {e.get('value', '')}"
    for key, what in (("secretKeyRef", "in secret"), ("configMapKeyRef", "of config map")):
        ref = src.get(key)
        if isinstance(ref, dict):
            return (f"      {e['name']}:  <set to the key '{ref.get('key')}' {what} "
                    f"'{ref.get('name')}'>  Optional: {str(bool(ref.get('optional'))).lower()}")
    if isinstance(src.get("fieldRef"), dict):
        ref = src["fieldRef"]
        return f"      {e['name']}:   ({ref.get('apiVersion', 'v1')}:{ref.get('fieldPath')})"
    ref = src.get("resourceFieldRef") or {}
    return f"      {e['name']}:  ({ref.get('resource')})"


def _env_from_line(e: dict) -> str:
    kind = "ConfigMap" if "configMapRef" in e else "Secret"
    ref = e.get("configMapRef") or e.get("secretRef") or {}
    prefix = f" with prefix '{e['prefix']}'" if e.get("prefix") else ""
    return (f"      {ref.get('name')}  {kind}{prefix}  Optional: "
            f"{str(bool(ref.get('optional'))).lower()}")


def _status(meta: dict, status: dict) -> str:
    """kubectl describe: Terminating while a deleted pod's phase is not final."""
    if meta.get("deletionTimestamp") and status["phase"] not in ("Succeeded", "Failed"):
        return "Terminating"
    return status["phase"]


def _containers(label: str, containers: list[dict], statuses: list[dict]) -> list[str]:
    """One section of containers (kubectl describe.go's describeContainers):
    "Init Containers:" and "Containers:" are laid out alike."""
    out = [f"{label}:" + ("" if containers else " <none>")]
    by_name = {c["name"]: c for c in statuses}
    for c in containers:
        cs = by_name.get(c["name"], {})
        out.append(f"  {c['name']}:")
        if cs.get("containerID"):
            out.append(f"    Container ID:   {cs['containerID']}")
        out.append(f"    Image:          {c.get('image')}")
        out.append(f"    Image ID:       {cs.get('imageID', '')}")
        ports = c.get("ports") or []
        out.append("    Port:           " + (", ".join(
            f"{p['containerPort']}/{p.get('protocol', 'TCP')}" for p in ports) or "<none>"))
        out.append("    Host Port:      " + (", ".join(
            f"{p.get('hostPort', 0)}/{p.get('protocol', 'TCP')}" for p in ports) or "<none>"))
        if c.get("command"):
            out.append("    Command:")
            out += [f"      {a}" for a in c["command"]]
        if c.get("args"):
            out.append("    Args:")
            out += [f"      {a}" for a in c["args"]]
        out += _state_lines(cs.get("state", {}), "State")
        if cs.get("lastState"):
            out += _state_lines(cs["lastState"], "Last State")
        out.append(f"    Ready:          {cs.get('ready', False)}")
        out.append(f"    Restart Count:  {cs.get('restartCount', 0)}")
        env = c.get("env") or []
        env_from = c.get("envFrom") or []
        if env_from:
            out.append("    Environment Variables from:")
            out += [_env_from_line(e) for e in env_from]
        out.append("    Environment:" + ("    <none>" if not env else ""))
        out += [_env_line(e) for e in env]
        mounts = c.get("volumeMounts") or []
        out.append("    Mounts:" + ("         <none>" if not mounts else ""))
        out += [f"      {m['mountPath']} from {m['name']} ({'ro' if m.get('readOnly') else 'rw'})"
                for m in mounts]
    return out


def describe(record) -> str:
    """`kubectl describe pod` of a PodRecord: the Pod object, and the record's events."""
    pod = podstatus.pod_object(record)
    meta, spec, status = pod["metadata"], pod["spec"], pod["status"]
    out = [
        f"Name:             {meta['name']}",
        f"Namespace:        {meta['namespace']}",
        f"Node:             {spec.get('nodeName')}/{status.get('hostIP')}",
        f"Start Time:       {_when(status.get('startTime'))}",
    ]
    labels = _map(meta.get("labels"), 18)
    out.append(f"Labels:           {labels[0]}")
    out += [f"                  {line}" for line in labels[1:]]
    annotations = _map(meta.get("annotations"), 18)
    out.append(f"Annotations:      {annotations[0]}")
    out += [f"                  {line}" for line in annotations[1:]]
    out += [
        f"Status:           {_status(meta, status)}",
    ]
    out += [f"{k.capitalize() + ':':<18}{status[k]}" for k in ("reason", "message") if status.get(k)]
    out += [
        f"IP:               {status.get('podIP') or ''}",
        "IPs:",
        f"  IP:  {status.get('podIP') or ''}" if status.get("podIP") else "  <none>",
    ]
    if spec.get("initContainers"):
        out += _containers("Init Containers", spec["initContainers"],
                           status.get("initContainerStatuses", []))
    out += _containers("Containers", spec.get("containers", []), status["containerStatuses"])
    out.append("Conditions:")
    width = max(len(c["type"]) for c in status["conditions"]) + 3
    out.append(f"  {'Type'.ljust(width)} Status")
    out += [f"  {c['type'].ljust(width)} {c['status']}" for c in status["conditions"]]
    volumes = spec.get("volumes") or []
    out.append("Volumes:" + ("            <none>" if not volumes else ""))
    for v in volumes:
        kind = next((k for k in v if k != "name"), "?")
        out.append(f"  {v['name']}:")
        out.append(f"    Type:       {kind}")
    out.append(f"QoS Class:          {status.get('qosClass', 'BestEffort')}")
    events = record.events
    out.append("Events:" + ("             <none>" if not events else ""))
    if events:
        rows = [["Type", "Reason", "Age", "From", "Message"],
                ["----", "------", "----", "----", "-------"]]
        for e in events:
            age = podstatus.age(e.last_timestamp)
            if e.count > 1:
                age = f"{age} (x{e.count} over {podstatus.age(e.first_timestamp)})"
            rows.append([e.type, e.reason, age, "minipod-agent", e.message])
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            out.append("  " + "  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
    return "\n".join(out)
