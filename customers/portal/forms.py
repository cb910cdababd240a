"""Portal forms: customers set and reset their own portal password, and ask for their
consumption data.

For passwords, only logins linked to a customer are served (staff reset theirs with staff), the
e-mail goes out through Celery after the request's transaction commits, and the answer
never says whether an address is known.
"""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import PasswordResetForm
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.template import loader

from customers.selectors import EXPORT_MAX_DAYS, EXPORT_RESOLUTIONS
from heatutility.timeutil import DATE_OUT_OF_RANGE, date_in_range

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


class ConsumptionExportForm(forms.Form):
    """The query of a customer's consumption download: a local date range ``[start, end)``
    and a resolution.  Defaults: the last 12 complete months, by month.  A range longer
    than the resolution's :data:`customers.selectors.EXPORT_MAX_DAYS` is refused."""

    start = forms.DateField(required=False, input_formats=["%Y-%m-%d"])
    end = forms.DateField(required=False, input_formats=["%Y-%m-%d"])
    resolution = forms.ChoiceField(required=False, choices=[(r, r) for r in EXPORT_RESOLUTIONS])

    def __init__(self, *args, today: dt.date, **kwargs):
        super().__init__(*args, **kwargs)
        self.today = today
        for name in ("start", "end"):
            self.fields[name].error_messages["invalid"] = "Enter a date as YYYY-MM-DD."

    def clean_start(self):
        return self._in_range(self.cleaned_data["start"])

    def clean_end(self):
        return self._in_range(self.cleaned_data["end"])

    @staticmethod
    def _in_range(day: dt.date | None) -> dt.date | None:
        if day is not None and not date_in_range(day):
            raise ValidationError(DATE_OUT_OF_RANGE)
        return day

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        resolution = data.get("resolution") or "month"
        end = data.get("end") or self.today.replace(day=1)
        start = data.get("start") or _year_before(end)
        if end <= start:
            self.add_error("end", "Must be after start.")
            return data
        limit = EXPORT_MAX_DAYS[resolution]
        if (end - start).days > limit:
            self.add_error(
                "end",
                f"At most {limit} days can be downloaded at once by {resolution} "
                f"({start} to {end} is {(end - start).days} days): choose a shorter range"
                + (" or a coarser resolution." if resolution != "month" else "."),
            )
            return data
        return {"start": start, "end": end, "resolution": resolution}


def _year_before(day: dt.date) -> dt.date:
    """The same date a year earlier (28 February for a 29th)."""
    try:
        return day.replace(year=day.year - 1)
    except ValueError:
        return day.replace(year=day.year - 1, day=28)
