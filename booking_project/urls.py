from django.contrib import admin
from django.urls import include, path, re_path

from booking_project.admin_queue import work_queue_view
from booking_project.errors import api_not_found
from booking_project.metrics import metrics_view
from booking_project.schema import OpenApiDocumentApi
from meetings_app.apis import FeishuEventsApi, ZoomEventsApi
from sessions_app.apis import (
    AvailabilityApi,
    SessionBookApi,
    SessionCancelApi,
    SessionCompleteApi,
    SessionDetailApi,
    SessionListApi,
    SessionRescheduleApi,
    SessionRetryApi,
)

api_patterns = [
    path("api/counselor/sessions/book", SessionBookApi.as_view(), name="session-book"),
    path("api/counselor/sessions", SessionListApi.as_view(), name="session-list"),
    # str, not uuid: a malformed id must still reach the API and answer 404 in the contract's shape.
    path("api/counselor/sessions/<str:session_id>", SessionDetailApi.as_view(), name="session-detail"),
    path("api/counselor/sessions/<str:session_id>/retry", SessionRetryApi.as_view(), name="session-retry"),
    path("api/counselor/sessions/<str:session_id>/cancel", SessionCancelApi.as_view(), name="session-cancel"),
    path(
        "api/counselor/sessions/<str:session_id>/reschedule", SessionRescheduleApi.as_view(), name="session-reschedule"
    ),
    path("api/counselor/sessions/<str:session_id>/complete", SessionCompleteApi.as_view(), name="session-complete"),
    path("api/counselor/availability", AvailabilityApi.as_view(), name="availability"),
    # The providers' webhooks: signed by the provider, never a logged-in user.
    path("api/providers/zoom/events", ZoomEventsApi.as_view(), name="provider-events-zoom"),
    path("api/providers/feishu/events", FeishuEventsApi.as_view(), name="provider-events-feishu"),
    path("api/schema/", OpenApiDocumentApi.as_view(), name="schema"),
    # Anything else under /api/ answers the contract's 404, with DEBUG on or off.
    re_path(r"^api/", api_not_found),
]

# The admin's index links the operators' one queue (templates/admin/booking_index.html).
admin.site.index_template = "admin/booking_index.html"

urlpatterns = [
    # Staff only (the admin's login); each action checks its own permission.
    path("admin/queue/", admin.site.admin_view(work_queue_view), name="admin-work-queue"),
    path("admin/", admin.site.urls),
    # Prometheus scrapes it (booking_project/metrics.py); METRICS_TOKEN guards it where it must be.
    path("metrics", metrics_view, name="metrics"),
    *api_patterns,
    # The counselor web UI: pages under /app/, login under /accounts/.
    path("", include("sessions_app.page_urls")),
]

handler400 = "booking_project.errors.api_bad_request"
handler404 = "booking_project.errors.api_not_found"
handler500 = "booking_project.errors.api_server_error"
