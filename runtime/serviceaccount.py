"""How a pod reaches the API the way in-cluster clients do (the kubelet's
ServiceAccount token volume and service environment, in small).

Every container gets, as on a cluster:

    KUBERNETES_SERVICE_HOST=GATEWAY  KUBERNETES_SERVICE_PORT=PORT  (and _PORT_HTTPS,
    KUBERNETES_PORT=tcp://GATEWAY:PORT, KUBERNETES_PORT_PORT_TCP{,_PROTO,_PORT,_ADDR})
    /var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace}   read-only

GATEWAY is the pod bridge's address (netns/ipam.py: the subnet's first host),
where the API server listens besides 127.0.0.1 (runtime/apiserver/server.py);
PORT is the API port (MINIPOD_API_PORT, 6443). client-go's rest.InClusterConfig
and kubectl read exactly these, so both work in a pod with no configuration.

The environment comes first and the container's own `env` overrides it, as
the kubelet's makeEnvironmentVariables does (service variables are added
only where the container did not set the name; `$(KUBERNETES_SERVICE_HOST)`
expands in the container's env). They are set even with
`automountServiceAccountToken: false`, as on a cluster.

The files are written by the agent on the host, in
RUN/pods/POD/secrets/serviceaccount: `secrets/` is 0700, so no other host
user reads a token; the directory itself is bind-mounted read-only (by fd,
rootfs/mounts.py), so a container can neither change nor replace it. A
container that mounts a volume of its own at that path keeps its own, as
with the ServiceAccount admission plugin; `automountServiceAccountToken:
false` in the pod spec mounts nothing.

The token is a JWT (HS256) shaped like Kubernetes' bound tokens:

    {"iss": "https://kubernetes.default.svc.cluster.local", "aud": [same],
     "sub": "system:serviceaccount:NS:default", "iat", "nbf",
     "kubernetes.io": {"namespace": NS, "pod": {"name", "uid"},
                       "serviceaccount": {"name": "default", "uid"}}}

signed with LIB/pki/sa.key (32 random bytes, 0600, made with the CA). It has
no expiry (minipod does not rotate the file); instead it is bound to the
pod: the server accepts it only while a pod of that namespace, name and uid
exists (runtime/apiserver/auth.py), so a deleted pod's token, or one of a pod
recreated under the same name, stops working at once.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import os
import time
from pathlib import Path

from minipod.runtime.api.accountview import ACCOUNT, MOUNT_PATH

ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_SUBNET = "10.89.0.0/16"


class TokenError(ValueError):
    """A token that is not one of ours: the message says why (for the log)."""


# ---- where the API is, as pods see it ------------------------------------------


def api_host(subnet: str | None = None) -> str:
    """The pod network's gateway (the bridge's address): the subnet's first
    host, as netns/ipam.py hands it to the bridge."""
    net = ipaddress.IPv4Network(subnet or os.environ.get("MINIPOD_SUBNET", DEFAULT_SUBNET),
                                strict=False)
    return str(net.network_address + 1)


def api_port(paths) -> int:
    """The running API server's port (its pidfile), else where it will listen
    (MINIPOD_API_PORT, else 6443): an agent started with another environment
    than the server's still points pods at the server."""
    from minipod.runtime import apiendpoint
    found = apiendpoint.running(paths)
    if found:
        return found[1]
    try:
        return apiendpoint.port()
    except apiendpoint.LaunchError:
        return apiendpoint.DEFAULT_PORT


def service_env(host: str, port: int) -> list[tuple[str, str]]:
    """The `kubernetes` Service's variables, as the kubelet makes them
    (pkg/kubelet/envvars: NAME_SERVICE_HOST/_PORT, _PORT_<port>_HTTPS for the
    named port "https", and the Docker-link style NAME_PORT*)."""
    url = f"tcp://{host}:{port}"
    p = f"KUBERNETES_PORT_{port}_TCP"
    return [("KUBERNETES_SERVICE_HOST", host), ("KUBERNETES_SERVICE_PORT", str(port)),
            ("KUBERNETES_SERVICE_PORT_HTTPS", str(port)), ("KUBERNETES_PORT", url),
            (p, url), (p + "_PROTO", "tcp"), (p + "_PORT", str(port)), (p + "_ADDR", host)]


