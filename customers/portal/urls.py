from django.contrib.auth import views as auth_views
from django.urls import path

from customers.portal import views

app_name = "portal"

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="portal/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="portal:login"), name="logout"),
    path("", views.account_list, name="accounts"),
    path("accounts/<str:number>/", views.account_detail, name="account"),
    path("invoices/<int:invoice_id>.pdf", views.invoice_pdf, name="invoice-pdf"),
    path("letters/<int:letter_id>.pdf", views.reminder_pdf, name="reminder-pdf"),
    # before letters covered an account, each notice was a letter at this address
    path("reminders/<int:notice_id>.pdf", views.notice_reminder_pdf, name="notice-reminder-pdf"),
]
