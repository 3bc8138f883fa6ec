"""Signed packages: build with a key, unpack only what a trusted key signed.

Each refusal is checked for its exact error type, a message naming the cause, and a
snapshot of the whole test directory equal before and after (as in ``test_unpack``).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import stat
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server.errors import (
    BadSignature,
    SignatureRefused,
    SigningKeyError,
    SpecError,
    UnpackError,
    UnsignedPackage,
    UntrustedSigner,
)
from server.release.package import build_package
from server.release.signature import (
    TrustedKeys,
    announce_policy,
    generate_key_pair,
    public_key_text,
    read_signing_key,
    signature_path,
)
from server.release.source_tree import SourceTree
from server.release.unpack import unpack_package
from server.spec.sys_config import read_sys_config
from tests.release.test_unpack import snapshot

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "signing"
    path.parent.mkdir()
    generate_key_pair(path)
    return path


@pytest.fixture
def signed(demo_tree: Path, key_file: Path, tmp_path: Path) -> Path:
    key = read_signing_key(key_file)
    built = build_package(SourceTree(demo_tree), "demo", "1.0.0", tmp_path / "out", signing_key=key)
    assert built.signed_by == public_key_text(key)
    return built.path


@pytest.fixture
def node_root(tmp_path: Path) -> Path:
    root = tmp_path / "node"
    root.mkdir()
    return root


def trusting(key_file: Path) -> TrustedKeys:
    return TrustedKeys(((key_file.parent / (key_file.name + ".pub")).read_text(),))


def refused_with(
    error: type[SignatureRefused], tmp_path: Path, package: Path, root: Path, keys: TrustedKeys
) -> SignatureRefused:
    before = snapshot(tmp_path)
    with pytest.raises(error) as info:
        unpack_package(package, root, trusted_keys=keys)
    assert snapshot(tmp_path) == before, "nothing changed, nothing left behind"
    assert "\n" not in str(info.value)
    return info.value


def rewrite_checksum(package: Path) -> None:
    """What an attacker who alters a package does: a matching ``.sha256`` beside it."""
    digest = hashlib.sha256(package.read_bytes()).hexdigest()
    package.with_name(package.name + ".sha256").write_text(f"{digest}  {package.name}\n")


def test_keygen_writes_a_private_pem_0600_and_a_public_line(tmp_path: Path) -> None:
    path = tmp_path / "k"
    public = generate_key_pair(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (tmp_path / "k.pub").read_text() == public + "\n"
    assert len(base64.b64decode(public)) == 32
    assert public_key_text(read_signing_key(path)) == public
    before = snapshot(tmp_path)
    with pytest.raises(SigningKeyError, match="already exists"):
        generate_key_pair(path)
    assert snapshot(tmp_path) == before


def test_an_openssl_style_pkcs8_key_is_read(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "k.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    assert public_key_text(read_signing_key(path)) == public_key_text(key)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "cannot read it"),
        (b"not a key", "is not a PEM private key"),
        (
            Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            ),
            "is encrypted",
        ),
    ],
    ids=["missing", "garbage", "encrypted"],
)
def test_a_bad_signing_key_is_refused_before_anything_is_built(
    demo_tree: Path, tmp_path: Path, content: bytes | None, why: str
) -> None:
    path = tmp_path / "key.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SigningKeyError, match=why):
        read_signing_key(path)


def test_a_signed_package_round_trips(
    signed: Path, node_root: Path, key_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert signature_path(signed).read_text().startswith("ed25519 ")
    with caplog.at_level(logging.INFO, logger="server.release.signature"):
        release = unpack_package(signed, node_root, trusted_keys=trusting(key_file))
    assert release.vsn == "1.0.0"
    assert (node_root / "releases" / "1.0.0" / "release.toml").is_file()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_package_signed_by_another_key_is_refused(
    signed: Path, node_root: Path, tmp_path: Path, key_file: Path
) -> None:
    other = TrustedKeys((public_key_text(Ed25519PrivateKey.generate()),))
    error = refused_with(UntrustedSigner, tmp_path, signed, node_root, other)
    assert isinstance(error, UntrustedSigner)
    assert error.key == trusting(key_file).keys[0]
    assert "not in this node's [node] trusted_keys" in str(error)


def test_a_tampered_package_is_refused_even_with_a_matching_checksum(
    signed: Path, node_root: Path, tmp_path: Path, key_file: Path
) -> None:
    data = bytearray(signed.read_bytes())
    data[len(data) // 2] ^= 0x01
    signed.write_bytes(bytes(data))
    rewrite_checksum(signed)
    error = refused_with(BadSignature, tmp_path, signed, node_root, trusting(key_file))
    assert "does not match the package's bytes" in str(error)


def test_a_tampered_signature_is_refused(
    signed: Path, node_root: Path, tmp_path: Path, key_file: Path
) -> None:
    sig = signature_path(signed)
    algorithm, key, signature = sig.read_text().split()
    raw = bytearray(base64.b64decode(signature))
    raw[0] ^= 0x01
    sig.write_text(f"{algorithm} {key} {base64.b64encode(raw).decode()}\n")
    refused_with(BadSignature, tmp_path, signed, node_root, trusting(key_file))


def test_a_signature_naming_a_trusted_key_it_was_not_made_with_is_refused(
    demo_tree: Path, node_root: Path, tmp_path: Path, key_file: Path
) -> None:
    stranger = Ed25519PrivateKey.generate()
    built = build_package(
        SourceTree(demo_tree), "demo", "1.0.0", tmp_path / "out", signing_key=stranger
    )
    sig = signature_path(built.path)
    algorithm, _, signature = sig.read_text().split()
    sig.write_text(f"{algorithm} {trusting(key_file).keys[0]} {signature}\n")
    refused_with(BadSignature, tmp_path, built.path, node_root, trusting(key_file))


@pytest.mark.parametrize(
    "content",
    [b"", b"garbage\n", b"ed25519 abc def\n", b"rsa x y\n", b"\xff\xfe\n", b"x" * 5000],
    ids=["empty", "one-word", "bad-base64", "other-algorithm", "not-ascii", "too-large"],
)
def test_a_malformed_signature_file_is_refused(
    signed: Path, node_root: Path, tmp_path: Path, key_file: Path, content: bytes
) -> None:
    signature_path(signed).write_bytes(content)
    error = refused_with(BadSignature, tmp_path, signed, node_root, trusting(key_file))
    assert "is not one line 'ed25519 <public key> <signature>'" in str(error)


def test_a_fifo_in_place_of_the_signature_does_not_block(
    signed: Path, node_root: Path, tmp_path: Path, key_file: Path
) -> None:
    sig = signature_path(signed)
    sig.unlink()
    os.mkfifo(sig)
    before = snapshot(node_root)  # not the whole directory: reading the FIFO would block
    with pytest.raises(BadSignature, match="not a regular file"):
        unpack_package(signed, node_root, trusted_keys=trusting(key_file))
    assert snapshot(node_root) == before


def test_an_unsigned_package_is_refused_by_a_node_with_trusted_keys(
    demo_tree: Path, node_root: Path, tmp_path: Path, key_file: Path
) -> None:
    built = build_package(SourceTree(demo_tree), "demo", "1.0.0", tmp_path / "out")
    error = refused_with(UnsignedPackage, tmp_path, built.path, node_root, trusting(key_file))
    assert isinstance(error, UnpackError)
    assert "server build --sign KEY" in str(error)


def test_building_unsigned_removes_a_stale_signature(signed: Path, demo_tree: Path) -> None:
    assert signature_path(signed).exists()
    build_package(SourceTree(demo_tree), "demo", "1.0.0", signed.parent)
    assert not signature_path(signed).exists()


def test_without_trusted_keys_any_package_unpacks_with_a_warning(
    demo_tree: Path, node_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    built = build_package(SourceTree(demo_tree), "demo", "1.0.0", tmp_path / "out")
    with caplog.at_level(logging.WARNING, logger="server.release.signature"):
        unpack_package(built.path, node_root)
        announce_policy(TrustedKeys())
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert messages == [
        "package demo-1.0.0.tar.gz is not verified: [node] trusted_keys is empty, so it is "
        "unpacked without checking who built it",
        "release packages are not verified: [node] trusted_keys is empty in sys.config, so any "
        "package handed to this node is unpacked and its code run as this user; list the "
        "public keys of `server keygen` there to accept only signed packages",
    ]


def test_trusted_keys_in_sys_config_are_read_and_normalised(tmp_path: Path) -> None:
    public = public_key_text(Ed25519PrivateKey.generate())
    config = tmp_path / "sys.config"
    config.write_text(f'[node]\ntrusted_keys = [" {public}\\n"]\n')
    assert read_sys_config(config).node.trusted_keys == [public]


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ('["abc"]', "node.trusted_keys[0]"),
        ('["AAAA"]', "node.trusted_keys[0]"),
        ('"AAAA"', "node.trusted_keys"),
        ("[1]", "node.trusted_keys[0]"),
    ],
    ids=["not-base64", "too-short", "not-a-list", "not-a-string"],
)
def test_a_bad_trusted_key_in_sys_config_names_the_field(
    tmp_path: Path, value: str, where: str
) -> None:
    config = tmp_path / "sys.config"
    config.write_text(f"[node]\ntrusted_keys = {value}\n")
    with pytest.raises(SpecError) as info:
        read_sys_config(config)
    assert [field for field, _ in info.value.problems] == [where]


def test_trusted_keys_refuse_what_is_not_a_key() -> None:
    with pytest.raises(ValueError, match="base64 Ed25519 public keys"):
        TrustedKeys(("nope",))
