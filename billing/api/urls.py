from django.urls import path
from rest_framework.routers import DefaultRouter

from billing.api import views

router = DefaultRouter()
router.register("billing/runs", views.BillingRunViewSet, basename="billingrun")
router.register("billing/invoices", views.InvoiceViewSet, basename="invoice")
router.register("billing/payments", views.PaymentViewSet, basename="payment")
router.register("billing/refunds", views.RefundViewSet, basename="refund")
router.register("billing/instalment-plans", views.InstalmentPlanViewSet, basename="instalmentplan")
router.register(
    "billing/instalment-plannings",
    views.InstalmentPlanningViewSet,
    basename="instalmentplanning",
)

urlpatterns = [
    *router.urls,
    path(
        "billing/exports/invoices.csv",
        views.InvoiceExportView.as_view(),
        name="billing-export-invoices",
    ),
    path(
        "billing/exports/journal.csv",
        views.JournalExportView.as_view(),
        name="billing-export-journal",
    ),
    path(
        "billing/exports/collection-cases.csv",
        views.CollectionExportView.as_view(),
        name="billing-export-collection-cases",
    ),
]
