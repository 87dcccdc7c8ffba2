from collections.abc import Callable

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse


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
