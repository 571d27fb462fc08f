"""A throwaway certificate authority for the simulator's HTTPS, and client certificates for tests.

Clients talk to the simulator over real TLS (never verify=False): they trust `ca.pem` through
REQUESTS_CA_BUNDLE. Keys are made fresh on every start; nothing here is a secret worth keeping.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Certificates use the wall clock, not the simulator's injectable clock: TLS clients check validity
# against their own real time.
_VALIDITY = timedelta(days=30)
_BACKDATE = timedelta(days=1)


@dataclass(frozen=True)
class ServerFiles:
    """Paths written by `write_server_files`."""

    ca_path: Path  # the CA certificate alone: what REQUESTS_CA_BUNDLE points at in tests
    ca_bundle_path: Path  # certifi's public roots + the CA: for processes that also reach real hosts
    cert_path: Path  # server certificate chain (leaf, then CA)
    key_path: Path  # server private key


@dataclass(frozen=True)
class ClientCertificate:
    """An RSA key and self-signed certificate for the client-assertion (certificate) credential."""

    private_key_pem: str
    certificate_pem: str
    sha1_thumbprint: str  # hex, upper-case, as the Azure portal shows it
    sha256_thumbprint: str

    @property
    def combined_pem(self) -> str:
        """Key + certificate in one PEM: the shape M365_CLIENT_CERTIFICATE(_PATH) expects."""
        return self.private_key_pem + self.certificate_pem


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "AuditKeep simulator (development only)"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def write_server_files(directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")) -> ServerFiles:
    """Create a CA and a server certificate for `hosts` (IPs go in SAN as IP, names as DNS)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)

    # EC P-256: generating it is instant, unlike RSA, and every TLS client supports it.
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("AuditKeep simulator CA")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    alt_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    files = ServerFiles(
        ca_path=directory / "ca.pem",
        ca_bundle_path=directory / "ca-bundle.pem",
        cert_path=directory / "server.pem",
        key_path=directory / "server-key.pem",
    )
    _write(files.ca_path, ca_pem)
    _write(files.ca_bundle_path, _public_roots() + b"\n" + ca_pem)
    _write(files.cert_path, server_cert.public_bytes(serialization.Encoding.PEM) + ca_pem)
    _write(files.key_path, _pem_key(server_key), private=True)
    return files


def _public_roots() -> bytes:
    """certifi's bundle (a dependency of requests), so a combined bundle still trusts real hosts."""
    import certifi

    return Path(certifi.where()).read_bytes()


def _write(path: Path, data: bytes, private: bool = False) -> None:
    # Write then rename: a client reading the CA while the simulator restarts never sees half a file.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    if private:
        os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def make_client_certificate(common_name: str = "auditkeep-simulator-client", key_size: int = 2048) -> ClientCertificate:
    """A self-signed RSA certificate as registered on an app for certificate auth (docs/api-behaviour.md "Tokens": ≥ 2048 bits)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    return ClientCertificate(
        private_key_pem=_pem_key(key).decode("ascii"),
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        sha1_thumbprint=hashlib.sha1(der).hexdigest().upper(),  # noqa: S324 - x5t is SHA-1 by definition
        sha256_thumbprint=hashlib.sha256(der).hexdigest().upper(),
    )
