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


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler403: the reason the view gave, on a page of the site (Django's own is a bare line)."""
    return _refusal(request, status=403, title="Not allowed", reason=str(exception) or "You may not open this page.")


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404, saying nothing of the URL patterns tried (the resolver's exception lists them)."""
    reason = "Nothing is here: it may have been removed, or the address is mistyped."
    return _refusal(request, status=404, title="Not found", reason=reason)


def _refusal(request: HttpRequest, *, status: int, title: str, reason: str) -> HttpResponse:
    if request.headers.get("HX-Request"):
        # Said in the page's problem banner (kb.js), not swapped in: a whole page in place of a table row or a panel.
        response = HttpResponse(reason, status=status, content_type="text/plain; charset=utf-8")
        response["HX-Reswap"] = "none"
        return response
    return render(request, "refused.html", {"title": title, "reason": reason}, status=status)
