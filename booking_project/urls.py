from django.contrib import admin
from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from sessions_app.apis import SessionBookApi, SessionDetailApi, SessionListApi

api_patterns = [
    path("api/counselor/sessions/book", SessionBookApi.as_view(), name="session-book"),
    path("api/counselor/sessions", SessionListApi.as_view(), name="session-list"),
    # str, not uuid: a malformed id must still reach the API and answer 404 in the contract's shape.
    path("api/counselor/sessions/<str:session_id>", SessionDetailApi.as_view(), name="session-detail"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    *api_patterns,
]

handler404 = "booking_project.errors.api_not_found"
handler500 = "booking_project.errors.api_server_error"
