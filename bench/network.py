#!/usr/bin/python3
"""Pod network throughput and round-trip time, beside the kernel's own figure.

Three paths, measured in the same run, interleaved:

    host -> pod   the benchmark's namespace (the "host") to pod A's IP:
                  host's bridge address -> bridge -> veth -> pod A's eth0
    pod  -> pod   pod B to pod A: eth0 -> veth -> bridge -> veth -> eth0
    veth pair     two plain network namespaces joined by one veth pair,
                  nothing else: the kernel's floor for two namespaces

Throughput is TCP, one stream, by iperf3 (Debian's package; if it cannot
be had, a small Python sender/receiver, said so in the output). Round-trip
time is one byte there and back over one TCP connection (TCP_NODELAY),
median of many, by a small Python echo; Python's own cost is in every
path alike.

Why the servers run with `ip netns exec POD_NETNS iperf3 -s` from the host
instead of inside the containers: the busybox image has no iperf3, and a
socket's path through the kernel depends only on the network namespace it
lives in, not on the file system its process sees. Every minipod pod's
network namespace is pinned at /run/netns/NAME (`ip netns list` shows it),
so the host's iperf3 can join it, and its packets take exactly the pod's
path: its eth0, its veth, the bridge. By hand:

    ip netns exec minipod-web iperf3 -s &    # pod web's netns, the host's iperf3
    iperf3 -c 10.89.0.2 -t 3                 # host -> pod (its IP: minipod get pods -o wide)
    ip netns exec minipod-other iperf3 -c 10.89.0.2 -t 3    # pod -> pod

Runs standalone too: sudo bench/network.py [--quick] (private netns, own root).
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import IMAGE, Minipod, pod_manifest, stop_process  # noqa: E402

IPERF_PORT, ECHO_PORT, SINK_PORT = 5201, 5301, 5302
VETH_NET = ("10.78.0.1", "10.78.0.2", 24)

# Echo (1 byte back for each byte) and sink (counts bytes until EOF, answers
# the count): the Python servers, started with `ip netns exec NS python3 -c`.
SERVER = r"""
import socket, sys, threading
def echo(c):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while (b := c.recv(1)):
        c.sendall(b)
    c.close()
def sink(c):
    buf = bytearray(1 << 20); total = 0
    while (n := c.recv_into(buf)):
        total += n
    c.sendall(total.to_bytes(8, "big")); c.close()
def serve(port, fn):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(16)
    while True:
        c, _ = s.accept()
        threading.Thread(target=fn, args=(c,), daemon=True).start()
