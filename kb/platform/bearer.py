"""`Authorization: Bearer <token>`, read one way by everything that takes a token (the API, /metrics, the ASGI
guard)."""


def bearer_token(authorization: str) -> str:
    """The token of an Authorization header's value; "" where the scheme is not Bearer or no token follows it."""
    scheme, _, presented = authorization.partition(" ")
    return presented.strip() if scheme.lower() == "bearer" else ""
