from django.urls import path

from kb.chat import views

app_name = "chat"
urlpatterns = [
    path("", views.chat_page, name="page"),
    path("ask/", views.chat_ask, name="ask"),
    path("stream/", views.chat_stream, name="stream"),
    path("models/", views.models_page, name="models"),
]
