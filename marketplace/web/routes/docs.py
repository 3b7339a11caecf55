"""``GET /api/docs``: interactive documentation of the JSON API (Swagger UI over ``/api/openapi.json``), served
from the vendored copy in ``static/vendor/`` (``scripts/vendor_js.py``): nothing is loaded from elsewhere (no
CDN, no validator badge)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from marketplace.web.deps import SettingsDep

OPENAPI_URL = "/api/openapi.json"
VENDOR = "/static/vendor"

pages = APIRouter(include_in_schema=False)


@pages.get("/api/docs")
def api_docs(settings: SettingsDep) -> HTMLResponse:
    """Swagger UI for this app's OpenAPI schema: try any operation from the browser."""
    return get_swagger_ui_html(
        openapi_url=OPENAPI_URL,
        title=f"{settings.title}: JSON API",
        swagger_js_url=f"{VENDOR}/swagger-ui-bundle.js",
        swagger_css_url=f"{VENDOR}/swagger-ui.css",
        swagger_favicon_url=f"{VENDOR}/swagger-ui-favicon-32x32.png",
        swagger_ui_parameters={"validatorUrl": None, "tryItOutEnabled": True, "displayRequestDuration": True},
    )
