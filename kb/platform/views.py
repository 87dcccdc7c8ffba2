from collections.abc import Callable

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def render_after_change(change: Callable[[], object], render: Callable[..., HttpResponse]) -> HttpResponse:
    """Run a service, then render the page again; an invalid or refused change is shown with its reason (400, 403)
    and changes nothing, as services validate before they write."""
    try:
        change()
    except ValidationError as error:
        return render(status=400, error=" ".join(error.messages))
    except PermissionDenied as error:
        return render(status=403, error=str(error))
    return render()


def render_page(
    request: HttpRequest, template_name: str, context: dict, *, partial: str, status: int = 200
) -> HttpResponse:
    """The whole page, or for an htmx request only the named partial of the same template (django-template-partials),
    so that a page and its updates can never drift apart."""
    return render(request, f"{template_name}#{partial}" if request.htmx else template_name, context, status=status)
