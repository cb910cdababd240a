"""Admin of third-party apps, held to the project's rule that every action names the
permission it needs (Django offers an action without one to anyone who may view the
list)."""

from axes import admin as axes_admin  # registers the login-attempt models first
from axes.models import AccessAttempt
from django.contrib import admin
from django_celery_beat import admin as beat_admin  # registers the beat models first
from django_celery_beat.models import PeriodicTask


def refuse_dates_out_of_range(form, *fields: str) -> None:
    """Dates the product can work with (as the API's ``BoundedDateField``): a service
    steps a day back or a month on from them, which year 1 or 9999 cannot, and a journal
    export never reaches a payment dated in year 26."""
    from heatutility.timeutil import DATE_OUT_OF_RANGE, date_in_range

    for field in fields:
        day = form.cleaned_data.get(field)
        if day is not None and not date_in_range(day):
            form.add_error(field, DATE_OUT_OF_RANGE)


class ViewOnlyAdmin(admin.ModelAdmin):
    """Records made by the services (an audit trail, an outcome): shown, never added,
    changed or deleted in the admin."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _guarded(name: str, permission: str, base: type = beat_admin.PeriodicTaskAdmin):
    inherited = getattr(base, name)

    def action(self, request, queryset):
        return inherited(self, request, queryset)

    action.__name__ = name
    return admin.action(description=inherited.short_description, permissions=[permission])(action)


class PeriodicTaskAdmin(beat_admin.PeriodicTaskAdmin):
    """Beat schedules: enabling, disabling and running tasks needs the change permission."""

    enable_tasks = _guarded("enable_tasks", "change")
    disable_tasks = _guarded("disable_tasks", "change")
    toggle_tasks = _guarded("toggle_tasks", "change")
    run_tasks = _guarded("run_tasks", "change")


admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, PeriodicTaskAdmin)


class AccessAttemptAdmin(axes_admin.AccessAttemptAdmin):
    """Failed logins (django-axes): clearing them unlocks a username, so it needs the
    delete permission."""

    cleanup_expired_attempts = _guarded(
        "cleanup_expired_attempts", "delete", axes_admin.AccessAttemptAdmin
    )


admin.site.unregister(AccessAttempt)
admin.site.register(AccessAttempt, AccessAttemptAdmin)
