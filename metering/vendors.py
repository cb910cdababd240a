"""Vendor API keys: created by staff, shown once, stored as a SHA-256, rotatable, revocable.

A key reads ``hu_<prefix>_<secret>``; the prefix finds the row, the hash proves the key.
:class:`VendorKeyAuthentication` (DRF) accepts ``Authorization: Api-Key <key>``; the
request's ``auth`` is then the :class:`MeterVendor` and ``user`` an anonymous user, so
staff permissions never apply to vendors and vendor keys never reach staff endpoints.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions, throttling

from metering.models import MeterVendor, VendorApiKey

KEY_PREFIX = "hu_"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def vendor_save(*, vendor: MeterVendor) -> int:
    """Save staff's changes to ``vendor``; returns how many held batches that queued.

    While a vendor is active none of its batches stays ``held`` (the worker holds a batch
    only while its vendor is inactive): saving it active, which is how staff reactivate
    it, queues its held batches for processing after the commit, through
    ``readings_batches_release`` as the batch admin's action does.  A released batch is
    ``received`` again, so a second save queues nothing and nothing is stored twice.  The
    vendor row is locked first: a worker holding a batch locks it too
    (``_hold_if_vendor_inactive``), so no batch is held behind a reactivation.
    """
    from metering.ingest.batches import readings_batches_release
    from metering.models import IngestBatch

    with transaction.atomic():
        if vendor.pk is not None:
            MeterVendor.objects.select_for_update().filter(pk=vendor.pk).exists()
        vendor.save()
        if not vendor.is_active:
            return 0
        return readings_batches_release(batches=IngestBatch.objects.filter(vendor=vendor))


def vendor_activate(*, vendor: MeterVendor) -> int:
    """Set ``vendor`` active again; its held batches are queued (``vendor_save``)."""
    vendor.is_active = True
    return vendor_save(vendor=vendor)


def vendor_key_create(
    *, vendor: MeterVendor, label: str = "", created_by=None
) -> tuple[VendorApiKey, str]:
    """A new key; the plain key is returned here once and never stored."""
    prefix = secrets.token_hex(5)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    api_key = VendorApiKey.objects.create(
        vendor=vendor, label=label, prefix=prefix, key_hash=_hash(key), created_by=created_by
    )
    return api_key, key


def vendor_key_revoke(*, api_key: VendorApiKey, now: dt.datetime) -> None:
    if api_key.revoked_at is None:
        api_key.revoked_at = now
        api_key.save(update_fields=["revoked_at"])


def vendor_key_rotate(
    *, api_key: VendorApiKey, now: dt.datetime, created_by=None
) -> tuple[VendorApiKey, str]:
    """Issue a replacement and revoke the old key at once."""
    with transaction.atomic():
        new, key = vendor_key_create(
            vendor=api_key.vendor, label=api_key.label, created_by=created_by
        )
        vendor_key_revoke(api_key=api_key, now=now)
    return new, key


def vendor_for_key(key: str) -> MeterVendor | None:
    if not key.startswith(KEY_PREFIX) or key.count("_") < 2:
        return None
    prefix = key[len(KEY_PREFIX) :].split("_", 1)[0]
    api_key = (
        VendorApiKey.objects.select_related("vendor")
        .filter(prefix=prefix, revoked_at__isnull=True, vendor__is_active=True)
        .first()
    )
    if api_key is None or not hmac.compare_digest(api_key.key_hash, _hash(key)):
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > dt.timedelta(minutes=5):
        VendorApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)  # coarse, cheap
    return api_key.vendor


class VendorKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode(errors="replace")
        if not header.startswith(self.keyword + " "):
            return None
        vendor = vendor_for_key(header[len(self.keyword) + 1 :].strip())
        if vendor is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return (AnonymousUser(), vendor)

    def authenticate_header(self, request):
        return self.keyword


class IsVendor(permissions.BasePermission):
    message = "A vendor API key is required (Authorization: Api-Key <key>)."

    def has_permission(self, request, view):
        return isinstance(request.auth, MeterVendor)


class StaffOrVendor(permissions.BasePermission):
    """Staff (session or token) or a meter vendor (API key): who may read the API's
    OpenAPI schema and docs.  The schema describes every staff endpoint, so it is not
    published to anonymous callers or customers."""

    def has_permission(self, request, view):
        if isinstance(request.auth, MeterVendor):
            return True
        user = request.user
        return bool(user and user.is_authenticated and user.is_staff)


class VendorRateThrottle(throttling.SimpleRateThrottle):
    """Requests per vendor (not per IP: head-ends often sit behind one gateway)."""

    scope = "vendor"

    def get_cache_key(self, request, view):
        if not isinstance(request.auth, MeterVendor):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}
