from django.urls import path

from kb.chat import views

app_name = "chat"
urlpatterns = [
    path("", views.chat_page, name="page"),
    path("ask/", views.chat_ask, name="ask"),
    path("questions/<int:question_id>/", views.question_exchange, name="question"),
    path("questions/<int:question_id>/stream/", views.question_stream, name="question-stream"),
    path("questions/<int:question_id>/stop/", views.question_stop_view, name="question-stop"),
    path("models/", views.models_page, name="models"),
]
