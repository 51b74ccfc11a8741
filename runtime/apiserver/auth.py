"""Who is asking, and may they (kube-apiserver's authentication and RBAC, in small).

Two kinds of user:

    admin    a client certificate of minipod's CA (the kubeconfig `minipod
             kubeconfig` prints): may do everything, as system:masters does.
    a pod    `Authorization: Bearer TOKEN`, a ServiceAccount token minipod
             issued (runtime/serviceaccount.py), valid while its pod exists:
             user system:serviceaccount:NS:default, groups
             system:serviceaccounts, system:serviceaccounts:NS,
             system:authenticated.

The loopback listener requires the certificate (the TLS handshake fails
without it); the pods' listener (the bridge gateway) takes either, and
answers a request with neither, or with a token that is not valid, 401
Unauthorized, as a cluster does.

What a pod's token may do (deny unless listed; decided here, no Role
objects):

    get, list, watch   pods, pods/log, pods/status, events   in its own namespace
    create             selfsubjectaccessreviews   (`kubectl auth can-i`)
                       selfsubjectreviews         (`kubectl auth whoami`)
    get                /version /api /apis and their discovery documents,
                       /openapi/*, /healthz /livez /readyz   (system:discovery)

So `kubectl get pods`, `get pod -o yaml`, `describe pod`, `logs`, `get -w`
and `get events` work in the pod's namespace; nothing writes, nothing runs
(exec, attach, port-forward, create, delete are refused: any of them would
let one pod act as another), and other namespaces, `-A`, nodes, namespaces
and metrics are Forbidden with kube-apiserver's own wording.
"""
from __future__ import annotations

from dataclasses import dataclass

from minipod.runtime.apiserver.objects import ApiError

POD_RESOURCES = {"pods", "pods/log", "pods/status", "events"}
POD_VERBS = {"get", "list", "watch"}
DISCOVERY_PATHS = {"/api", "/apis", "/version", "/healthz", "/livez", "/readyz"}


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]
    namespace: str | None = None     # a service account's; None for the admin

    @property
    def admin(self) -> bool:
        return "system:masters" in self.groups


ADMIN = User("minipod-admin", ("system:masters", "system:authenticated"))


def service_account(namespace: str) -> User:
    from minipod.runtime import serviceaccount
    return User(serviceaccount.username(namespace),
                ("system:serviceaccounts", f"system:serviceaccounts:{namespace}",
                 "system:authenticated"), namespace)


@dataclass(frozen=True)
class Request:
    """What a request asks (k8s.io/apiserver's RequestInfo)."""
    verb: str
    path: str
    resource_request: bool = False
    group: str = ""
    version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


def request_info(method: str, parts: list[str], watch: bool) -> Request:
    """The RequestInfo of METHOD /PARTS (RequestInfoFactory.NewRequestInfo)."""
    path = "/" + "/".join(parts)
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return Request("get" if method in ("GET", "HEAD") else method.lower(), path)
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    elif rest[0] == "namespaces" and len(rest) == 2:
        namespace = rest[1]      # the namespace object itself
    resource, name = rest[0], rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if method in ("GET", "HEAD"):
        verb = "watch" if watch and not sub else ("get" if name else "list")
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = VERBS.get(method, method.lower())
    return Request(verb, path, True, group, version, namespace, resource, sub, name)


def impersonation(user: User, headers) -> ApiError | None:
    """403 for a non-admin that sends Impersonate-* headers (refused, never
    ignored: a client must not think it acts as someone else)."""
    if user.admin:
        return None
    for header, resource in (("Impersonate-User", "users"), ("Impersonate-Group", "groups"),
                             ("Impersonate-Uid", "uids")):
        value = headers.get(header)
        if value:
            return ApiError(403, "Forbidden", f'{resource} "{value}" is forbidden: User '
                                              f'"{user.name}" cannot impersonate resource '
                                              f'"{resource}" in API group "" at the cluster '
                                              f'scope', {"name": value, "kind": resource})
    return None


