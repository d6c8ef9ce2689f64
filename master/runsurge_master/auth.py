"""Passwords (scrypt) and tokens (JWT signed with the master's Ed25519 key).

Tokens are asymmetric so workers can verify what the master signs (its calls to them, and later
capabilities for peer data) with only the public key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ALGORITHM = "EdDSA"
ISSUER = "runsurge-master"
VERIFIED_CACHE = 4096  # tokens remembered as verified (the table is emptied when full)
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # ~16 MiB, tens of ms: slow for attackers, fine for logins


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), dklen=32,
                             n=int(n), r=int(r), p=int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


class TokenError(Exception):
    """The token is missing, malformed, expired, forged or of the wrong kind."""


@dataclass(frozen=True)
class Claims:
    sub: str
    typ: str  # access | refresh | worker | master
    owner: str | None = None  # for worker tokens: the contributor's user id
    exp: int = 0


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The signing key lives in a 0600 file; created on first start (or by provisioning)."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 key")
        return key
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.replace(tmp, path)
    return key


class TokenService:
    def __init__(self, key: Ed25519PrivateKey):
        self._key = key
        self._public = key.public_key()
        # Workers present the same token on every call: a signature checks out once, and until the
        # token expires (re-checked on each hit) the result stays the same.
        self._verified: dict[str, Claims] = {}
        self.public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def issue(self, sub: str, typ: str, ttl_s: float, **extra: str) -> str:
        now = int(time.time())
        claims = {"sub": sub, "typ": typ, "iss": ISSUER, "iat": now, "exp": now + int(ttl_s),
                  "jti": secrets.token_hex(8), **extra}
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def verify(self, token: str, *allowed: str) -> Claims:
        claims = self._verified.get(token)
        if claims is None or claims.exp <= time.time():
            try:
                data = jwt.decode(token, self._public, algorithms=[ALGORITHM], issuer=ISSUER,
                                  options={"require": ["exp", "sub", "typ"]})
            except jwt.PyJWTError as e:
                raise TokenError(str(e)) from None
            claims = Claims(sub=data["sub"], typ=data["typ"], owner=data.get("owner"), exp=data["exp"])
            if len(self._verified) >= VERIFIED_CACHE:
                self._verified.clear()
            self._verified[token] = claims
        if claims.typ not in allowed:
            raise TokenError(f"a {claims.typ} token cannot be used here")
        return claims
