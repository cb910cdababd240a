from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from customers.portal import views
from customers.portal.forms import PortalPasswordResetForm

app_name = "portal"

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="portal/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="portal:login"), name="logout"),
    # the customer's own password: forgotten (a link by e-mail), set from an invitation
    # (the same link, customers.services.portal_invite) or changed when logged in
    path(
        "password/reset/",
        views.PasswordResetView.as_view(
            form_class=PortalPasswordResetForm,
            template_name="portal/password_reset_form.html",
            email_template_name="portal/password_reset_email.txt",
            subject_template_name="portal/password_reset_subject.txt",
            success_url=reverse_lazy("portal:password_reset_done"),
        ),
        name="password_reset",
    ),
    path(
        "password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="portal/password_reset_done.html"),
        name="password_reset_done",
    ),
    path(
        "reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            template_name="portal/password_reset_confirm.html",
            success_url=reverse_lazy("portal:password_reset_complete"),
        ),
        name="password_reset_confirm",
    ),
    path(
        "reset/done/",
        auth_views.PasswordResetCompleteView.as_view(
            template_name="portal/password_reset_complete.html"
        ),
        name="password_reset_complete",
    ),
    path(
        "password/",
        auth_views.PasswordChangeView.as_view(
            template_name="portal/password_change_form.html",
            success_url=reverse_lazy("portal:password_change_done"),
        ),
        name="password_change",
    ),
    path(
        "password/changed/",
        auth_views.PasswordChangeDoneView.as_view(template_name="portal/password_change_done.html"),
        name="password_change_done",
    ),
    path("", views.account_list, name="accounts"),
    path("accounts/<str:number>/", views.account_detail, name="account"),
    path(
        "accounts/<str:number>/consumption.csv",
        views.consumption_csv,
        name="consumption-csv",
    ),
    path("invoices/<int:invoice_id>.pdf", views.invoice_pdf, name="invoice-pdf"),
    path("letters/<int:letter_id>.pdf", views.reminder_pdf, name="reminder-pdf"),
    # before letters covered an account, each notice was a letter at this address
    path("reminders/<int:notice_id>.pdf", views.notice_reminder_pdf, name="notice-reminder-pdf"),
]
