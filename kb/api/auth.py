"""Who a request to /v1 acts as: the owner of the personal API token in `Authorization: Bearer`, and nothing else.

No session cookie, no CSRF token, no other header is read: a browser logged in to the knowledge base sends no token,
so a page elsewhere cannot make it call the API, and a request without a valid token is refused whatever it carries.
"""

import functools
from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from kb.accounts.models import ApiToken
from kb.accounts.selectors import api_token_authenticated
from kb.accounts.services import api_token_request_admit
from kb.api.errors import ApiError
from kb.platform.bearer import bearer_token
from kb.platform.request_guard import TOKEN_REFUSED

ApiView = Callable[..., Awaitable[HttpResponse]]


def api_endpoint(*, method: str, scope: ApiToken.Scope | None = None) -> Callable[[ApiView], ApiView]:
    """An async view answering `method` to a token holder with `scope` (None: any valid token), within the token's
    rate limit; the view gets the token (its `user` acts) and may raise ApiError for a refusal."""

    def decorate(view: ApiView) -> ApiView:
        @csrf_exempt
        @functools.wraps(view)
        async def endpoint(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            try:
                if request.method != method:
                    raise ApiError(405, f"Use {method} here.", code="method_not_allowed", headers={"Allow": method})
                token = await sync_to_async(token_admitted)(request, scope)
                return await view(request, token, *args, **kwargs)
            except ApiError as error:
                return error.response()

        return endpoint

    return decorate


def token_admitted(request: HttpRequest, scope: ApiToken.Scope | None) -> ApiToken:
    """The request's token when it may act now: 401 without a valid one, 403 without the scope, 429 over the
    requests per minute of the token's user, over all their tokens (KB_API_RATE_LIMIT)."""
    presented = bearer_token(request.headers.get("Authorization", ""))
    token = api_token_authenticated(presented=presented) if presented else None
    if token is None:
        raise ApiError(
            401,
            TOKEN_REFUSED,
            type="authentication_error",
            code="invalid_api_key",
            headers={"WWW-Authenticate": 'Bearer realm="kb"'},
        )
    if scope is not None and scope not in token.scopes:
        raise ApiError(
            403,
            f"This token does not have the “{scope}” scope; make one that has it on the API tokens page.",
            type="permission_error",
            code="insufficient_scope",
        )
    wait_seconds = api_token_request_admit(token=token, per_minute=settings.KB_API_RATE_LIMIT)
    if wait_seconds:
        raise ApiError(
            429,
            f"Your tokens have made their {settings.KB_API_RATE_LIMIT} requests of this minute; "
            f"retry in {wait_seconds} s.",
            type="rate_limit_error",
            code="rate_limit_exceeded",
            headers={"Retry-After": str(wait_seconds)},
        )
    return token
