from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

# The login page offers OpenID Connect where it is configured, beside the local accounts' form.
_login_context = {"single_sign_on": settings.KB_OIDC_PROVIDER_NAME} if settings.KB_OIDC_ENABLED else {}

urlpatterns = [
    path("", include("kb.chat.urls")),
    path("documents/", include("kb.documents.urls")),
    path("search/", include("kb.search.urls")),
    path("organisation/", include("kb.accounts.urls")),
    path("audit/", include("kb.audit.urls")),
    path("evaluation/", include("kb.evaluation.urls")),
    path("", include("kb.operations.urls")),
    path("account/api-tokens/", include("kb.accounts.api_token_urls")),
    path("v1/", include("kb.api.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(extra_context=_login_context), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]

handler403 = "kb.platform.views.permission_denied"
handler404 = "kb.platform.views.page_not_found"

if settings.KB_OIDC_ENABLED:
    urlpatterns.append(path("oidc/", include("mozilla_django_oidc.urls")))
