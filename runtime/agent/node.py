"""The node: every kernel call the agent's managers make, behind one object.

The managers (pods.py, worker.py, images.py, prober.py, adopt.py) never
call the node library or the kernel themselves; they call `agent.node`:

    node.owners      .pins / .network / .processes / .dirs: create and remove
                     each kind of thing a pod holds (runtime/owners/)
    node.sandbox     .start_pause                         (runtime/sandbox.py)
    node.hostport    .claim / .add_rules                  (netns/hostport.py)
    node.volumes     .prepare                             (runtime/volumes.py)
    node.ipam, node.images, node.cgroups                  IPAM, ImageStore, cgroup driver
    node.attach(netns, ifname, ip)                        the veth on the bridge
    node.start_nat() / ensure_nat(required) / nat_in_place() / node.host_ip() / node.remove_idle_network()
    node.launch(spec).wait() -> pid                       runtime/container.py launch
    node.kill(pid, sig) / node.alive(pid, start) / node.start_time(pid) / node.pidfd_open(pid)
    node.wait_any() -> (pid, exit code) | None            reap one exited child
    node.fork_check(...) / node.spawn_pull(ref) / node.fork_measure(checks)   helper children

So tests/unit/test_agent_lifecycle.py passes a fake with the same
attributes that records the calls and makes up pids and exits, and runs
the agent's real pod lifecycle without root or kernel objects.
"""
from __future__ import annotations

import os
import socket
import sys

from minipod import cgroups
from minipod.linux import proc
from minipod.netns import bridge, hostport, rtnl
from minipod.netns.ipam import IPAM
from minipod.rootfs.store import ImageStore
from minipod.runtime import container as ctr
from minipod.runtime import owners, probes, sandbox, volumes
from minipod.runtime.agent import eviction
from minipod.runtime.agent.loop import log
from minipod.runtime.paths import Paths


class Node:
    """This machine's kernel, as the agent uses it (see the module doc)."""

    sandbox, hostport, volumes, owners = sandbox, hostport, volumes, owners

    def __init__(self, paths: Paths):
        self.paths = paths
        self.net = bridge.NetworkConfig(
            bridge=os.environ.get("MINIPOD_BRIDGE", "minipod0"),
            subnet=os.environ.get("MINIPOD_SUBNET", "10.89.0.0/16"))
        self.ipam = IPAM(paths.ipam, self.net.subnet)
        self.images = ImageStore(paths.images)
        self.cgroups = cgroups.detect(parent=paths.cgroup_parent)
        self._ipr = None
        self._nat_ready = False
        self._nat_started = None        # ensure_nat's nft run, until nat_in_place
        self._bridge_ready = False

    @property
    def ipr(self) -> rtnl.Rtnl:
        """The host's netlink socket, opened on first use."""
        if self._ipr is None:
            self._ipr = rtnl.Rtnl()
        return self._ipr

    def attach(self, netns_path: str, ifname: str, ip: str):
        """Plug the pod into the bridge, making the bridge the first time (or
        again, if someone deleted it while the agent ran)."""
        for attempt in (1, 2):
            if not self._bridge_ready:
                bridge.ensure_bridge(self.ipr, self.net, str(self.ipam.gateway),
                                     self.ipam.prefixlen)
                self._bridge_ready = True
            try:
                return bridge.attach_pod(self.ipr, self.net, netns_path, ifname, ip,
                                         self.ipam.prefixlen, str(self.ipam.gateway),
                                         alias=self.paths.identity.tag)
            except bridge.NetworkError as e:
                if attempt == 2 or "look up bridge" not in str(e):
                    raise
                self._bridge_ready = self._nat_ready = False

    def ensure_nat(self, required: bool) -> None:
        """The pod network's NAT table (masquerade out, hostPort hairpin),
        once per agent. Only pods with hostPorts fail without it
        (hostport.HostPortError): for them it is waited for at once."""
        self.start_nat()
        if required:                # hostPort rules go into its table next
            self.nat_in_place(required)
            if not self._nat_ready:   # it could not start: again, its error said
                hostport.add_network(self.net.bridge, self.net.subnet)
                self._nat_ready = True

    def start_nat(self) -> None:
        """Start the NAT table's nft run, if it is not there yet; it goes on
        while the pod is made (nat_in_place waits). Started early: it takes
        15-30 ms here, the kernel's RCU grace periods as it commits base chains."""
        if self._nat_ready or self._nat_started is not None:
            return
        try:
            self._nat_started = hostport.start_network(self.net.bridge, self.net.subnet)
        except hostport.HostPortError as e:
            log(f"warning: no NAT for the pod network (pods cannot reach out): {e}")

    def nat_in_place(self, required: bool = False) -> None:
        """Wait for the NAT ensure_nat started (before any process of the pod
        runs: a connection made before masquerade would keep its source)."""
        started, self._nat_started = self._nat_started, None
        if started is None:
            return
        try:
            hostport.finish_network(started)
            self._nat_ready = True
        except hostport.HostPortError as e:
            if required:
                raise
            log(f"warning: no NAT for the pod network (pods cannot reach out): {e}")

    def host_ip(self) -> str | None:
        for addr in self.ipr.addrs(socket.AF_INET):
            ip = addr.address or ""
            if ip and not ip.startswith("127.") and (addr.label or "") != self.net.bridge:
                return ip
        return str(self.ipam.gateway)

    def remove_idle_network(self) -> None:
        """No pod left: leave the host as it was before the first pod, unless
        another minipod's pods are plugged into the same bridge."""
        if self._ipr is None:
            return
        if not bridge.pod_links(self.ipr, self.net):
            if self._nat_ready:
                hostport.remove_network(self.net.bridge, self.net.subnet)
            bridge.delete_bridge(self.ipr, self.net)
            log(f"no pods left; removed bridge {self.net.bridge}")

    # ---- processes ---------------------------------------------------------

    def launch(self, spec: ctr.ProcessSpec) -> ctr.Launch:
        """Fork a container's children (runtime/container.py); .wait() gives
        its pid once it exec'd."""
        return ctr.launch(spec)

    def kill(self, pid: int, sig: int) -> None:
        os.kill(pid, sig)

    def alive(self, pid, start) -> bool:
        return proc.alive(pid, start)

    def start_time(self, pid: int):
        return proc.start_time(pid)

    def pidfd_open(self, pid: int) -> int:
        return os.pidfd_open(pid)

    def wait_any(self) -> tuple[int, int] | None:
        """Reap one exited child: (pid, exit code as waitstatus_to_exitcode
        gives it), or None when none is left to reap now."""
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return None
        if pid == 0:
            return None
        return pid, os.waitstatus_to_exitcode(status)

    def fork_check(self, handler, pod_ip, target, timeout: float) -> tuple[int, int]:
        """A probe or hook check in a forked child (runtime/probes.py): (pid, fd)."""
        return probes.fork_check(handler, pod_ip, target, timeout)

    def fork_measure(self, checks) -> tuple[int, int]:
        """The disk usage walk in a child (eviction.py): (pid, fd)."""
        return eviction.fork_measure(checks)

    def spawn_pull(self, ref: str) -> tuple[int, int]:
        """`minipod pull -q REF` as a child process: (pid, read end of its stderr)."""
        r, w = os.pipe()
        pid = os.posix_spawn(sys.executable, [sys.executable, "-m", "minipod", "pull",
                                              "-q", ref], dict(os.environ), file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
            (os.POSIX_SPAWN_DUP2, w, 2)])
        os.close(w)
        return pid, r
