from django.urls import path

from kb.evaluation import views

app_name = "evaluation"
urlpatterns = [
    path("", views.sets_page, name="sets"),
    path("create/", views.set_create_view, name="set-create"),
    path("<int:set_id>/", views.set_page, name="set"),
    path("<int:set_id>/questions/", views.question_add_view, name="question-add"),
    path("questions/<int:question_id>/delete/", views.question_delete_view, name="question-delete"),
    path("<int:set_id>/import/", views.set_import_view, name="set-import"),
    path("<int:set_id>/export.<str:file_format>", views.set_export_view, name="set-export"),
    path("<int:set_id>/runs/", views.runs_partial, name="runs"),
    path("<int:set_id>/runs/start/", views.run_start_view, name="run-start"),
    path("runs/<int:run_id>/", views.run_page, name="run"),
]
