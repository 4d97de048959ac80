"""What django-axes needs from us to throttle logins (settings: AXES_*): whose address a request comes from,
and the page that says a login was refused for too many failures."""

import math

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import ngettext


def client_address(request: HttpRequest) -> str | None:
    """The client's address: the connection's, or, behind LOGIN_TRUSTED_PROXY_COUNT proxies, the one the
    outermost proxy saw (X-Forwarded-For read from its right, past the proxies' own entries: a client may put
    anything on its left)."""
    proxies = settings.LOGIN_TRUSTED_PROXY_COUNT
    if proxies > 0:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR")


def login_refused(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    """429, with the login form (the counselor's or the admin's) saying why and for how long, and Retry-After."""
    seconds = int(settings.AXES_COOLOFF_TIME.total_seconds())
    minutes = math.ceil(seconds / 60)
    message = ngettext(
        "Too many failed logins for this account or from this address. Try again in %(minutes)d minute.",
        "Too many failed logins for this account or from this address. Try again in %(minutes)d minutes.",
        minutes,
    ) % {"minutes": minutes}
    response = original_response
    if isinstance(response, TemplateResponse) and response.context_data and "form" in response.context_data:
        form = response.context_data["form"]
        form.errors.clear()
        form.add_error(None, message)
        response.context_data["login_refused"] = message
        response.content = response.rendered_content
    else:
        response = HttpResponse(message, content_type="text/plain; charset=utf-8")
    response.status_code = 429
    response["Retry-After"] = str(seconds)
    return response
