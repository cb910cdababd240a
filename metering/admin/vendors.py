"""Staff admin for meter vendors and their API keys (shown once, rotatable, revocable)."""

from django.contrib import admin
from django.template.response import TemplateResponse
from django.utils import timezone

from metering import models
from metering.vendors import (
    vendor_key_create,
    vendor_key_revoke,
    vendor_key_rotate,
    vendor_save,
)


class VendorApiKeyInline(admin.TabularInline):
    model = models.VendorApiKey
    extra = 0
    fields = ("label", "prefix", "created_at", "created_by", "revoked_at", "last_used_at")
    readonly_fields = ("prefix", "created_at", "created_by", "revoked_at", "last_used_at")
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False  # keys are issued by the "Issue a new API key" action: shown once


@admin.register(models.MeterVendor)
class MeterVendorAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "code",
        "is_active",
        "csv_separator",
        "csv_decimal_comma",
        "csv_energy_unit",
        "csv_time_zone",
    )
    search_fields = ("name", "code")
    inlines = [VendorApiKeyInline]
    actions = ["issue_key"]
    fieldsets = (
        (None, {"fields": ("code", "name", "is_active")}),
        (
            "CSV file format",
            {
                "fields": (
                    "csv_columns",
                    "csv_separator",
                    "csv_decimal_comma",
                    "csv_energy_unit",
                    "csv_time_zone",
                    "csv_encoding",
                ),
                "description": 'Column mapping: {"meter": "MeterNo", "read_at": "Time", "energy": "Energy", '
                '"volume_m3": "Volume"}; fields: meter, read_at, energy, energy_unit, volume_m3, flow_temp_c, '
                "return_temp_c, power_kw, flow_m3h, status_code, flow_temp_m3c, return_temp_m3c.",
            },
        ),
    )

    def save_model(self, request, obj, form, change):
        released = vendor_save(vendor=obj)  # active again: its held batches are queued
        if released:
            self.message_user(request, f"{released} held batch(es) queued for processing.")

    @admin.action(description="Issue a new API key (shown once)", permissions=["change"])
    def issue_key(self, request, queryset):
        keys = []
        for vendor in queryset:
            _api_key, key = vendor_key_create(
                vendor=vendor, label=f"issued {timezone.now():%Y-%m-%d}", created_by=request.user
            )
            keys.append((vendor, key, "new key"))
        return keys_shown(self, request, keys, title="New API keys")


@admin.register(models.VendorApiKey)
class VendorApiKeyAdmin(admin.ModelAdmin):
    list_display = ("vendor", "label", "prefix", "created_at", "revoked_at", "last_used_at")
    list_filter = ("vendor", ("revoked_at", admin.EmptyFieldListFilter))
    readonly_fields = ("vendor", "prefix", "created_at", "created_by", "revoked_at", "last_used_at")
    fields = ("vendor", "label", "prefix", "created_at", "created_by", "revoked_at", "last_used_at")
    actions = ["revoke", "rotate"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        for api_key in queryset:
            vendor_key_revoke(api_key=api_key, now=timezone.now())
        self.message_user(request, f"Revoked {queryset.count()} key(s).")

    @admin.action(description="Rotate: issue a replacement and revoke", permissions=["change"])
    def rotate(self, request, queryset):
        keys = []
        for api_key in queryset.filter(revoked_at__isnull=True).select_related("vendor"):
            _, key = vendor_key_rotate(api_key=api_key, now=timezone.now(), created_by=request.user)
            keys.append((api_key.vendor, key, f"replaces {api_key.prefix}…, now revoked"))
        return keys_shown(self, request, keys, title="Replacement API keys")


def keys_shown(model_admin, request, keys, *, title: str) -> TemplateResponse:
    """The page showing new keys once.  Not a message: Django's messages travel in a
    signed (readable, not encrypted) cookie or the session table, and the key would be
    kept there in clear until shown."""
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "keys": keys,
        "back": request.get_full_path(),
        "opts": model_admin.model._meta,
    }
    response = TemplateResponse(request, "admin/metering/api_keys_shown.html", context)
    response["Cache-Control"] = "no-store"  # not kept by the browser's cache either
    return response