def allowed(user: User, r: Request) -> bool:
    """May USER do R? The table in the module docstring."""
    if user.admin:
        return True
    if not r.resource_request:
        return r.verb == "get" and (r.path in DISCOVERY_PATHS or r.path.startswith(
            ("/api/", "/apis/", "/openapi/", "/version/")))
    if (r.group, r.resource) in (("authorization.k8s.io", "selfsubjectaccessreviews"),
                                 ("authentication.k8s.io", "selfsubjectreviews")):
        return r.verb == "create"
    resource = f"{r.resource}/{r.subresource}" if r.subresource else r.resource
    return (r.group == "" and user.namespace is not None and r.namespace == user.namespace
            and resource in POD_RESOURCES and r.verb in POD_VERBS)


def forbidden(user: User, r: Request) -> ApiError:
    """403 with kube-apiserver's message (responsewriters.Forbidden)."""
    if not r.resource_request:
        return ApiError(403, "Forbidden", f'forbidden: User "{user.name}" cannot {r.verb} '
                                          f'path "{r.path}"', {})
    resource = f"{r.resource}/{r.subresource}" if r.subresource else r.resource
    where = (f'in the namespace "{r.namespace}"' if r.namespace else "at the cluster scope")
    qualified = f"{r.resource}.{r.group}" if r.group else r.resource
    head = f'{qualified} "{r.name}"' if r.name else qualified
    details = {"kind": r.resource}
    if r.name:
        details["name"] = r.name
    if r.group:
        details["group"] = r.group
    return ApiError(403, "Forbidden", f'{head} is forbidden: User "{user.name}" cannot '
                                      f'{r.verb} resource "{resource}" in API group '
                                      f'"{r.group}" {where}', details)


UNAUTHORIZED = ApiError(401, "Unauthorized", "Unauthorized")


def authenticate(has_cert: bool, authorization: str | None, check_token) -> User:
    """The user of a request: the admin with a certificate, a pod's service
    account with a valid bearer token (check_token(token) -> namespace or
    None), else 401."""
    if has_cert:
        return ADMIN
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UNAUTHORIZED
    namespace = check_token(token.strip())
    if namespace is None:
        raise UNAUTHORIZED
    return service_account(namespace)


# ---- SelfSubjectReview (`kubectl auth whoami`) -----------------------------------

def self_review(user: User, uid: str = "") -> dict:
    """Who the server thinks USER is, as authentication.k8s.io/v1 answers it
    (kubectl prints Username, UID and Groups). It has no spec: the body of
    the request, JSON or protobuf, is not read for anything."""
    info = {"username": user.name, "groups": list(user.groups)}
    if uid:
        info["uid"] = uid
    return {"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None}, "status": {"userInfo": info}}


# ---- SelfSubjectAccessReview ---------------------------------------------------


def review_answer(user: User, spec: dict) -> dict:
    """The status of a SelfSubjectAccessReview asking SPEC, for USER."""
    if user.admin:
        return {"allowed": True, "reason": "minipod: the admin certificate may do everything"}
    res, nonres = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if isinstance(res, dict):
        r = Request(str(res.get("verb") or ""), "", True, str(res.get("group") or ""),
                    str(res.get("version") or ""), str(res.get("namespace") or ""),
                    str(res.get("resource") or ""), str(res.get("subresource") or ""),
                    str(res.get("name") or ""))
    elif isinstance(nonres, dict):
        r = Request(str(nonres.get("verb") or ""), str(nonres.get("path") or ""))
    else:
        return {"allowed": False, "reason": "no resourceAttributes or nonResourceAttributes"}
    if r.verb == "*" or r.resource == "*":
        return {"allowed": False}     # a wildcard needs every verb or resource: never here
    if allowed(user, r):
        return {"allowed": True, "reason": f'minipod: a pod\'s service account may '
                                           f'{r.verb} this in namespace "{user.namespace}"'}
    return {"allowed": False}


def review_spec_from_protobuf(body: bytes) -> dict:
    """spec of a SelfSubjectAccessReview sent as application/vnd.kubernetes.protobuf
    (kubectl auth can-i does); the reader is protobuf.py's."""
    from minipod.runtime.apiserver import protobuf
    return protobuf.review_spec(body)
