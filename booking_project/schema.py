"""`GET /api/schema/`, the OpenAPI document (API.md "Schema")."""

from drf_spectacular.views import SpectacularAPIView
from rest_framework.renderers import JSONRenderer


class OpenApiDocumentApi(SpectacularAPIView):
    """The document (YAML unless JSON is asked for): open to all outside production, to people who log in there
    (SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"]). Its errors are JSON in the contract's shape, like every other
    error, whatever the document's format."""

    def finalize_response(self, request, response, *args, **kwargs):
        if response.status_code >= 400:
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), "application/json"
        return super().finalize_response(request, response, *args, **kwargs)
