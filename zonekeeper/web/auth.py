"""Who is asking, and may they: the console's session cookie, CSRF check and roles.

Every state-changing request (POST) but sign-in must carry the session's CSRF token, as the
``X-CSRF-Token`` header (htmx sends it from the page's ``hx-headers``) or the ``csrf`` form
field; without it the answer is 403 and nothing changes. Roles nest like the API's scopes:
viewer (read) < editor (write) < admin.
"""

from __future__ import annotations

import hmac
from typing import Annotated

import structlog
from fastapi import Depends, Request

from zonekeeper.context import AppContext
from zonekeeper.services.tokens import Scope, covers
from zonekeeper.services.users import Session

COOKIE = "zk_session"


class SignInRequired(Exception):
    """No live session: GET pages redirect to the sign-in page, other requests get 401."""


class NotAllowed(Exception):
    """A signed-in user without the right (role or CSRF token): 403, as a page for a page
    request and as text for htmx and form posts. Nothing has changed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def ctx_of(request: Request) -> AppContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


async def current_session(request: Request) -> Session:
    ctx = ctx_of(request)
    session = await ctx.users.resolve(request.cookies.get(COOKIE, ""))
    if session is None:
        raise SignInRequired()
    request.state.session = session
    # Every log line of this request (zone.changed among them) names the user.
    structlog.contextvars.bind_contextvars(user=session.user)
    if request.method not in ("GET", "HEAD"):
        sent = request.headers.get("x-csrf-token")
        if sent is None:
            form = await request.form()
            field = form.get("csrf")
            sent = field if isinstance(field, str) else None
        if not sent or not hmac.compare_digest(sent, session.csrf):
            raise NotAllowed("missing or wrong CSRF token: reload the page and try again")
    return session


def role(needed: Scope) -> object:
    async def dependency(session: Annotated[Session, Depends(current_session)]) -> Session:
        if not covers({session.scope}, needed):
            raise NotAllowed(f"your role ({session.role}) may not do this")
        return session

    return Depends(dependency)


Viewer = Annotated[Session, role(Scope.READ)]
Editor = Annotated[Session, role(Scope.WRITE)]
Admin = Annotated[Session, role(Scope.ADMIN)]
