from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("", include("kb.chat.urls")),
    path("documents/", include("kb.documents.urls")),
    path("search/", include("kb.search.urls")),
    path("organisation/", include("kb.accounts.urls")),
    path("audit/", include("kb.audit.urls")),
    path("evaluation/", include("kb.evaluation.urls")),
    path("account/api-tokens/", include("kb.accounts.api_token_urls")),
    path("v1/", include("kb.api.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
