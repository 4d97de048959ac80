"""URLs of the counselor web UI (sessions_app/pages.py), Django's login and the language switch.

Emails link to /app/sessions/<id>/: keep that path.
"""

from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog

from sessions_app import pages

urlpatterns = [
    path("", pages.root_page, name="root"),
    path("app/", pages.sessions_page, name="counselor-sessions"),
    path("app/sessions/attention/", pages.attention_page, name="counselor-attention"),
    path("app/sessions/<uuid:session_id>/", pages.session_page, name="counselor-session"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(template_name="counselor/login.html", redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
]
