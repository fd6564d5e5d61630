"""Keys: an HMAC secret or a PEM key, inline or `@/path/to/file`, checked against the algorithm.

PyJWT and cryptography are imported here only when a key is loaded, so `import ssehub.auth`
(selectors, grants, token lookup) works without the optional `jwt` extra.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["ALGORITHMS", "DEFAULT_ALGORITHM", "load_key", "normalize_algorithm"]

DEFAULT_ALGORITHM = "HS256"
#: The algorithms a hub may be configured with. "none" is not one of them, ever.
ALGORITHMS = ("HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "EdDSA")

# RFC 7518 §3.2: "A key of the same size as the hash output (for instance, 256 bits for
# "HS256") or larger MUST be used with this algorithm."
_HMAC_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
# NIST SP 800-131A disallows RSA keys under 2048 bits for signatures (PyJWT warns on them).
_RSA_MIN_BITS = 2048
_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1"}


def jwt_module() -> ModuleType:
    """PyJWT, or ModuleNotFoundError saying which extra installs it."""
    try:
        import cryptography  # noqa: F401  (the RS/ES/EdDSA algorithms need it)
        import jwt
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"JWT authorization needs PyJWT and cryptography ({exc.name} is missing): "
            "pip install 'ssehub[jwt]'",
            name=exc.name,
        ) from exc
    return jwt


def normalize_algorithm(algorithm: str, label: str = "algorithm") -> str:
    """The canonical spelling of a supported algorithm (case-insensitive), else ValueError."""
    if isinstance(algorithm, str):
        for name in ALGORITHMS:
            if name.lower() == algorithm.lower():
                return name
    raise ValueError(
        f"{label}: unknown algorithm {algorithm!r}: use one of {', '.join(ALGORITHMS)}"
    )


def _read(key: str | bytes, label: str) -> tuple[bytes, bool]:
    """The key's bytes, and whether they came from a file."""
    if isinstance(key, bytes):
        return key, False
    if not isinstance(key, str):
        raise ValueError(
            f"{label}: a key is a string (or @/path/to/file), not {type(key).__name__}"
        )
    if not key.startswith("@"):
        try:
            return key.encode(), False
        except UnicodeEncodeError:  # a lone surrogate: its message would quote the key
            raise ValueError(f"{label}: the key is not valid Unicode text") from None
    path = os.path.expanduser(key[1:])
    try:
        with open(path, "rb") as file:
            return file.read(), True
    except OSError as exc:
        raise ValueError(f"{label}: cannot read key file {path!r}: {exc.strerror or exc}") from None


def _hmac_secret(data: bytes, from_file: bool, algorithm: str, label: str) -> bytes:
    if from_file:
        # `echo secret > file` and editors end the file with a newline that is no part of the
        # secret: one trailing "\n" or "\r\n" is dropped (only one: the rest is the secret).
        data = data.removesuffix(b"\n").removesuffix(b"\r") if data.endswith(b"\n") else data
    if not data:
        raise ValueError(f"{label}: the HMAC secret is empty")
    stripped = data.lstrip()
    if stripped.startswith(b"-----BEGIN") or stripped.startswith((b"ssh-", b"ecdsa-")):
        # A public key used as an HMAC secret is the algorithm-confusion setup: anyone holding
        # the public key could sign tokens. (RFC 8725 §2.1 describes the attack.)
        raise ValueError(
            f"{label}: {algorithm} needs an HMAC secret, not a PEM/SSH key; for a public key "
            "use RS256, ES256 or EdDSA"
        )
    minimum = _HMAC_BYTES[algorithm]
    if len(data) < minimum:
        raise ValueError(
            f"{label}: the HMAC secret is {len(data)} bytes; {algorithm} needs at least "
            f"{minimum} (RFC 7518 §3.2)"
        )
    jwt = jwt_module()
    try:
        # PyJWT's own guard against key-shaped secrets (DER keys, JWK JSON), which it would
        # otherwise refuse at every verification.
        jwt.algorithms.HMACAlgorithm(jwt.algorithms.HMACAlgorithm.SHA256).prepare_key(data)
    except jwt.exceptions.InvalidKeyError:
        raise ValueError(f"{label}: {algorithm} needs an HMAC secret, not a key") from None
    return data


def _asymmetric(data: bytes, algorithm: str, label: str, private: bool) -> Any:
    jwt_module()
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    def load(private: bool) -> Any:
        if private:
            return serialization.load_pem_private_key(data, password=None)
        return serialization.load_pem_public_key(data)

    wanted, other = ("private", "public") if private else ("public", "private")
    errors = (ValueError, TypeError, UnsupportedAlgorithm)
    try:
        key = load(private)
    except errors:
        try:
            load(not private)  # only to say what was given instead
        except errors:
            raise ValueError(
                f"{label}: not an unencrypted PEM {wanted} key ({algorithm} needs one)"
            ) from None
        purpose = "sign tokens" if private else "verify tokens (the private key signs them)"
        raise ValueError(
            f"{label}: this is a {other} key; to {purpose} give the {wanted} key"
        ) from None
    # The loader has told public from private; what is left is the family and its size.
    family = algorithm[:2]
    if family == "RS":
        if not isinstance(key, (rsa.RSAPublicKey, rsa.RSAPrivateKey)):
            raise ValueError(f"{label}: {algorithm} needs an RSA key, not {_kind(key)}")
        if key.key_size < _RSA_MIN_BITS:
            raise ValueError(
                f"{label}: the RSA key has {key.key_size} bits; at least {_RSA_MIN_BITS} needed"
            )
    elif family == "ES":
        if not isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
            raise ValueError(f"{label}: {algorithm} needs an EC key, not {_kind(key)}")
        if key.curve.name != _CURVES[algorithm]:
            raise ValueError(
                f"{label}: {algorithm} needs a {_CURVES[algorithm]} key, not {key.curve.name}"
            )
    elif not isinstance(
        key,
        (
            ed25519.Ed25519PublicKey,
            ed25519.Ed25519PrivateKey,
            ed448.Ed448PublicKey,
            ed448.Ed448PrivateKey,
        ),
    ):
        raise ValueError(f"{label}: EdDSA needs an Ed25519 or Ed448 key, not {_kind(key)}")
    return key


def _kind(key: object) -> str:
    name = type(key).__name__.removeprefix("_")
    for suffix in ("PublicKey", "PrivateKey"):
        name = name.removesuffix(suffix)
    return f"an {name} key" if name[:1] in "AEIOU" else f"a {name} key"


def load_key(key: str | bytes, algorithm: str, label: str = "key", *, private: bool = False) -> Any:
    """The key to give PyJWT for `algorithm`: the secret's bytes for HS*, a cryptography key
    object for RS/ES/EdDSA (a public key to verify, a private key when `private`, to sign).
    `key` is the secret or PEM text, or `@/path/to/file`. ValueError (one line, naming `label`,
    never quoting the key) when it does not fit."""
    algorithm = normalize_algorithm(algorithm, label)
    data, from_file = _read(key, label)
    if algorithm.startswith("HS"):
        return _hmac_secret(data, from_file, algorithm, label)
    return _asymmetric(data, algorithm, label, private)
