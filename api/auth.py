"""Who is calling: a bearer token (or the war room's cookie) mapped to an actor and a role."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from revleak.api.config import TokenGrant
from revleak.remediation.model import Role

COOKIE = "revleak_token"


@dataclass(frozen=True)
class Principal:
    actor: str
    role: Role


def authenticate(request: Request) -> Principal:
    tokens: dict[str, TokenGrant] = request.app.state.settings.api_tokens
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if not header:
        presented = request.cookies.get(COOKIE, "")
    elif scheme.lower() != "bearer" or not presented:
        raise _unauthorized("use 'Authorization: Bearer <token>'")
    if not presented:
        raise _unauthorized("a bearer token is required")
    # Compare with every token so that timing does not tell which prefix matched.
    found: TokenGrant | None = None
    for token, grant in tokens.items():
        if hmac.compare_digest(token.encode(), presented.encode()):
            found = grant
    if found is None:
        raise _unauthorized("the token is not valid")
    return Principal(found.actor, found.role)


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=message, headers={"WWW-Authenticate": "Bearer"}
    )


def require(role: Role) -> Callable[[Principal], Principal]:
    def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if principal.role.rank < role.rank:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"role {principal.role.value} may not do this: it needs {role.value}",
            )
        return principal

    return check


Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Approver = Annotated[Principal, Depends(require(Role.APPROVER))]
