from rest_framework.routers import SimpleRouter

from metering.api import meters

router = SimpleRouter()
router.register("meters", meters.HeatMeterViewSet)
router.register("meter-installations", meters.MeterInstallationViewSet)

urlpatterns = [
    *router.urls,
]
