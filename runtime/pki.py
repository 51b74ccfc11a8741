"""The cluster's certificates and keys, made once on first use (k3s/kind style).

Both front ends and the node stand on them: the API server serves with the
server certificate, `minipod kubeconfig` hands out the admin one, and the
agent mounts ca.crt into pods and signs their ServiceAccount tokens with
sa.key (runtime/serviceaccount.py). Hence here, in the node library, not
in runtime/apiserver/.

    LIB/pki/ca.crt ca.key              EC P-256 CA, 10 years
    LIB/pki/server.crt server.key      SAN IP:127.0.0.1, IP:GATEWAY, DNS:localhost,
                                       DNS:kubernetes.default.svc (and shorter); serverAuth
    LIB/pki/admin.crt admin.key        O=system:masters, CN=minipod-admin; clientAuth
    LIB/pki/sa.key                     32 random bytes: the key ServiceAccount tokens
                                       are signed with (runtime/serviceaccount.py)

The server certificate also names the pod network's gateway (the address
pods reach the API on); ensure() makes it again, with the same CA, when the
addresses asked for are not all in it (a moved MINIPOD_SUBNET, or a
certificate made before pods could reach the API).

Keys are written 0600 in a 0700 directory owned by root, atomically (temp
file, fsync, rename), so a half-written key is never read. The server
requires a client certificate signed by this CA (ssl.CERT_REQUIRED): the
kubeconfig `minipod kubeconfig` prints carries the admin certificate. The
`cryptography` package makes them; the stdlib `ssl` module cannot.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

ADMIN_CN = "minipod-admin"
ADMIN_ORG = "system:masters"


class Files:
    """Where the six PEM files live (LIB/pki)."""

    def __init__(self, d: Path):
        self.dir = d
        self.ca_crt, self.ca_key = d / "ca.crt", d / "ca.key"
        self.server_crt, self.server_key = d / "server.crt", d / "server.key"
        self.admin_crt, self.admin_key = d / "admin.crt", d / "admin.key"
        self.sa_key = d / "sa.key"


def files(paths) -> Files:
    return Files(paths.lib / "pki")


def _write(path: Path, data: bytes, mode: int) -> None:
    from minipod.linux.files import replace_file
    replace_file(path, data, mode)


def ensure(paths, ips: tuple[str, ...] = ()) -> Files:
    """Make the CA and both certificates unless they exist, the server's again
    if its SANs miss one of `ips`, and the token key; return their paths.

    Under a lock (LIB/pki/.lock) so two servers starting at once agree on
    one CA."""
    f = files(paths)
    f.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(f.dir, 0o700)
    from minipod.linux.files import locked
    with locked(f.dir / ".lock", what="PKI lock"):
        if not all(p.exists() for p in (f.ca_crt, f.ca_key, f.server_crt, f.server_key,
                                        f.admin_crt, f.admin_key)):
            _generate(f, ips)
        elif ips and not _covers(f.server_crt, ips):
            _reissue_server(f, ips)
        if not f.sa_key.exists():
            _write(f.sa_key, os.urandom(32), 0o600)
    return f


def _covers(crt: Path, ips) -> bool:
    """Does the certificate's SAN list every address in ips?"""
    from cryptography import x509
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have = {str(a) for a in sans.get_values_for_type(x509.IPAddress)}
    return all(str(ipaddress.ip_address(ip)) in have for ip in ips)


def _server_sans(ips) -> list:
    from cryptography import x509
    addrs = ["127.0.0.1"] + [str(ipaddress.ip_address(i)) for i in ips
                             if str(ipaddress.ip_address(i)) != "127.0.0.1"]
    return ([x509.IPAddress(ipaddress.ip_address(a)) for a in dict.fromkeys(addrs)]
            + [x509.DNSName("localhost"), x509.DNSName("kubernetes"),
               x509.DNSName("kubernetes.default"), x509.DNSName("kubernetes.default.svc")])


def _reissue_server(f: Files, ips) -> None:
    """A new server certificate and key, signed by the existing CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    ca_key = serialization.load_pem_private_key(f.ca_key.read_bytes(), None)
    ca = x509.load_pem_x509_certificate(f.ca_crt.read_bytes())
    key, cert = _leaf(ca_key, ca.subject, _name("minipod-apiserver"), "server",
                      _server_sans(ips))
    _write(f.server_key, _key_pem(key), 0o600)
    _write(f.server_crt, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _key_pem(key) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(cn: str, org: str | None = None):
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    attrs = ([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else [])
    return x509.Name(attrs + [x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _validity():
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    return now, now + datetime.timedelta(days=3650)


def _leaf(ca_key, ca_name, subject, usage: str, sans=None):
    """A key and a certificate for it signed by the CA; usage "server" or "client"."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID
    now, later = _validity()
    eku = ExtendedKeyUsageOID.SERVER_AUTH if usage == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
    key = ec.generate_private_key(ec.SECP256R1())
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now).not_valid_after(later)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
             ca_key.public_key()), critical=False))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, b.sign(ca_key, hashes.SHA256())


def _generate(f: Files, ips=()) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    now, later = _validity()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("minipod-ca")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(later)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    server_key, server = _leaf(ca_key, ca_name, _name("minipod-apiserver"), "server",
                               _server_sans(ips))
    admin_key, admin = _leaf(ca_key, ca_name, _name(ADMIN_CN, ADMIN_ORG), "client")
    pem = serialization.Encoding.PEM
    # keys first: a certificate is never present without its key
    _write(f.ca_key, _key_pem(ca_key), 0o600)
    _write(f.server_key, _key_pem(server_key), 0o600)
    _write(f.admin_key, _key_pem(admin_key), 0o600)
    _write(f.server_crt, server.public_bytes(pem), 0o644)
    _write(f.admin_crt, admin.public_bytes(pem), 0o644)
    _write(f.ca_crt, ca.public_bytes(pem), 0o644)  # last: its presence means "all made"


def server_context(f: Files, require_cert: bool = True):
    """TLS 1.2+ server context that requires a client certificate of our CA
    (or, require_cert=False, checks one if sent: the pods' listener, where a
    bearer token may stand in for it)."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(f.server_crt, f.server_key)
    ctx.load_verify_locations(f.ca_crt)
    ctx.verify_mode = ssl.CERT_REQUIRED if require_cert else ssl.CERT_OPTIONAL
    return ctx
