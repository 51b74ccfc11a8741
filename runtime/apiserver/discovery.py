"""/version and API discovery, aggregated (v2, v2beta1) and legacy.

kubectl asks `/api` and `/apis` with an Accept that lists the aggregated
forms first; the answer's Content-Type alone tells it which form came back
(client-go discovery `ContentTypeIsGVK`). The parameters must match
exactly: a substring test for "v=v2" also matches "v=v2beta1" and broke
kubectl 1.27/1.29 (reference §0.2). A client that lists neither gets the
legacy APIVersions / APIGroupList / APIResourceList.
"""
from __future__ import annotations

VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0+minipod",
           "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
           "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23.8", "compiler": "gc",
           "platform": "linux/amd64"}

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
CONFIG_VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]

# (resource, kind, namespaced, verbs, shortNames, categories, subresources)
CORE = [
    ("pods", "Pod", True, ALL_VERBS, ["po"], ["all"],
     [("attach", "PodAttachOptions", ["create", "get"]),
      ("exec", "PodExecOptions", ["create", "get"]),
      ("log", "Pod", ["get"]),
      ("portforward", "PodPortForwardOptions", ["create", "get"]),
      ("status", "Pod", ["get", "patch", "update"])]),
    ("events", "Event", True, ["get", "list", "watch"], ["ev"], [], []),
    ("configmaps", "ConfigMap", True, CONFIG_VERBS, ["cm"], [], []),
    ("secrets", "Secret", True, CONFIG_VERBS, [], [], []),
    ("namespaces", "Namespace", False, ["create", "delete", "get", "list", "patch", "update",
                                        "watch"], ["ns"], [], []),
    ("nodes", "Node", False, ["get", "list", "watch"], ["no"], [], []),
]
AUTHZ = ("authorization.k8s.io", "v1",
         [("selfsubjectaccessreviews", "SelfSubjectAccessReview", False, ["create"], [], [], [])])
AUTHN = ("authentication.k8s.io", "v1",
         [("selfsubjectreviews", "SelfSubjectReview", False, ["create"], [], [], [])])
METRICS = ("metrics.k8s.io", "v1beta1",
           [("pods", "PodMetrics", True, ["get", "list"], [], [], [])])
GROUPS = [AUTHN, AUTHZ, METRICS]


def accept_params(accept: str) -> list[dict]:
    """Each media range of an Accept header as a dict: type plus parameters."""
    out = []
    for part in (accept or "").split(","):
        fields = [f.strip() for f in part.split(";")]
        entry = {"type": fields[0].lower()}
        for f in fields[1:]:
            k, _, v = f.partition("=")
            entry[k.strip()] = v.strip()
        out.append(entry)
    return out


def aggregated_version(accept: str) -> str | None:
    """"v2" or "v2beta1" if the Accept asks for aggregated discovery (exactly)."""
    for entry in accept_params(accept):
        if entry["type"] == "application/json" and entry.get("g") == "apidiscovery.k8s.io" \
                and entry.get("as") == "APIGroupDiscoveryList" and entry.get("v") in ("v2",
                                                                                     "v2beta1"):
            return entry["v"]
    return None


def aggregated_content_type(version: str) -> str:
    return f"application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"


def _resource(group: str, version: str, r) -> dict:
    name, kind, namespaced, verbs, short, cats, subs = r
    out = {"resource": name, "responseKind": {"group": group, "version": version, "kind": kind},
           "scope": "Namespaced" if namespaced else "Cluster",
           "singularResource": kind.lower(), "verbs": verbs}
    if short:
        out["shortNames"] = short
    if cats:
        out["categories"] = cats
    if subs:
        out["subresources"] = [{"subresource": s, "responseKind": {
            "group": group, "version": version, "kind": k}, "verbs": v} for s, k, v in subs]
    return out


def aggregated(version: str, core: bool) -> dict:
    """The APIGroupDiscoveryList of /api (core) or /apis."""
    if core:
        groups = [{"metadata": {"creationTimestamp": None},
                   "versions": [{"version": "v1", "freshness": "Current",
                                 "resources": [_resource("", "v1", r) for r in CORE]}]}]
    else:
        groups = [{"metadata": {"name": g, "creationTimestamp": None},
                   "versions": [{"version": v, "freshness": "Current",
                                 "resources": [_resource(g, v, r) for r in res]}]}
                  for g, v, res in GROUPS]
    return {"kind": "APIGroupDiscoveryList", "apiVersion": f"apidiscovery.k8s.io/{version}",
            "metadata": {}, "items": groups}


def legacy_api(server_address: str) -> dict:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": server_address}]}


def legacy_groups() -> dict:
    groups = []
    for g, v, _ in GROUPS:
        gv = {"groupVersion": f"{g}/{v}", "version": v}
        groups.append({"name": g, "versions": [gv], "preferredVersion": gv})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _legacy_resources(resources) -> list[dict]:
    out = []
    for name, kind, namespaced, verbs, short, cats, subs in resources:
        entry = {"name": name, "singularName": kind.lower(), "namespaced": namespaced,
                 "kind": kind, "verbs": verbs}
        if short:
            entry["shortNames"] = short
        if cats:
            entry["categories"] = cats
        out.append(entry)
        for s, k, v in subs:
            out.append({"name": f"{name}/{s}", "singularName": "", "namespaced": namespaced,
                        "kind": k, "verbs": v})
    return out


def legacy_resources(group_version: str) -> dict | None:
    """The APIResourceList of /api/v1 or /apis/G/V; None if not served."""
    if group_version == "v1":
        resources = CORE
    elif group_version in (f"{g}/{v}" for g, v, _ in GROUPS):
        resources = next(res for g, v, res in GROUPS if f"{g}/{v}" == group_version)
    else:
        return None
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": _legacy_resources(resources)}
