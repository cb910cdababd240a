from rest_framework.routers import SimpleRouter

from tariffs.api import views

router = SimpleRouter()
router.register("tariffs", views.TariffViewSet)
router.register("tariff-versions", views.TariffVersionViewSet)
router.register("tariff-assignments", views.TariffAssignmentViewSet)
router.register("plants", views.PlantViewSet)
router.register("plant-units", views.PlantUnitViewSet)
router.register("electricity-charges", views.ElectricityChargeViewSet)
router.register("plant-data-imports", views.DataImportViewSet)
router.register("unit-hours", views.UnitHourViewSet)
router.register("spot-prices", views.SpotPriceViewSet)
router.register("operating-costs", views.OperatingCostViewSet)
router.register("price-caps", views.PriceCapViewSet)

urlpatterns = router.urls