threading.Thread(target=serve, args=(%d, sink), daemon=True).start()
print("ready", flush=True)
serve(%d, echo)
""" % (SINK_PORT, ECHO_PORT)

# The clients, run in the client's namespace; each prints one JSON line.
RTT_CLIENT = r"""
import json, socket, sys, time, statistics
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection((host, port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
out = []
for _ in range(n):
    t = time.perf_counter(); s.sendall(b"x"); s.recv(1); out.append(time.perf_counter() - t)
print(json.dumps({"rtt_us": statistics.median(out[n // 10:]) * 1e6}))
"""
BLAST_CLIENT = r"""
import json, socket, sys, time
host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
buf = memoryview(bytes(1 << 20)); sent = 0
s = socket.create_connection((host, port))
t = time.perf_counter(); end = t + seconds
while time.perf_counter() < end:
    sent += s.send(buf)
s.shutdown(socket.SHUT_WR)
got = int.from_bytes(s.recv(8), "big"); dt = time.perf_counter() - t
print(json.dumps({"gbit": got * 8 / dt / 1e9, "sent": sent}))
"""


def in_netns(netns: str | None, cmd: list[str]) -> list[str]:
    """`ip netns exec NETNS CMD…`, or CMD itself for the benchmark's own namespace."""
    return ["ip", "netns", "exec", netns, *cmd] if netns else cmd


class Route:
    """One measured path: the servers' netns, the client's netns (None: ours), the target IP."""

    def __init__(self, name: str, server_ns: str, client_ns: str | None, ip: str):
        self.name, self.server_ns, self.client_ns, self.ip = name, server_ns, client_ns, ip


class Network:
    """The servers and plain namespaces of one measurement; `close` undoes all."""

    def __init__(self, iperf: bool):
        self.iperf = iperf
        self.procs: list[subprocess.Popen] = []
        self.netns: list[str] = []

    def start_servers(self, netns: str) -> None:
        p = subprocess.Popen(in_netns(netns, [sys.executable, "-c", SERVER]),
                             stdout=subprocess.PIPE, text=True)
        self.procs.append(p)
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the Python echo server did not start in netns {netns}")
        if self.iperf:
            p = subprocess.Popen(in_netns(netns, ["iperf3", "-s", "-p", str(IPERF_PORT)]),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.procs.append(p)

    def wait_port(self, path: Route, port: int, timeout: float = 10) -> None:
        """iperf3 -s has no "ready" line: wait until it accepts (from the client's side)."""
        probe = ("import socket,sys,time\nfor _ in range(500):\n try:\n"
                 "  socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close(); break\n"
                 " except OSError: time.sleep(0.02)\nelse: sys.exit(1)")
        subprocess.run(in_netns(path.client_ns, [sys.executable, "-c", probe, path.ip,
                                                 str(port)]), check=True, timeout=timeout)

    def veth_pair(self) -> tuple[str, str]:
        """Two namespaces and one veth pair between them:
            ip netns add A; ip netns add B
            ip link add va netns A type veth peer name vb netns B
            ip -n A addr add 10.78.0.1/24 dev va; ip -n A link set va up (B likewise)"""
        a, b = (f"mpbench-veth-{os.getpid()}-{x}" for x in "ab")
        for ns in (a, b):
            subprocess.run(["ip", "netns", "add", ns], check=True)
            self.netns.append(ns)
            subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "link", "add", "va", "netns", a, "type", "veth", "peer", "name",
                        "vb", "netns", b], check=True)
        ip_a, ip_b, prefix = VETH_NET
        for ns, dev, ip in ((a, "va", ip_a), (b, "vb", ip_b)):
            subprocess.run(["ip", "-n", ns, "addr", "add", f"{ip}/{prefix}", "dev", dev],
                           check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", dev, "up"], check=True)
        return a, b

    def throughput(self, path: Route, seconds: float) -> float:
        """Gbit/s of one TCP stream from the client's namespace to path.ip."""
        if self.iperf:
            out = subprocess.run(in_netns(path.client_ns, [
                "iperf3", "-c", path.ip, "-p", str(IPERF_PORT), "-t", str(seconds), "-J"]),
                capture_output=True, text=True, timeout=seconds + 30)
            doc = json.loads(out.stdout or "{}")
            if out.returncode != 0 or "end" not in doc:
                raise RuntimeError(f"iperf3 -c {path.ip} ({path.name}): "
                                   f"{doc.get('error') or out.stderr.strip()}")
            return doc["end"]["sum_received"]["bits_per_second"] / 1e9
        out = subprocess.run(in_netns(path.client_ns, [
            sys.executable, "-c", BLAST_CLIENT, path.ip, str(SINK_PORT), str(seconds)]),
            capture_output=True, text=True, check=True, timeout=seconds + 30)
        return json.loads(out.stdout)["gbit"]

    def rtt(self, path: Route, n: int) -> float:
        """Median µs of a 1-byte TCP round trip."""
        out = subprocess.run(in_netns(path.client_ns, [
            sys.executable, "-c", RTT_CLIENT, path.ip, str(ECHO_PORT), str(n)]),
            capture_output=True, text=True, check=True, timeout=120)
        return json.loads(out.stdout)["rtt_us"]

    def close(self) -> None:
        for p in self.procs:
            stop_process(p)
        for ns in self.netns:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def run(mp: Minipod, rounds: int, seconds: float, rtts: int,
        iperf: bool) -> tuple[dict[str, list[float]], dict[str, str], str]:
    """Measure the three paths. Returns ({case: values}, {case: error}, tool used)."""
    from common import interleave
    net = Network(iperf)
    pods = [f"mpbench-net-{x}-{os.getpid()}" for x in "ab"]
    try:
        for pod in pods:
            mp("run", str(mp.write(pod, pod_manifest(pod, IMAGE))))
        ns_a, ns_b = (mp.netns(p) for p in pods)
        ip_a = mp.pod_ip(pods[0])
        va, vb = net.veth_pair()
        paths = [Route("host -> pod", ns_a, None, ip_a),
                 Route("pod -> pod", ns_a, ns_b, ip_a),
                 Route("veth pair", va, vb, VETH_NET[0])]
        for ns in (ns_a, va):
            net.start_servers(ns)
        for p in paths:
            net.wait_port(p, IPERF_PORT if iperf else SINK_PORT)
        cases = {}
        for p in paths:
            cases[f"tput {p.name}"] = lambda p=p: net.throughput(p, seconds)
            cases[f"rtt {p.name}"] = lambda p=p: net.rtt(p, rtts)
        values, errors = interleave(cases, rounds, progress="network")
        return values, errors, "iperf3" if iperf else "Python sender"
    finally:
        net.close()
        for pod in pods:
            mp("delete", "pod", pod, "--grace-period", "0", check=False)


def main() -> int:
    import argparse

    from common import ensure_tools, in_private_netns, reexec_in_private_netns
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/network.py needs root: sudo bench/network.py", file=sys.stderr)
        return 3
    if not in_private_netns():
        ensure_tools({"iperf3": "iperf3"})   # apt needs the host's network: before unshare
        return reexec_in_private_netns([sys.executable, *sys.argv])
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from imagebuild import build_busybox_rootfs
    mp = Minipod()
    try:
        rootfs = build_busybox_rootfs(mp.root / "rootfs")
        mp("image", "import", str(rootfs), IMAGE)
        values, errors, tool = run(mp, 1 if args.quick else 3, 2 if args.quick else 4,
                                   2000 if args.quick else 10000, bool(shutil.which("iperf3")))
        print(f"throughput by {tool}")
        for case, v in values.items():
            unit = "Gbit/s" if case.startswith("tput") else "µs"
            if v:
                print(f"{case:22} median {statistics.median(v):8.2f} {unit}  "
                      f"min {min(v):.2f}  max {max(v):.2f}  (n={len(v)})")
        for case, e in errors.items():
            print(f"{case}: failed: {e}")
    finally:
        mp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
