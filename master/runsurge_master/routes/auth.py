"""Accounts: sign up, log in, refresh a token pair, who am I."""

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from runsurge_master import accounts
from runsurge_master.auth import TokenError, hash_password, verify_password
from runsurge_master.config import MasterConfig
from runsurge_master.deps import CurrentUser, ServicesDep, SessionDep
from runsurge_master.http_security import LoginLimiter
from runsurge_master.models import User
from runsurge_master.schemas import Credentials, RefreshRequest, TokenPair, UserOut
from runsurge_master.services import Services

router = APIRouter()


@dataclass
class Guards:
    """One app's defences of its accounts: failed logins per address a minute, sign-ups per address
    an hour, and a hash checked for unknown emails (so a login for one takes as long)."""
    logins: LoginLimiter
    signups: LoginLimiter
    no_account: str

    @classmethod
    def from_config(cls, cfg: MasterConfig) -> "Guards":
        return cls(logins=LoginLimiter(cfg.login_attempts_per_minute),
                   signups=LoginLimiter(cfg.registrations_per_hour, window_s=3600.0),
                   no_account=hash_password(secrets.token_hex(16)))


def guards(request: Request) -> Guards:
    return request.app.state.guards  # set by api.create_app


GuardsDep = Annotated[Guards, Depends(guards)]


def _pair(sv: Services, user_id: str) -> TokenPair:
    return TokenPair(access_token=sv.tokens.issue(user_id, "access", sv.cfg.access_token_ttl_s),
                     refresh_token=sv.tokens.issue(user_id, "refresh", sv.cfg.refresh_token_ttl_s),
                     expires_in=sv.cfg.access_token_ttl_s)


def _address(request: Request) -> str:
    return request.client.host if request.client else "?"


@router.post("/api/auth/register", status_code=201, responses={
    400: {"description": "the email or password breaks the sign-up rules (the message says which)"},
    403: {"description": "registration is closed on this master (allow_registration)"},
    409: {"description": "that email is already registered"}, 429: {"description": "too many sign-ups"}})
def register(body: Credentials, request: Request, sv: ServicesDep, guard: GuardsDep) -> UserOut:
    if not sv.cfg.allow_registration:
        raise HTTPException(403, "registration is closed on this master")
    address = _address(request)
    wait = guard.signups.retry_after(address)
    if wait:
        raise HTTPException(429, f"too many sign-ups from your address; try again in {wait} s",
                            headers={"Retry-After": str(wait)})
    guard.signups.failed(address)  # every attempt counts
    try:
        email = accounts.normalize_email(body.email)
        accounts.check_password(body.password, email)
    except accounts.AccountError as e:
        raise HTTPException(400, str(e)) from None
    try:  # its own transaction: a duplicate email is caught at the commit, not after the response
        with sv.db.session() as s:
            u = User(email=email, password_hash=hash_password(body.password))
            s.add(u)
            s.flush()
            return UserOut(id=u.id, email=u.email)
    except IntegrityError:
        raise HTTPException(409, "that email is already registered") from None


@router.post("/api/auth/login", responses={401: {"description": "wrong email or password"},
                                           429: {"description": "too many failed logins"}})
def login(body: Credentials, request: Request, sv: ServicesDep, s: SessionDep, guard: GuardsDep) -> TokenPair:
    address, account = _address(request), accounts.lookup_email(body.email)
    wait = guard.logins.retry_after(address)  # the guessing address waits; the owner elsewhere never does
    if wait:
        raise HTTPException(429, f"too many failed logins from your address; try again in {wait} s",
                            headers={"Retry-After": str(wait)})
    u = s.scalar(select(User).where(User.email == account)) if account else None
    ok = verify_password(body.password, u.password_hash if u else guard.no_account) and u is not None
    if not ok:
        guard.logins.failed(address)
        raise HTTPException(401, "wrong email or password")
    return _pair(sv, u.id)


@router.post("/api/auth/refresh", responses={401: {"description": "an expired, invalid or not-refresh token"}})
def refresh(body: RefreshRequest, sv: ServicesDep, s: SessionDep) -> TokenPair:
    try:
        user_id = sv.tokens.verify(body.refresh_token, "refresh").sub
    except TokenError as e:
        raise HTTPException(401, f"invalid refresh token: {e}") from None
    if s.get(User, user_id) is None:
        raise HTTPException(401, "unknown user")
    return _pair(sv, user_id)


@router.get("/api/me")
def me(user: CurrentUser, s: SessionDep) -> UserOut:
    u = s.get(User, user)
    return UserOut(id=u.id, email=u.email)
