"""minipod.runtime: the pods themselves — the CLI's verbs, the node agent,
the Kubernetes objects, and the API server.

    cli/              the verbs: main.py (dispatch), cmd_<verb>.py, cmdutil.py,
                      resources.py (the resource words kubectl takes)
    agent/            the node agent (one process for all pods, a selectors loop
                      that forks containers): a manager per file, the kernel
                      behind node.py, backoff.py, eviction.py, gc.py
    owners/           one owner per kind of thing a pod holds (processes, cgroups,
                      pins, mounts, veth, filter, lease, hostPort rules, dirs):
                      create_pod's undo, teardown and gc all call them
    api/              the Kubernetes objects, pure: manifest.py (Pod parse and
                      checks, with file:line:field, split in its sections),
                      record.py (the typed pod record), podstatus.py, qos.py,
                      configrefs.py, configobject.py, podchange.py
    apiserver/        `minipod serve`, the Kubernetes REST API: a second front
                      end over the agent, beside cli/
    the node library  (flat here, kernel-facing) client.py (the agent's socket),
                      container.py and enter.py (fork, namespaces, exec),
                      logreader.py (logs -f), inspection.py and podusage.py (what
                      inspect and top read from /proc and the cgroups),
                      sandbox.py (the pinned pod namespaces), volumes.py,
                      probes.py, checks.py, logs.py (CRI log files), security.py
                      and seccomp_profile.py, timings.py (--timings), namespaces.py,
                      configobjects.py / projection.py / podconfig.py
                      (ConfigMaps, Secrets, their env and volumes),
                      serviceaccount.py (the pod's token), pki.py (the CA, the
                      API server's and the admin's certificates, the token key),
                      apiendpoint.py (the API server's port and pidfile)
    the state         paths.py (every path, and the instance identity), state.py
    below all that    minipod.linux (minipod/linux/): the syscalls, /proc readers,
                      atomic files and locks, the fork helper, --explain

The kernel objects a pod is made of, and how to see each by hand:

    namespaces        ls -l /proc/PID/ns; the pod's pins: RUN/pods/KEY/ns/{net,ipc,uts},
                      /run/netns/minipod-ID-KEY (ip netns list)
    processes         the pause (PID 1 of a shared PID namespace) and each
                      container's PID 1: ps -eo pid,cmd | grep minipod:
    mounts            each container's overlay root: nsenter -t PID -m cat /proc/mounts
    cgroups           /sys/fs/cgroup/[controller/]minipod-ID/pod<uid>/<container>

Rules that bite: a pod's key is its name in `default` and NS_NAME elsewhere
(paths.pod_key), and a key is trusted only once the record it opens says
that namespace and name; the agent is the only writer of RUN/pods; nothing
a container can change (a path in a volume, its /proc) is used unchecked.
"""
