"""Sessions in the database, as Django keeps them, read only under keys Django could have made."""

from django.contrib.sessions.backends import db


class SessionStore(db.SessionStore):
    def _validate_session_key(self, key: str | None) -> bool:
        # Django's keys are 32 lower-case letters and digits; a cookie may hold anything, and a NUL in it failed the
        # session query itself (a server error on every page for that browser) instead of finding no session.
        return bool(super()._validate_session_key(key)) and key.isascii() and key.isalnum()
