"""Package signatures: who built a release package, checked before the node reads it.

A package is code: ``check`` imports its modules in the live node and a relup runs the
functions it names. Whoever hands the node a package runs code as the node's user, and
Python cannot sandbox that, so the node checks where a package comes from instead.

How this works:

1. Keys are Ed25519. A private key is a PEM file in PKCS#8, unencrypted (what
   ``server keygen`` writes with mode 0600, and what ``openssl genpkey -algorithm ed25519``
   writes). A public key is one line: its 32 raw bytes in standard base64, 44 characters
   (the ``.pub`` file ``server keygen`` writes beside the private key, and what
   ``[node] trusted_keys`` lists).
2. ``server build --sign KEY`` writes ``<name>-<vsn>.tar.gz.sig`` beside the package, one
   line ``ed25519 <public key> <signature>`` (both base64). The signature is over the
   statement ``server-release-package-v1 NUL <file name> NUL <sha256 of the package>``:
   the tag keeps a signature made with the key for anything else from passing as a
   package's, the file name binds it to that release name and vsn.
3. The digest is signed, not the bytes: Ed25519 (RFC 8032, as ``cryptography`` offers it)
   takes the whole message in one call, and a package may be hundreds of megabytes.
   Unpack already streams SHA-256 over the package and checks it again on each pass over
   the archive, so a signature over that digest covers exactly the bytes that are
   extracted; it rests on SHA-256's collision resistance, as the checksum file does.
4. A node with trusted keys checks the signature file (a regular file of at most 4 KiB,
   opened without blocking) right after hashing the package and before reading the
   archive: the key it names must be one of the trusted keys, and the signature must
   verify with that trusted key over the digest unpack computed. Any other case is a
   ``SignatureRefused`` and nothing is written.
5. A node without trusted keys unpacks any package, and says so: a WARNING at boot
   (``announce_policy``) and at each unpack (``check_origin``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING, final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from server.errors import BadSignature, SigningKeyError, UnsignedPackage, UntrustedSigner
from server.spec.sys_config import canonical_public_key

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "NO_TRUSTED_KEYS",
    "SIGNATURE_SUFFIX",
    "TrustedKeys",
    "announce_policy",
    "check_origin",
    "generate_key_pair",
    "public_key_text",
    "read_signing_key",
    "signature_line",
    "signature_path",
]

logger = logging.getLogger(__name__)

#: The signature of ``<pkg>.tar.gz`` is ``<pkg>.tar.gz.sig``.
SIGNATURE_SUFFIX = ".sig"

_ALGORITHM = "ed25519"
_TAG = b"server-release-package-v1"
_SIGNATURE_SIZE = 64
_MAX_SIGNATURE_FILE = 4096
_MAX_KEY_FILE = 64 << 10
_SIGN_HINT = "create one with `server keygen KEY` (or `openssl genpkey -algorithm ed25519`)"


@final
@dataclass(frozen=True, slots=True)
class TrustedKeys:
    """The public keys a node accepts packages from; none means packages are not verified.

    ``keys`` are base64 public keys (see the module docstring), as ``[node] trusted_keys``
    lists them.
    """

    keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        normalised = tuple(dict.fromkeys(canonical_public_key(key) for key in self.keys))
        if any(key is None for key in normalised):
            raise ValueError("TrustedKeys.keys holds base64 Ed25519 public keys (32 bytes)")
        object.__setattr__(self, "keys", normalised)

    @property
    def required(self) -> bool:
        """Whether packages must be signed by one of the keys."""
        return bool(self.keys)


#: A node that trusts no key: it unpacks any package, warning that it is not verified.
NO_TRUSTED_KEYS = TrustedKeys()


def signature_path(package: Path) -> Path:
    """Where the signature of ``package`` lives: beside it, ``.sig`` appended."""
    return package.with_name(package.name + SIGNATURE_SUFFIX)


def public_key_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The public key as ``[node] trusted_keys`` lists it: 32 bytes in base64."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def signature_line(key: Ed25519PrivateKey, package_name: str, sha256: str) -> bytes:
    """The content of the signature file of package ``package_name`` whose digest is ``sha256``."""
    signature = key.sign(_statement(package_name, sha256))
    encoded = base64.b64encode(signature).decode("ascii")
    return f"{_ALGORITHM} {public_key_text(key)} {encoded}\n".encode("ascii")


def generate_key_pair(private_path: Path) -> str:
    """Write a new key pair: ``private_path`` (PEM PKCS#8, 0600) and ``<private_path>.pub``.

    Returns:
        The public key (the line of the ``.pub`` file).

    Raises:
        SigningKeyError: either file exists already (neither is overwritten), or cannot
            be written.
    """
    public_path = private_path.with_name(private_path.name + ".pub")
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise SigningKeyError(str(path), "already exists; keygen never overwrites a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    text = public_key_text(key)
    _write_new(private_path, pem, 0o600)
    try:
        _write_new(public_path, f"{text}\n".encode("ascii"), 0o644)
    except SigningKeyError:
        private_path.unlink()
        raise
    return text


def read_signing_key(path: Path) -> Ed25519PrivateKey:
    """Read an Ed25519 private key from a PEM PKCS#8 file (unencrypted).

    Raises:
        SigningKeyError: the file is missing, unreadable, encrypted, not PEM, or not an
            Ed25519 key.
    """
    try:
        with path.open("rb") as file:
            data = file.read(_MAX_KEY_FILE + 1)
    except OSError as exc:
        raise SigningKeyError(
            str(path), f"cannot read it ({exc.strerror or exc}); {_SIGN_HINT}"
        ) from None
    if len(data) > _MAX_KEY_FILE:
        raise SigningKeyError(str(path), "is too large to be a private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise SigningKeyError(
            str(path),
            "is encrypted; give an unencrypted copy (openssl pkey -in KEY -out PLAIN) kept "
            "where only the builder can read it",
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise SigningKeyError(
            str(path), f"is not a PEM private key (PKCS#8); {_SIGN_HINT}"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(
            str(path), f"is a {type(key).__name__.lstrip('_')}, not an Ed25519 key; {_SIGN_HINT}"
        )
    return key


def announce_policy(trusted: TrustedKeys) -> None:
    """Log at boot whether packages are verified (a WARNING when they are not)."""
    if trusted.required:
        logger.info("release packages must be signed by one of %d trusted keys", len(trusted.keys))
    else:
        logger.warning(
            "release packages are not verified: [node] trusted_keys is empty in sys.config, "
            "so any package handed to this node is unpacked and its code run as this user; "
            "list the public keys of `server keygen` there to accept only signed packages"
        )


def check_origin(package: Path, sha256: str, trusted: TrustedKeys) -> None:
    """Check that ``package`` (whose bytes hash to ``sha256``) is signed by a trusted key.

    Without trusted keys the package is accepted, with a WARNING saying it is not verified.

    Raises:
        UnsignedPackage: there is no signature file beside it.
        UntrustedSigner: the signature names a key that is not trusted.
        BadSignature: the signature file is malformed or unreadable, or does not verify.
    """
    if not trusted.required:
        logger.warning(
            "package %s is not verified: [node] trusted_keys is empty, so it is unpacked "
            "without checking who built it",
            package.name,
        )
        return
    where = str(package)
    sig = signature_path(package)
    key, signature = _read_signature(where, sig)
    if key not in trusted.keys:
        raise UntrustedSigner(where, str(sig), key)
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(key))
    try:
        public.verify(signature, _statement(package.name, sha256))
    except InvalidSignature:
        raise BadSignature(
            where,
            str(sig),
            f"its signature does not match the package's bytes (sha256 {sha256})",
        ) from None
    logger.info("package %s is signed by trusted key %s", package.name, key)


def _statement(package_name: str, sha256: str) -> bytes:
    return b"\0".join((_TAG, package_name.encode("utf-8"), bytes.fromhex(sha256)))


def _read_signature(package: str, sig: Path) -> tuple[str, bytes]:
    """The key and signature a signature file names (neither trusted yet)."""
    try:
        # O_NONBLOCK: a FIFO in the signature's place must not block the unpack
        fd = os.open(sig, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UnsignedPackage(package, str(sig)) from None
    except OSError as exc:
        raise BadSignature(
            package, str(sig), f"its signature file cannot be opened ({exc.strerror or exc})"
        ) from None
    with contextlib.closing(os.fdopen(fd, "rb")) as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise BadSignature(package, str(sig), "its signature file is not a regular file")
        data = file.read(_MAX_SIGNATURE_FILE + 1)
    malformed = BadSignature(
        package,
        str(sig),
        f"its signature file is not one line '{_ALGORITHM} <public key> <signature>' "
        "as `server build --sign` writes",
    )
    try:
        fields = data.decode("ascii").removesuffix("\n").split(" ")
    except UnicodeDecodeError:
        raise malformed from None
    if len(data) > _MAX_SIGNATURE_FILE or len(fields) != 3 or fields[0] != _ALGORITHM:
        raise malformed
    key = canonical_public_key(fields[1])
    try:
        signature = base64.b64decode(fields[2], validate=True)
    except (binascii.Error, ValueError):
        raise malformed from None
    if key is None or len(signature) != _SIGNATURE_SIZE:
        raise malformed
    return key, signature


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    except OSError as exc:
        raise SigningKeyError(str(path), f"cannot write it ({exc.strerror or exc})") from None
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), mode)  # whatever the umask
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
