import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runsurge_master.auth import TokenError, TokenService, hash_password, load_or_create_key, verify_password


def test_passwords_are_salted_and_verified():
    h1, h2 = hash_password("correct horse"), hash_password("correct horse")
    assert h1 != h2 and h1.startswith("scrypt$")
    assert verify_password("correct horse", h1)
    assert not verify_password("wrong horse", h1)
    assert not verify_password("x", "garbage")


def test_tokens_verify_only_when_genuine_fresh_and_of_the_right_kind():
    tokens = TokenService(Ed25519PrivateKey.generate())
    good = tokens.issue("u1", "access", 60)
    assert tokens.verify(good, "access").sub == "u1"
    with pytest.raises(TokenError, match="cannot be used here"):
        tokens.verify(good, "worker")
    expired = tokens.issue("u1", "access", -5)
    with pytest.raises(TokenError, match="expired"):
        tokens.verify(expired, "access")
    forged = TokenService(Ed25519PrivateKey.generate()).issue("u1", "access", 60)
    with pytest.raises(TokenError):
        tokens.verify(forged, "access")
    with pytest.raises(TokenError):
        tokens.verify("not-a-jwt", "access")
    assert tokens.verify(tokens.issue("w", "worker", 60, owner="u1"), "worker").owner == "u1"
    assert tokens.verify(good, "access").exp >= int(time.time()) + 59


def test_signing_key_file_is_private_and_stable(tmp_path):
    path = tmp_path / "k.pem"
    k1 = load_or_create_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    k2 = load_or_create_key(path)
    assert TokenService(k1).public_pem == TokenService(k2).public_pem


def test_a_verified_token_is_remembered_only_until_it_expires(monkeypatch):
    tokens = TokenService(Ed25519PrivateKey.generate())
    token = tokens.issue("w", "worker", 1)
    exp = tokens.verify(token, "worker").exp
    with monkeypatch.context() as m:
        m.setattr("jwt.decode", lambda *a, **k: pytest.fail("the signature was checked again"))
        assert tokens.verify(token, "worker").sub == "w"  # remembered
        with pytest.raises(TokenError, match="cannot be used here"):
            tokens.verify(token, "access")  # the kind is still checked on every use
    time.sleep(max(0.0, exp - time.time()) + 0.1)
    with pytest.raises(TokenError, match="expired"):
        tokens.verify(token, "worker")  # past its expiry: checked again, and refused
