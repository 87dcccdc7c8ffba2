from django.http import HttpRequest

from kb.accounts.selectors import departments_administered_by


def navigation(request: HttpRequest) -> dict[str, bool]:
    """Which admin links the menu shows; the pages themselves check again."""
    user = request.user
    if not user.is_authenticated:
        return {"administers_departments": False}
    return {"administers_departments": user.is_superuser or departments_administered_by(user=user).exists()}
