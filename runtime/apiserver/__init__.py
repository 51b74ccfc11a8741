"""The Kubernetes API for this node: a second front end over the agent.

`minipod serve` runs it (its own process, threads inside; the agent forks
containers and keeps threads out). It serves HTTPS on 127.0.0.1:6443
(MINIPOD_API_PORT moves it) to clients that present the admin certificate
(../pki.py), and on the pod bridge's gateway to pods with their ServiceAccount
token (auth.py, ../serviceaccount.py), reads pods from the agent's state records (store.py keeps a
resourceVersion-ordered change log for watches) and asks the agent to
create and delete them, so the kubelet logic stays in one place.

    server.py       the listeners (TLS), who asks, routing; serve()
    connection.py   one connection: request bodies, answers, streams, deadlines
    podapi.py       pods: list, get, create, delete
    podupdate.py    pods: PUT and PATCH (what a running pod may change)
    clusterapi.py   namespaces (reads), the node, events, OpenAPI, reviews
    nsapi.py        namespaces: create, delete, PUT and PATCH
    configs.py      ConfigMaps and Secrets
    watch.py        ?watch=true: chunked change events from the store
    updates.py      PUT and PATCH of any kind: content type, patching, name checks
    patch.py        strategic merge and JSON merge patch (RFC 7386)
    jsonpatch.py    JSON patch (RFC 6902)
    selectors.py    label and field selectors
    decoding.py     request bodies as JSON or YAML
    protobuf.py     the protobuf bodies kubectl sends (ConfigMap, Secret, ...)
    validation.py   a Pod from a request body, errors as a cluster's
    store.py        pods and events as API objects; change log; watch
    objects.py      Status errors, Table printing, Node, Namespace, Event objects
    discovery.py    /version, /api, /apis (aggregated v2 and legacy)
    openapi.py      /openapi/v3 from the upstream schema (kubernetes-validate)
    auth.py         who asks (certificate or token) and what a pod's token may do
    launch.py       start on demand (pidfile + lock), stop
    metrics.py      metrics.k8s.io PodMetrics from the pods' cgroups
    podlogs.py      …/log, with the CLI's reader (runtime/logreader.py)
    podexec.py      …/exec and …/attach over WebSocket (v5/v4.channel.k8s.io)
    channels.py     the remotecommand channel protocol of exec and attach
    websocket.py    WebSocket (RFC 6455), server side
    podforward.py   …/portforward: the HTTP side
    portforward.py  port-forward's three wire forms (SPDY, WebSocket, tunnelled SPDY)
    spdy.py         SPDY/3.1 sessions and streams (re-exports the two below)
    spdyframes.py   SPDY/3.1 frames and the Framer
    spdyheaders.py  SPDY/3 zlib header blocks

Rules that bite: the server never writes pod state (the agent is its only
writer: the server asks it over runtime/client.py); a resourceVersion is
the store's change counter, so a watch resumes only within the change
log's window (410 Expired beyond it: clients relist); a listener on the
pod bridge's gateway answers only requests with a pod's token, never the
admin certificate's rights; threads live here, never in the agent (it forks).

Check by hand: `minipod serve status`, `kubectl get --raw /api/v1/namespaces/default/pods`,
`kubectl get pods -v=8` (each request and answer), `ss -ltnp | grep 6443`.
"""
