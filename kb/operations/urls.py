from django.urls import path

from kb.operations import views

app_name = "operations"
urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("readyz/worker", views.worker_readyz, name="worker-readyz"),
    path("metrics", views.metrics, name="metrics"),
    path("operations/", views.operations_page, name="page"),
]
