"""What a login locked out by django-axes (settings: KB_LOGIN_FAILURE_LIMIT, KB_LOGIN_LOCKOUT_MINUTES) is answered."""

import math

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def login_locked_out(request: HttpRequest, *_: object) -> HttpResponse:
    """Too many attempts: a page that says so and for how long (429), in place of the login form."""
    minutes = math.ceil(settings.AXES_COOLOFF_TIME.total_seconds() / 60)
    return render(request, "registration/locked_out.html", {"minutes": minutes}, status=429)
