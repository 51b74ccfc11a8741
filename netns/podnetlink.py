"""A netlink socket inside a pod's network namespace, made from the agent's thread.

The pod-side requests of minipod.netns.bridge need a netlink socket that
lives in the pod's namespace: a socket belongs to the namespace its
creator was in at socket(2) time and keeps it, so we setns(2) into the
pod, create the socket, and setns straight back (pyroute2's netns code does
the same in a forked child, which costs milliseconds more). The
caller's thread is outside its own namespace for two C calls, socket()
and if_nametoindex(); setns moves one thread only, so a threaded caller
may run this in a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket

from minipod.linux import namespaces
from minipod.netns.rtnl import Rtnl

POD_IFNAME = "eth0"


class NetworkError(OSError):
    """A netlink or namespace step failed: str() names the step, the object
    and the kernel's reason, e.errno holds the errno."""


@contextlib.contextmanager
def ipr_in(ns_fd: int, netns_path: str):
    """(rtnl.Rtnl, index of eth0) for the netns that ns_fd refers to.

    setns(2) moves only the calling thread; we hold our own namespace open
    and go back to it right after two C calls made inside the pod's: the
    netlink socket(2), which stays in the pod's namespace for its whole
    life, and if_nametoindex("eth0") (an ioctl, far cheaper than a netlink
    query). Failing to go back would leave the agent in a pod's namespace,
    where every later host-side call would be wrong: that error says so,
    and the agent must exit."""
    opening = f"step 2/3: open a netlink socket in {netns_path}"
    finding = f"step 2/3: find {POD_IFNAME} in {netns_path}"
    own_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    sock = failure = None
    try:
        try:
            namespaces.setns(ns_fd, namespaces.CLONE_NEWNET, netns_path)
        except OSError as e:
            raise NetworkError(e.errno, f"step 2/3: enter network namespace "
                               f"{netns_path}: {os.strerror(e.errno)}") from None
        # -- inside the pod's netns: nothing but these two calls --
        step = opening
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC,
                                 socket.NETLINK_ROUTE)
            step = finding
            index = socket.if_nametoindex(POD_IFNAME)
        except OSError as e:
            failure = (step, e)
        # -- back home --
        try:
            namespaces.setns(own_fd, namespaces.CLONE_NEWNET, "/proc/thread-self/ns/net")
        except OSError as e:
            raise NetworkError(e.errno, "cannot return to the agent's own network "
                               f"namespace after entering {netns_path}: "
                               f"{os.strerror(e.errno)}; the agent must exit") from None
    except BaseException:
        if sock is not None:
            sock.close()
        raise
    finally:
        os.close(own_fd)
    if failure is not None:
        if sock is not None:
            sock.close()
        step, e = failure
        code = e.errno or errno.ENODEV   # if_nametoindex's OSError has no errno
        raise NetworkError(code, f"{step}: {os.strerror(code)}")
    pod = Rtnl(sock)          # no multicast groups joined: this socket only asks
    try:
        yield pod, index
    finally:
        pod.close()


@contextlib.contextmanager
def open_netns(path: str):
    """An fd for the network namespace pinned at path (a bind-mounted nsfs)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise NetworkError(e.errno, f"open pod network namespace {path}: "
                           f"{e.strerror}") from None
    try:
        yield fd
    finally:
        os.close(fd)
