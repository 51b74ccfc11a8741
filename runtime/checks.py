"""`inspect pod NAME --check`: the claims of the user's notes, tested on a real pod.

Each check acts inside the pod (a forked child that setns()es into the
pod's namespaces, or the containers' own roots through /proc/PID/root)
and reports what it saw, so the evidence is the kernel's, not minipod's:

  1. one network namespace: every container has the same net inode, so
     the same IP and port space: a second bind of a port the pod uses fails
  2. one IPC and one UTS namespace: same inodes, one hostname
  3. file systems are not shared: a file made in one container's root is
     absent from another's, unless it is on a volume they both mount
  4. each container is PID 1 of its own PID namespace (unless
     shareProcessNamespace)
  5. a flat network: from inside this pod, another pod (or the host) is
     reached by its IP, with no NAT in between
"""
from __future__ import annotations

import errno
import os
import socket
import uuid

from minipod.linux import fork


def _in_netns(netns: str, action) -> str:
    """Run action() in a forked child inside the network namespace `netns`;
    return its result (a short string) or raise with its error."""
    return fork.call(lambda: (0, str(action())), netns=netns)


def check_port_space(report: dict) -> tuple[bool, str]:
    nets = {c["namespaces"]["net"] for c in report["live"]}
    if len(nets) != 1:
        return False, f"containers are in {len(nets)} network namespaces: {sorted(nets)}"

    def double_bind():
        a = socket.socket()
        a.bind(("0.0.0.0", 0))
        a.listen()
        port = a.getsockname()[1]
        b = socket.socket()
        try:
            b.bind(("0.0.0.0", port))
            return f"second bind of {port} succeeded"
        except OSError as e:
            return f"second bind of port {port} in the pod: {errno.errorcode.get(e.errno)}"
    seen = _in_netns(report["netnsPath"], double_bind)
    ok = "EADDRINUSE" in seen
    return ok, (f"{len(report['live'])} containers, one net namespace {nets.pop()}, "
                f"one IP {report['podIP']}; {seen}")


def check_ipc_uts(report: dict) -> tuple[bool, str]:
    ipc = {c["namespaces"]["ipc"] for c in report["live"]}
    uts = {c["namespaces"]["uts"] for c in report["live"]}
    names = set()
    for c in report["live"]:
        with open(f"/proc/{c['hostPID']}/root/etc/hostname") as f:
            names.add(f.read().strip())
    ok = len(ipc) == 1 and len(uts) == 1 and len(names) == 1
    return ok, f"ipc namespaces {sorted(ipc)}, uts namespaces {sorted(uts)}, hostnames {sorted(names)}"


def check_files(report: dict, volumes: dict[str, list[tuple[str, str]]]) -> tuple[bool, str]:
    live = report["live"]
    if len(live) < 2:
        return True, "one container: nothing to share (needs two to show it)"
    a, b = live[0], live[1]
    name = f"minipod-check-{uuid.uuid4().hex[:8]}"
    seen = _crosses(a, "/tmp", b, "/tmp", name)
    evidence = f"/tmp/{name} made in {a['name']} is {'VISIBLE' if seen else 'absent'} in {b['name']}"
    ok = not seen
    shared = [(v, ma, mb) for v, mounts in volumes.items()
              for ca, ma in mounts if ca == a["name"]
              for cb, mb in mounts if cb == b["name"]]
    if shared:
        vol, ma, mb = shared[0]
        on_volume = _crosses(a, ma, b, mb, name)
        evidence += (f"; on volume {vol} ({a['name']}:{ma}, {b['name']}:{mb}) it is "
                     f"{'visible' if on_volume else 'ABSENT'}")
        ok = ok and on_volume
    return ok, evidence


def _crosses(a: dict, dir_a: str, b: dict, dir_b: str, name: str) -> bool:
    """Make a file in container a's dir_a; does container b see it in dir_b?
    Both roots are reached through /proc/PID/root; the file is removed."""
    path = f"/proc/{a['hostPID']}/root{dir_a}/{name}"
    try:
        with open(path, "w") as f:
            f.write("check\n")
        return os.path.exists(f"/proc/{b['hostPID']}/root{dir_b}/{name}")
    finally:
        os.unlink(path)


def check_pid1(report: dict, shared_pid: bool) -> tuple[bool, str]:
    inside = {c["name"]: c["pidInside"] for c in report["live"]}
    if shared_pid:
        pids = {c["namespaces"]["pid"] for c in report["live"]}
        return len(pids) == 1, f"shareProcessNamespace: one PID namespace {pids}; pids {inside}"
    ok = all(p == 1 for p in inside.values())
    return ok, "PID inside each container: " + ", ".join(f"{n}={p}" for n, p in inside.items())


def check_flat_network(report: dict, other: dict | None) -> tuple[bool, str]:
    """Listen in the other pod's netns (or the host's), connect from this one."""
    if other is not None:
        target_ns, target_ip, what = other["netnsPath"], other["podIP"], f"pod {other['name']}"
    else:
        target_ns, target_ip, what = "/proc/self/ns/net", None, "the host"
    listener = {}

    def listen():
        s = listener["socket"] = socket.socket()
        s.bind(("0.0.0.0", 0))
        s.listen()
        return 0, str(s.getsockname()[1])

    def answer():  # after the port is reported: tell the caller what it looks like
        s = listener["socket"]
        s.settimeout(5)
        conn, peer = s.accept()
        conn.sendall(peer[0].encode())
        conn.close()
    child = fork.spawn(listen, netns=None if target_ns == "/proc/self/ns/net" else target_ns,
                       then=answer)
    port = child.read()
    port = int(port) if port.isdigit() else 0
    ip = target_ip or report["gateway"]

    def connect():
        with socket.create_connection((ip, port), timeout=5) as c:
            return c.recv(64).decode()
    try:
        seen_as = _in_netns(report["netnsPath"], connect)
        ok = seen_as == report["podIP"]
        evidence = (f"from this pod to {what} at {ip}:{port}: connected; "
                    f"{what} saw the caller as {seen_as} (the pod's own IP: no NAT)")
    except OSError as e:
        ok, evidence = False, f"from this pod to {what} at {ip}:{port}: {e}"
    finally:
        os.waitpid(child.pid, 0)
    return ok, evidence
