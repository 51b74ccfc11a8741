"""`minipod port-forward POD [LOCAL:]REMOTE... [--address A,B]`, like kubectl's.

    minipod port-forward web 8080:80          local 8080 -> port 80 in the pod
    minipod port-forward pod/web 8080         local 8080 -> 8080
    minipod port-forward web :80              a random local port, printed
    minipod port-forward web 8080:http        a named containerPort
    minipod port-forward web 8080 9090 --address 127.0.0.1,10.0.0.5

Local addresses default to localhost (127.0.0.1, and ::1 when the kernel
has IPv6): a pod is never exposed on all interfaces unless asked. Runs
until Ctrl-C (exit 0), or until the pod is deleted (exit 1). The forwarder
itself is minipod.netns.portforward; this module parses, finds the pod, and
reports.
"""
from __future__ import annotations

import collections

from minipod.runtime.api import podstatus
from minipod.runtime.cli.cmdutil import (CommandError, add_namespace, namespace_of, pod_key_of,
                                     read_pod, require_root)

# One `[LOCAL:]REMOTE`: remote is a number or a containerPort name (resolved
# against the pod's manifest); local 0 is a random port, None the number the
# remote name stands for (`http` alone). A namedtuple, not a dataclass: every
# command imports this module, and dataclasses costs ~13 ms to import.
PortSpec = collections.namedtuple("PortSpec", ["local", "remote"])


def register(sub) -> None:
    p = sub.add_parser(
        "port-forward", help="forward local ports to a pod",
        description="Like `kubectl port-forward`: listen on local ports and forward each "
                    "connection to a port inside the pod (to its localhost, so a server "
                    "bound to the pod's 127.0.0.1 is reachable too). Runs until Ctrl-C.")
    p.add_argument("pod", metavar="POD|pod/POD")
    p.add_argument("ports", nargs="*", metavar="[LOCAL:]REMOTE",
                   help="8080:80, 8080 (same port), :80 (a random local port)")
    p.add_argument("--address", action="append", metavar="ADDR[,ADDR]",
                   help="local addresses to listen on, comma separated: IP addresses or "
                        "localhost (127.0.0.1 and ::1); default localhost")
    add_namespace(p)
    p.set_defaults(func=run)


# -- parsing: pure ----------------------------------------------------------------

def parse_pod(arg: str) -> str:
    """`web`, `pod/web`, `pods/web`, `po/web` -> web."""
    kind, slash, name = arg.partition("/")
    if not slash:
        return arg
    if kind not in ("pod", "pods", "po"):
        raise CommandError(f'cannot port-forward to {arg}: minipod knows pods only '
                           f'(pod/NAME or NAME), not "{kind}"', 2)
    if not name:
        raise CommandError(f"cannot port-forward to {arg}: the pod name is missing", 2)
    return name


def parse_port(spec: str) -> PortSpec:
    """kubectl's forms: `8080:80`, `8080`, `:80`, `0:80`, `8080:http`, `http`."""
    local_text, colon, remote_text = spec.partition(":")
    if not colon:
        local_text, remote_text = None, spec          # one port: the same on both ends
    if ":" in remote_text:
        raise CommandError(f'invalid port "{spec}": expected [LOCAL:]REMOTE, '
                           'e.g. 8080:80 or :80', 2)
    if remote_text.isdigit():
        remote: int | str = _port_number(remote_text, spec, "remote", allow_zero=False)
    elif _is_port_name(remote_text):
        remote = remote_text
    else:
        raise CommandError(f'invalid port "{spec}": remote port "{remote_text}" is neither '
                           'a number (1-65535) nor a containerPort name', 2)
    if local_text is None:
        local = remote if isinstance(remote, int) else None
    elif local_text == "":
        local = 0                                     # `:80`: a random local port
    else:
        local = _port_number(local_text, spec, "local", allow_zero=True)
    return PortSpec(local, remote)


