"""The Kubernetes API for this node: a second front end over the agent.

`minipod serve` runs it (its own process, threads inside; the agent forks
containers and keeps threads out). It serves HTTPS on 127.0.0.1:6443
(MINIPOD_API_PORT moves it) to clients that present the admin certificate
(pki.py), and on the pod bridge's gateway to pods with their ServiceAccount
token (auth.py, ../serviceaccount.py), reads pods from the agent's state records (store.py keeps a
resourceVersion-ordered change log for watches) and asks the agent to
create and delete them, so the kubelet logic stays in one place.

    server.py     HTTP/1.1 over TLS, routing, errors as metav1.Status
    launch.py     start on demand (pidfile + lock), stop
    pki.py        CA, server and client certificates (cryptography)
    store.py      pods and events as API objects; change log; watch
    objects.py    Table printing, Node, Namespace, Event objects
    discovery.py  /version, /api, /apis (aggregated v2 and legacy)
    openapi.py    /openapi/v3 from the upstream schema (kubernetes-validate)
    podlogs.py    …/log, reusing runtime/logreader.py
    podexec.py    …/exec and …/attach over WebSocket (v5/v4.channel.k8s.io)
    auth.py       who asks (certificate or token) and what a pod's token may do
"""
