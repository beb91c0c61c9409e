"""A local test CA and a leaf certificate (c2pa refuses a self-signed leaf), and a tiny rendered image dataset."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Credentials:
    """PEM files: the leaf then the CA (``chain``), the leaf's key, the CA alone, and a self-signed leaf."""

    chain: Path
    key: Path
    ca: Path
    self_signed: Path


def _name(common_name: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "simgen tests")])  # fmt: skip


def _usage(*, sign: bool, ca: bool):
    from cryptography import x509

    return x509.KeyUsage(digital_signature=sign, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                         encipher_only=False, decipher_only=False)  # fmt: skip


def _cert(subject: str, issuer, public_key, signing_key, *, ca: bool):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(_usage(sign=not ca, ca=ca), critical=True)
    )
    if ca:
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    else:  # c2pa wants a signing EKU on the leaf, and its issuer named by key
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        issuer_key = x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key())
        builder = builder.add_extension(issuer_key, critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def _self_signed(key):
    """What ``openssl req -x509`` makes: a certificate that signs itself (CA:TRUE), with a signing usage."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = datetime.datetime.now(datetime.UTC)
    usage = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=False,
                          encipher_only=False, decipher_only=False)  # fmt: skip
    return (
        x509.CertificateBuilder()
        .subject_name(_name("simgen self-signed"))
        .issuer_name(_name("simgen self-signed"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


@pytest.fixture(scope="session")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> Credentials:
    """A P-256 test CA, a leaf it issued (ES256), and a self-signed leaf, written as PEM files."""
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    root = tmp_path_factory.mktemp("pki")
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _cert("simgen test CA", _name("simgen test CA"), ca_key.public_key(), ca_key, ca=True)
    leaf = _cert("simgen test signer", ca.subject, key.public_key(), ca_key, ca=False)
    alone = _self_signed(key)
    pem = serialization.Encoding.PEM
    (root / "chain.pem").write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    (root / "ca.pem").write_bytes(ca.public_bytes(pem))
    (root / "self.pem").write_bytes(alone.public_bytes(pem))
    (root / "key.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Credentials(root / "chain.pem", root / "key.pem", root / "ca.pem", root / "self.pem")


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 frames of the default scene at 64x48 (PyBullet TinyRenderer); copy it before changing it."""
    from simgen.engine import generate
    from simgen.spec import load_spec, read_spec_file

    spec = load_spec(read_spec_file(REPO / "scenes" / "tabletop_clutter.yaml"), base_dir=REPO / "scenes")
    out = tmp_path_factory.mktemp("rendered") / "ds"
    generate(spec, out, n_frames=3, seed=4, workers=1, renderer="tiny", resolution=(64, 48))
    return out
