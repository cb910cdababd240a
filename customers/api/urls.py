from rest_framework.routers import SimpleRouter

from customers.api import views

router = SimpleRouter()
router.register("networks", views.NetworkViewSet)
router.register("customers", views.CustomerViewSet)
router.register("accounts", views.AccountViewSet)
router.register("buildings", views.BuildingViewSet)
router.register("connections", views.ServiceConnectionViewSet)
router.register("interface-units", views.BuildingInterfaceUnitViewSet)
router.register("contracts", views.ContractViewSet)

urlpatterns = router.urls