# ---- tokens (pure) ------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def username(namespace: str) -> str:
    return f"system:serviceaccount:{namespace}:{ACCOUNT}"


def account_uid(key: bytes, namespace: str) -> str:
    """A stable uid for NS's default ServiceAccount (there is no object)."""
    h = hmac.new(key, f"serviceaccount/{namespace}".encode(), hashlib.sha256).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def issue(key: bytes, namespace: str, pod: str, pod_uid: str, now: float | None = None) -> str:
    """A signed token for pod NAMESPACE/POD (uid POD_UID)."""
    now = int(time.time() if now is None else now)
    header = {"alg": "HS256", "kid": hashlib.sha256(key).hexdigest()[:16], "typ": "JWT"}
    claims = {"aud": [ISSUER], "iat": now, "iss": ISSUER, "nbf": now,
              "kubernetes.io": {"namespace": namespace, "pod": {"name": pod, "uid": pod_uid},
                                "serviceaccount": {"name": ACCOUNT,
                                                   "uid": account_uid(key, namespace)}},
              "sub": username(namespace)}
    signing = ".".join(_b64(json.dumps(x, separators=(",", ":")).encode())
                       for x in (header, claims))
    sig = hmac.new(key, signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{_b64(sig)}"


def verify(key: bytes, token: str) -> dict:
    """The claims of a token this key signed, checked for shape; TokenError
    otherwise. Whether its pod still exists is the caller's question."""
    if len(key) < 16:
        raise TokenError("no signing key")    # never accept what anyone could sign
    parts = token.split(".")
    if len(parts) != 3 or len(token) > 8192:
        raise TokenError("not a JWT")
    try:
        sig = _unb64(parts[2])
    except ValueError:
        raise TokenError("bad signature encoding") from None
    want = hmac.new(key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(sig, want):
        raise TokenError("bad signature")
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
        k8s = claims["kubernetes.io"]
        ns, pod = k8s["namespace"], k8s["pod"]
        fields = (ns, pod["name"], pod["uid"], claims["sub"])
    except (ValueError, KeyError, TypeError):
        raise TokenError("malformed claims") from None
    if header.get("alg") != "HS256" or not all(isinstance(f, str) and f for f in fields) \
            or claims["sub"] != username(ns) or claims.get("iss") != ISSUER:
        raise TokenError("claims are not a pod's service account")
    return claims


def signing_key(paths) -> bytes:
    """LIB/pki/sa.key, made with the CA (pki.ensure)."""
    from minipod.runtime import pki
    return pki.ensure(paths).sa_key.read_bytes()


# ---- the node side: files, mount, environment ----------------------------------


def wanted(raw: dict) -> bool:
    """Does the pod want the token mounted (automountServiceAccountToken)?"""
    return (raw.get("spec") or {}).get("automountServiceAccountToken") is not False


def prepare(paths, pod_dir: Path, record) -> str | None:
    """Write token, ca.crt and namespace for the pod (`record`: a PodRecord);
    the host dir to mount, or None when the pod does not want them. Called
    once, at pod creation."""
    if not wanted(record.manifest):
        return None
    from minipod.runtime import pki
    from minipod.linux.files import replace_file
    files = pki.ensure(paths)
    outer = pod_dir / "secrets"
    outer.mkdir(mode=0o700, exist_ok=True)
    os.chmod(outer, 0o700)   # the token is a credential: no other host user reads it
    d = outer / "serviceaccount"
    d.mkdir(mode=0o755, exist_ok=True)
    os.chmod(d, 0o755)       # inside the pod, any user of any container reads it
    ns = record.namespace or "default"
    token = issue(files.sa_key.read_bytes(), ns, record.name, record.uid)
    replace_file(d / "ca.crt", files.ca_crt.read_bytes(), 0o644)
    replace_file(d / "namespace", ns.encode(), 0o644)
    replace_file(d / "token", token.encode(), 0o644)
    return str(d)


def bind(record, container):
    """The read-only bind mount of the token dir for one container, or None
    (no token for this pod, or the container mounts something there itself)."""
    source = record.service_account_dir
    if not source:
        return None
    if any(vm.mount_path.rstrip("/") == MOUNT_PATH for vm in container.volume_mounts):
        return None
    from minipod.rootfs import mounts
    return mounts.BindMount(source, MOUNT_PATH, read_only=True, is_file=False)
