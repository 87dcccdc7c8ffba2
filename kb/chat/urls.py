from django.urls import path

from kb.chat import views

app_name = "chat"
urlpatterns = [
    path("", views.chat_page, name="page"),
    path("ask/", views.chat_ask, name="ask"),
    path("conversations/<int:conversation_id>/", views.conversation_page, name="conversation"),
    path("conversations/<int:conversation_id>/rename/", views.conversation_rename_view, name="conversation-rename"),
    path("conversations/<int:conversation_id>/delete/", views.conversation_delete_view, name="conversation-delete"),
    path("questions/<int:question_id>/", views.question_exchange, name="question"),
    path("questions/<int:question_id>/stream/", views.question_stream, name="question-stream"),
    path("questions/<int:question_id>/stop/", views.question_stop_view, name="question-stop"),
    path("models/", views.models_page, name="models"),
]
