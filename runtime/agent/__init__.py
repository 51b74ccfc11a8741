"""minipod.runtime.agent: the kubelet of this node, one process for all pods.

A selectors loop (no threads: it forks containers) that owns every pod's
record under RUN/pods, starts and restarts containers, relays their output
into CRI log files, runs probes, evicts, re-adopts pods after its own
restart, and collects the orphans of crashed runs (gc).

    agent.py       Agent: the managers put together; serve(), main()
    server.py      the unix socket: one JSON request, op_* answers
    pods.py        create_pod, delete_pod, teardown, namespace deletion
    adopt.py       re-adoption of the pods a previous agent left
    worker.py      the per-pod sync: what starts next, exits, restarts, sidecars
    spec.py        a container's ProcessSpec (rootfs plan, env, security, argv)
    images.py      the pull policy; Puller: pulls in child processes
    prober.py      startup/liveness/readiness probes, postStart hooks
    output.py      OutputRelay: output files -> CRI log files
    store.py       PodStore: records, parsed manifests, events, saving
    running.py     RunningContainer: what is held for one live container
    loop.py        Loop: the selectors loop and its timers (clocks a test drives)
    node.py        Node: every kernel call the managers make, one seam
    backoff.py     Backoff: the kubelet's back-off (restarts and pulls)
    eviction.py    emptyDir sizeLimit and ephemeral-storage
    gc.py          orphans that carry this instance's identity

Dependencies point one way: server -> pods, adopt -> worker -> spec, images,
prober, output -> store, running, loop, node, backoff. Puller, Prober
and OutputRelay are objects of their own: a pull's end and a probe's
"kill it" come back through callbacks. The others are parts of the one
Agent class; they too report up only by callback: the worker's
on_deleted_exit (a container of a deleted pod ended) is pods' finish of
the delete, wired in Agent.__init__.

Check by hand: `minipod agent status`; its log is RUN/agent.log; `ps -o
pid,cmd -p $(cat RUN/agent.pid)`.
"""
