"""minipod.netns: the pod network.

    bridge       the bridge and each pod's veth pair (netlink requests)
    rtnl         rtnetlink: the few messages bridge sends, on AF_NETLINK + struct
    podnetlink   a netlink socket made inside a pod's netns (setns and straight back)
    ipam         one IPv4 address per pod from the pod subnet (a file per lease)
    hostport     hostPort DNAT and the pods' masquerade (nftables `ip minipod`)
    antispoof    a pod's veth sends only as the pod: its MAC, its IP, ARP for
                 itself, no IPv6 (nftables `bridge minipod`)
    portforward  `minipod port-forward`: a socket made in the pod's netns
    relay        port-forward's relay: two sockets joined by splice(2)
    workers      port-forward's reused threads inside the pod's netns

Rules that bite: a veth name is at most 15 bytes (so it is a hash of the
pod uid, and the ifalias carries the instance identity); a pinned netns
lives only while something holds it (a bind mount on a file in
/run/netns); nftables tables are shared by every minipod on the machine, so
each rule and element carries its owner in its comment.

Check by hand: `ip netns list`, `ip -d link show master minipod0`,
`ip -n minipod-ID-KEY addr`, `nft list table ip minipod`,
`nft list table bridge minipod`.
"""
