"""The API server's certificates, made once on first start (k3s/kind style).

    LIB/pki/ca.crt ca.key              EC P-256 CA, 10 years
    LIB/pki/server.crt server.key      SAN IP:127.0.0.1, DNS:localhost; serverAuth
    LIB/pki/admin.crt admin.key        O=system:masters, CN=minipod-admin; clientAuth

Keys are written 0600 in a 0700 directory owned by root, atomically (temp
file, fsync, rename), so a half-written key is never read. The server
requires a client certificate signed by this CA (ssl.CERT_REQUIRED): the
kubeconfig `minipod kubeconfig` prints carries the admin certificate. The
`cryptography` package makes them; the stdlib `ssl` module cannot.
"""
from __future__ import annotations

import datetime
import fcntl
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


def files(paths) -> Files:
    return Files(paths.lib / "pki")


def _write(path: Path, data: bytes, mode: int) -> None:
    from minipod.runtime.state import replace_file
    replace_file(path, data, mode)


def ensure(paths) -> Files:
    """Make the CA and both certificates unless they exist; return their paths.

    Under a lock (LIB/pki/.lock) so two servers starting at once agree on
    one CA."""
    f = files(paths)
    f.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(f.dir, 0o700)
    lock = os.open(f.dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not all(p.exists() for p in (f.ca_crt, f.ca_key, f.server_crt, f.server_key,
                                        f.admin_crt, f.admin_key)):
            _generate(f)
    finally:
        os.close(lock)
    return f


def _generate(f: Files) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    later = now + datetime.timedelta(days=3650)

    def key_pem(key) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    def name(cn: str, org: str | None = None) -> x509.Name:
        attrs = ([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else [])
        return x509.Name(attrs + [x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("minipod-ca")
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

    def leaf(subject: x509.Name, usage, sans=None):
        key = ec.generate_private_key(ec.SECP256R1())
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now).not_valid_after(later)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 ca_key.public_key()), critical=False))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return key, b.sign(ca_key, hashes.SHA256())

    server_key, server = leaf(name("minipod-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH,
                              [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                               x509.DNSName("localhost")])
    admin_key, admin = leaf(name(ADMIN_CN, ADMIN_ORG), ExtendedKeyUsageOID.CLIENT_AUTH)
    pem = serialization.Encoding.PEM
    # keys first: a certificate is never present without its key
    _write(f.ca_key, key_pem(ca_key), 0o600)
    _write(f.server_key, key_pem(server_key), 0o600)
    _write(f.admin_key, key_pem(admin_key), 0o600)
    _write(f.server_crt, server.public_bytes(pem), 0o644)
    _write(f.admin_crt, admin.public_bytes(pem), 0o644)
    _write(f.ca_crt, ca.public_bytes(pem), 0o644)  # last: its presence means "all made"


def server_context(f: Files):
    """TLS 1.2+ server context that requires a client certificate of our CA."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(f.server_crt, f.server_key)
    ctx.load_verify_locations(f.ca_crt)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
