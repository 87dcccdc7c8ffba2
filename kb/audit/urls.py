from django.urls import path

from kb.audit import views

app_name = "audit"
urlpatterns = [
    path("queries/", views.query_log_page, name="queries"),
    path("queries/export.csv", views.query_log_export_csv, name="export-csv"),
    path("queries/export.jsonl", views.query_log_export_jsonl, name="export-jsonl"),
    path("queries/<int:record_id>/", views.query_record_page, name="query-detail"),
    path("history/", views.history_page, name="history"),
    path("history/<int:record_id>/", views.history_record_page, name="history-detail"),
    path("history/<int:record_id>/feedback/", views.feedback_create_view, name="feedback"),
]
