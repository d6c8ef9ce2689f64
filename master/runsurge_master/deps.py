"""The HTTP routers' typed dependencies: the master's shared parts, a database session, the caller.

No `from __future__ import annotations` in the routers: FastAPI must see these annotations as real
objects."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from runsurge_master.auth import TokenError
from runsurge_master.models import User
from runsurge_master.services import Services

bearer = HTTPBearer(auto_error=False)


def services(request: Request) -> Services:
    return request.app.state.services  # set by api.create_app


ServicesDep = Annotated[Services, Depends(services)]


def session(sv: ServicesDep) -> Iterator[Session]:
    """One transaction around the handler: committed when it returns, before the response is sent
    (scope "function"), rolled back if it raises."""
    with sv.db.session() as s:
        yield s


SessionDep = Annotated[Session, Depends(session, scope="function")]


def current_user(sv: ServicesDep, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
    """The caller's user id, from a valid access token of an account that still exists."""
    if creds is None:
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    try:
        user_id = sv.tokens.verify(creds.credentials, "access").sub
    except TokenError as e:
        raise HTTPException(401, f"invalid token: {e}", headers={"WWW-Authenticate": "Bearer"}) from None
    with sv.db.session() as s:  # a deleted account's tokens die with it
        if s.get(User, user_id) is None:
            raise HTTPException(401, "invalid token: no such account", headers={"WWW-Authenticate": "Bearer"})
    return user_id


CurrentUser = Annotated[str, Depends(current_user)]