def parse_addresses(values: list[str] | None) -> list[tuple[str, bool]]:
    """--address values -> [(ip, if_available)], in order, without duplicates.

    `localhost` is 127.0.0.1 and ::1, the latter skipped when the kernel has
    no IPv6 (kubectl's rule); an address given as an IP must be bindable."""
    import ipaddress
    items = [a.strip() for v in (values or ["localhost"]) for a in v.split(",")]
    out: list[tuple[str, bool]] = []
    for item in items:
        if item == "localhost":
            pairs = [("127.0.0.1", False), ("::1", True)]
        else:
            try:
                ip = ipaddress.ip_address(item)
            except ValueError:
                raise CommandError(f'--address: "{item}" is not an IP address or '
                                   'localhost (e.g. --address 127.0.0.1,::1)', 2) from None
            pairs = [(str(ip), False)]
        for ip, optional in pairs:
            seen = next((i for i, (o, _) in enumerate(out) if o == ip), None)
            if seen is None:
                out.append((ip, optional))
            elif not optional:
                out[seen] = (ip, False)          # named explicitly: required
    return out


def resolve_ports(specs: list[PortSpec], manifest: dict, pod: str) -> list[tuple[int, int]]:
    """(local, remote) numbers: names looked up in the pod's containerPorts
    (kubectl's convertPodNamedPortToNumber); `NAME` alone listens on the
    port number it names."""
    named = {}
    for c in (manifest.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") and p.get("name") not in named:
                named[p["name"]] = p.get("containerPort")
    out = []
    for s in specs:
        remote = s.remote
        if isinstance(remote, str):
            if remote not in named:
                raise CommandError(f"Pod '{pod}' does not have a named port '{remote}'")
            remote = int(named[remote])
        out.append((remote if s.local is None else s.local, remote))
    return out


def _port_number(text: str, spec: str, which: str, allow_zero: bool) -> int:
    low = 0 if allow_zero else 1
    if not text.isdigit() or not low <= int(text) <= 65535:
        raise CommandError(f'invalid port "{spec}": {which} port "{text}" must be a number '
                           f'from {low} to 65535', 2)
    return int(text)


def _is_port_name(text: str) -> bool:
    """An IANA service name as containerPort names are: letters, digits, '-'."""
    return (0 < len(text) <= 15 and any(ch.isalpha() for ch in text)
            and all(ch.isalnum() or ch == "-" for ch in text.lower()))


# -- the command -------------------------------------------------------------------------

def run(args, paths) -> int:
    name = parse_pod(args.pod)
    if not args.ports:
        raise CommandError("TYPE/NAME and list of ports are required for port-forward: "
                           "e.g. minipod port-forward web 8080:80", 2)
    specs = [parse_port(p) for p in args.ports]
    addresses = parse_addresses(args.address)
    require_root("port-forward")
    key = pod_key_of(args, name)
    record = _read(paths, namespace_of(args), name)
    import signal

    from minipod.runtime import state
    from minipod.runtime.cli.cmd_get import refreshed
    phase = podstatus.phase(refreshed(record))
    if phase != "Running":
        raise CommandError("unable to forward port because pod is not running. "
                           f"Current status={phase}")
    ports = resolve_ports(specs, record.manifest, name)
    uid = record.uid

    def pod_gone() -> str | None:
        try:
            now = state.read_record(paths.pod_dir(key))
        except FileNotFoundError:
            return "the pod was deleted"
        except state.StateError:
            return None                      # being rewritten: look again later
        if now.uid != uid:
            return "the pod was deleted and a new one with the same name created"
        return None

    from minipod.netns import portforward as pf
    netns = paths.netns_path(key)
    try:
        fwd = pf.PortForwarder(str(netns), ports,
                               [pf.Address(ip, optional) for ip, optional in addresses],
                               pod=name, pod_gone=pod_gone)
    except pf.ForwardError as e:
        raise CommandError(str(e)) from None
    # SIGTERM ends it as Ctrl-C does: a clean exit 0.
    previous = signal.signal(signal.SIGTERM, lambda *_: fwd.stop())
    try:
        fwd.listen()
        fwd.serve_forever()
    except KeyboardInterrupt:
        pass                                  # Ctrl-C: kubectl exits 0 too
    except pf.ForwardError as e:
        raise CommandError(str(e)) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        fwd.close()
    return 0


def _read(paths, namespace: str, name: str):
    from minipod.runtime import state
    try:
        return read_pod(paths, namespace, name)
    except FileNotFoundError:
        raise CommandError(f'Error from server (NotFound): pods "{name}" not found') from None
    except state.StateError as e:
        raise CommandError(str(e)) from None
