"""minipod.netns: the pod network.

    bridge       the bridge and each pod's veth pair (netlink, pyroute2)
    ipam         one IPv4 address per pod from the pod subnet (a file per lease)
    hostport     hostPort DNAT and the pods' masquerade (nftables `ip minipod`)
    antispoof    a pod's veth sends only as the pod: its MAC, its IP, ARP for
                 itself, no IPv6 (nftables `bridge minipod`)
    portforward  `minipod port-forward`: a socket made in the pod's netns
"""
