from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from heatutility.health import healthz

admin.site.site_header = "heatutility — staff"
admin.site.site_title = "heatutility"
admin.site.index_title = "District-heating utility administration"

api_v1 = [
    path("", include("customers.api.urls")),
    path("", include("metering.api.urls")),
    path("", include("tariffs.api.urls")),
    path("", include("billing.api.urls")),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("portal/", include("customers.portal.urls")),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    path("api/auth/", include("rest_framework.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]

handler404 = "heatutility.api.not_found"
