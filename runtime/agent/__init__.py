"""minipod.runtime.agent: the kubelet of this node, one process for all pods.

A selectors loop (no threads: it forks containers) that owns every pod's
record under RUN/pods, starts and restarts containers, relays their output
into CRI log files, runs probes, evicts, re-adopts pods after its own
restart, and collects the orphans of crashed runs (gc).

    agent.py       the loop, the socket server, pods, containers
    backoff.py     the kubelet's restart back-off
    eviction.py    emptyDir sizeLimit and ephemeral-storage
    gc.py          orphans that carry this instance's identity

Check by hand: `minipod agent status`; its log is RUN/agent.log; `ps -o
pid,cmd -p $(cat RUN/agent.pid)`.
"""
