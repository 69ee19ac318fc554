"""TLS for the PostgreSQL endpoint: AEP's Query Service requires SSL, so clients connect with
``sslmode=require``. The sandbox makes a self-signed certificate for 127.0.0.1 and localhost once per data
dir (the key owner-only), which ``require`` accepts; ``verify-ca`` can trust it with ``sslrootcert``
pointing at ``pg-cert.pem``."""

import datetime
import ipaddress
import os
import ssl
from pathlib import Path

CERT_FILE, KEY_FILE = "pg-cert.pem", "pg-key.pem"


def ensure_certificate(data_dir: Path) -> tuple[Path, Path]:
    cert, key = data_dir / CERT_FILE, data_dir / KEY_FILE
    if cert.exists() and key.exists():
        return cert, key
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aep-sandbox Query Service")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256()))
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return cert, key


def server_context(data_dir: Path) -> ssl.SSLContext:
    cert, key = ensure_certificate(data_dir)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context
