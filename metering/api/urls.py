from django.urls import path
from rest_framework.routers import SimpleRouter

from metering.api import meters, readings

router = SimpleRouter()
router.register("meters", meters.HeatMeterViewSet)
router.register("meter-installations", meters.MeterInstallationViewSet)

urlpatterns = [
    path("readings/", readings.ReadingBatchView.as_view(), name="readings-batch"),
    path("readings/files/", readings.ReadingFileView.as_view(), name="readings-file"),
    path("readings/meters/", readings.VendorMeterListView.as_view(), name="readings-meters"),
    path(
        "readings/batches/<int:pk>/",
        readings.BatchStatusView.as_view(),
        name="readings-batch-status",
    ),
    *router.urls,
]
