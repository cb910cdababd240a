"""Portal password forms: customers set and reset their own portal password.

Only logins linked to a customer are served here (staff reset theirs with staff), the
e-mail goes out through Celery after the request's transaction commits, and the answer
never says whether an address is known.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.forms import PasswordResetForm
from django.core.cache import cache
from django.db import transaction
from django.template import loader

# at most this many reset e-mails per address and hour: the form cannot be used to
# flood a customer's mailbox
RESETS_PER_HOUR = 3


class PortalPasswordResetForm(PasswordResetForm):
    def get_users(self, email):
        """Active customer logins with this address, also one invited but not yet set
        (its password is unusable until the link in the invitation is used)."""
        users = get_user_model()._default_manager.filter(
            email__iexact=email, is_active=True, customer__isnull=False, is_staff=False
        )
        return iter(users)

    def save(self, *args, **kwargs):
        key = f"portal-password-reset:{self.cleaned_data['email'].strip().lower()}"
        cache.add(key, 0, timeout=3600)
        if cache.incr(key) > RESETS_PER_HOUR:
            return  # the same answer as for an unknown address
        super().save(*args, **kwargs)

    def send_mail(
        self,
        subject_template_name,
        email_template_name,
        context,
        from_email,
        to_email,
        html_email_template_name=None,
    ):
        from customers.tasks import portal_email_send

        subject = "".join(loader.render_to_string(subject_template_name, context).splitlines())
        body = loader.render_to_string(email_template_name, context)
        transaction.on_commit(lambda: portal_email_send.delay(subject, body, to_email))
