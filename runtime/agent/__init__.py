"""minipod.runtime.agent: the kubelet of this node, one process for all pods.

A selectors loop (no threads: it forks containers) that owns every pod's
record under RUN/pods, starts and restarts containers, relays their output
into CRI log files, runs probes, evicts, re-adopts pods after its own
restart, and collects the orphans of crashed runs (gc).

    agent.py       Agent: the managers put together; serve(), main()
    server.py      the unix socket: one JSON request, op_* answers
    pods.py        create_pod, delete_pod, teardown, namespace deletion, events
    worker.py      the per-pod sync: what starts next, exits, restarts, sidecars
    images.py      the pull policy, pulls in child processes, their back-off
    prober.py      startup/liveness/readiness probes, postStart hooks
    output.py      the output relay: output files -> CRI log files
    adopt.py       re-adoption of the pods a previous agent left
    running.py     RunningContainer: what is held for one live container
    loop.py        the selectors loop and its timers (a clock a test can drive)
    node.py        Node: every kernel call the managers make, one seam
    backoff.py     the kubelet's back-off (restarts and pulls)
    eviction.py    emptyDir sizeLimit and ephemeral-storage
    gc.py          orphans that carry this instance's identity

Dependencies point one way: server -> pods -> worker -> images | prober |
output -> running, loop, node, backoff.

Check by hand: `minipod agent status`; its log is RUN/agent.log; `ps -o
pid,cmd -p $(cat RUN/agent.pid)`.
"""
