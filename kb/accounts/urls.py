from django.urls import path

from kb.accounts import views

app_name = "accounts"
urlpatterns = [
    path("", views.organisation_page, name="organisation"),
    path("departments/", views.department_create_view, name="department-create"),
    path("departments/<int:department_id>/move/", views.department_move_view, name="department-move"),
    path("departments/<int:department_id>/members/", views.membership_create_view, name="membership-create"),
    path("memberships/<int:membership_id>/role/", views.membership_role_change_view, name="membership-role"),
    path("memberships/<int:membership_id>/delete/", views.membership_delete_view, name="membership-delete"),
    path("users/", views.user_create_view, name="user-create"),
    path("users/<int:user_id>/role/", views.user_role_change_view, name="user-role"),
    path("users/<int:user_id>/deactivate/", views.user_deactivate_view, name="user-deactivate"),
    path("users/<int:user_id>/reactivate/", views.user_reactivate_view, name="user-reactivate"),
]
