"""Every API endpoint answers only the callers it is for (a sweep of all routes).

Sweeps every route under ``/api/v1/`` (so endpoints added later are covered too):

* callers who are not staff (anonymous, portal customers by session or token, meter
  vendors by API key) reach no staff endpoint, whatever the method;
* each staff role writes exactly what the role table in ``heatutility/roles.py`` says,
  and nobody deletes through the API;
* a vendor sees and writes only its own batches, meters and idempotency keys.
"""

from __future__ import annotations

import re

import orjson
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from heatutility.roles import AUDITOR, BILLING_CLERK, METERING_OPERATOR, TARIFF_MANAGER
from metering.models import IngestBatch, Reading
from metering.vendors import vendor_key_create
from tests.billing.helpers import client_for
from tests.metering.factories import HeatMeterFactory
from tests.metering.factories_readings import MeterVendorFactory

pytestmark = pytest.mark.django_db

WRITES = ("post", "put", "patch", "delete")


def _walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern


def _model_of(pattern):
    view = getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)
    queryset = getattr(view, "queryset", None)
    return None if queryset is None else queryset.model


def api_routes() -> list[tuple[str, type | None]]:
    """(url with ids filled in, model of the view's queryset) of every ``/api/v1/`` route."""
    routes = {}
    for route, pattern in _walk(get_resolver().url_patterns):
        if not route.startswith("api/v1/") or "format" in route:
            continue
        url = route.replace("^", "").replace("$", "").replace("\\.", ".")
        url = re.sub(r"\(\?P<pk>[^)]*\)|<int:pk>", "1", url)
        url = re.sub(r"\(\?P<kind>[^)]*\)", "cap", url)
        routes["/" + url] = _model_of(pattern)
    return sorted(routes.items())


def staff_routes():
    """Staff endpoints (the vendor API and the router's root, an index of links, aside)."""
    return [
        (url, model) for url, model in api_routes() if "/readings/" not in url and url != "/api/v1/"
    ]


def vendor_routes():
    return [url for url, _ in api_routes() if "/readings/" in url]


def test_the_sweep_sees_the_whole_api():
    urls = [url for url, _ in api_routes()]
    assert len(urls) > 60
    for url in ("/api/v1/accounts/1/", "/api/v1/billing/invoices/1/pdf/", "/api/v1/readings/"):
        assert url in urls


def _caller(kind: str, django_user_model) -> APIClient:
    client = APIClient()
    if kind == "customer session":
        client.force_login(django_user_model.objects.create_user("portal-s", password="pw-long-1"))
    elif kind == "customer token":
        user = django_user_model.objects.create_user("portal-t", password="pw-long-1")
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    elif kind == "vendor":
        _, key = vendor_key_create(vendor=MeterVendorFactory())
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


class TestCallersWhoAreNotStaff:
    @pytest.mark.parametrize("kind", ["anonymous", "customer session", "customer token", "vendor"])
    def test_reach_no_staff_endpoint_with_any_method(self, kind, django_user_model):
        client = _caller(kind, django_user_model)
        reached = []
        for url, _model in staff_routes():
            for method in ("get", "head", "options", *WRITES):
                status = getattr(client, method)(url, format="json").status_code
                if status not in (401, 403):
                    reached.append(f"{method.upper()} {url} -> {status}")
        root = client.get("/api/v1/").status_code

        assert reached == []
        assert root in (401, 403)

    @pytest.mark.parametrize("kind", ["anonymous", "customer session", "customer token"])
    def test_reach_no_vendor_endpoint(self, kind, django_user_model):
        client = _caller(kind, django_user_model)
        reached = [
            f"{method.upper()} {url}"
            for url in vendor_routes()
            for method in ("get", "post")
            if getattr(client, method)(url).status_code not in (401, 403)
        ]

        assert reached == []


# The role table (heatutility/roles.py), written out independently of the policy code:
# the models each role may add and change.  Nobody deletes through the API.
def _may_write(role: str, model) -> bool:
    app, name = model._meta.app_label, model._meta.model_name
    if role == BILLING_CLERK:
        return app == "billing" or (
            app == "customers" and name not in ("network", "buildinginterfaceunit")
        )
    if role == METERING_OPERATOR:
        return app == "metering" or (app, name) == ("customers", "buildinginterfaceunit")
    if role == TARIFF_MANAGER:
        return app == "tariffs"
    return False


class TestStaffRoles:
    @pytest.mark.parametrize("role", [BILLING_CLERK, METERING_OPERATOR, TARIFF_MANAGER, AUDITOR])
    def test_each_role_writes_exactly_what_its_table_says(self, role):
        client = client_for(role)
        wrong = []
        for url, model in staff_routes():
            for method in WRITES:
                status = getattr(client, method)(url, {}, format="json").status_code
                expected = method != "delete" and model is not None and _may_write(role, model)
                # 405: no such method on the route, nothing happens (actions guarded by one
                # named permission check it before the method)
                if (expected and status == 403) or (not expected and status not in (403, 405)):
                    wrong.append(f"{method.upper()} {url} -> {status}")

        assert wrong == []

    @pytest.mark.parametrize("role", [BILLING_CLERK, METERING_OPERATOR, TARIFF_MANAGER, AUDITOR])
    def test_every_role_reads_every_list(self, role):
        client = client_for(role)
        lists = [url for url, _ in staff_routes() if "/1/" not in url and "export" not in url]
        refused = [url for url in lists if client.get(url).status_code == 403]

        assert refused == []

    def test_staff_without_a_role_read_and_write_nothing(self, django_user_model):
        client = APIClient()
        client.force_authenticate(django_user_model.objects.create_user("norole", is_staff=True))
        reached = [
            f"{method.upper()} {url}"
            for url, _ in staff_routes()
            for method in ("get", *WRITES)
            if getattr(client, method)(url, {}, format="json").status_code != 403
        ]

        assert reached == []


def _vendor_client(vendor) -> APIClient:
    _, key = vendor_key_create(vendor=vendor)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def _post_readings(client, rows, **headers):
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(
            "/api/v1/readings/", data=orjson.dumps(rows), content_type="application/json", **headers
        )


def _reading(serial, hour, energy="1000.5"):
    return {
        "meter": serial,
        "read_at": f"2026-11-01T{hour:02d}:00:00+01:00",
        "energy": energy,
        "energy_unit": "kWh",
        "volume_m3": "12.5",
    }


class TestVendorScoping:
    def test_another_vendors_batch_is_not_found_like_a_missing_one(self):
        a, b = MeterVendorFactory(), MeterVendorFactory()
        meter = HeatMeterFactory(vendor=a)
        client_a, client_b = _vendor_client(a), _vendor_client(b)
        batch = _post_readings(client_a, [_reading(meter.serial, 0)]).json()["batch"]

        own = client_a.get(f"/api/v1/readings/batches/{batch}/")
        foreign = client_b.get(f"/api/v1/readings/batches/{batch}/")
        missing = client_b.get(f"/api/v1/readings/batches/{batch + 1000}/")

        assert own.status_code == 200
        assert (foreign.status_code, foreign.json()) == (missing.status_code, missing.json())
        assert foreign.status_code == 404

    def test_idempotency_keys_belong_to_one_vendor(self):
        a, b = MeterVendorFactory(), MeterVendorFactory()
        mine, theirs = HeatMeterFactory(vendor=a), HeatMeterFactory(vendor=b)

        first = _post_readings(
            _vendor_client(a), [_reading(mine.serial, 0)], HTTP_IDEMPOTENCY_KEY="job-1"
        )
        second = _post_readings(
            _vendor_client(b), [_reading(theirs.serial, 0)], HTTP_IDEMPOTENCY_KEY="job-1"
        )

        assert (first.status_code, second.status_code) == (202, 202)
        assert first.json()["batch"] != second.json()["batch"]
        assert "Idempotent-Replayed" not in second
        assert IngestBatch.objects.get(pk=second.json()["batch"]).vendor == b
        assert Reading.objects.filter(meter=theirs).count() == 1

    def test_a_vendor_lists_no_meter_of_another(self):
        a, b = MeterVendorFactory(), MeterVendorFactory()
        HeatMeterFactory(vendor=a, serial="SHARED-1", maker="Kamstrup")
        HeatMeterFactory(vendor=b, serial="SHARED-1", maker="Diehl")
        HeatMeterFactory(vendor=b, serial="B-ONLY")
        client = _vendor_client(a)

        listed = client.get("/api/v1/readings/meters/").json()
        probed = client.get("/api/v1/readings/meters/?serial=B-ONLY").json()

        assert [(m["serial"], m["maker"]) for m in listed["results"]] == [("SHARED-1", "Kamstrup")]
        assert listed["count"] == 1
        assert probed["count"] == 0

    @pytest.mark.parametrize("decimal_comma", [False, True])
    def test_a_csv_file_never_writes_to_another_vendors_meter(self, decimal_comma):
        """Both CSV lanes (point decimals: the server-side COPY on PostgreSQL; decimal
        commas: converted text), with the foreign row first and last."""
        vendor = MeterVendorFactory(
            csv_columns={
                "meter": "meter",
                "read_at": "read_at",
                "energy": "energy",
                "volume_m3": "volume",
            },
            csv_separator=";",
            csv_decimal_comma=decimal_comma,
            csv_energy_unit="kWh",
        )
        mine = HeatMeterFactory(vendor=vendor)
        theirs = HeatMeterFactory(vendor=MeterVendorFactory())
        sep = "," if decimal_comma else "."
        text = "meter;read_at;energy;volume\n" + "".join(
            f"{serial};2026-11-01T{hour:02d}:00:00+01:00;{1000 + hour}{sep}5;{10 + hour}{sep}0\n"
            for hour, serial in enumerate([theirs.serial, mine.serial, mine.serial, theirs.serial])
        )
        client = _vendor_client(vendor)

        with TestCase.captureOnCommitCallbacks(execute=True):
            response = client.post(
                "/api/v1/readings/files/",
                {"file": SimpleUploadedFile("x.csv", text.encode(), "text/csv")},
                format="multipart",
            )
        batch = IngestBatch.objects.get(pk=response.json()["batch"])

        assert (batch.state, batch.accepted, batch.rejected) == ("done", 2, 2)
        assert Reading.objects.filter(meter=mine).count() == 2
        assert not Reading.objects.filter(meter=theirs).exists()
        assert {e["code"] for e in batch.errors} == {"meter_not_assigned"}


# Actions on one object that change it (its state), each with the model whose change
# permission the admin's matching action needs.
CHANGING_ACTIONS = [
    ("/api/v1/accounts/1/status/", "account"),
    ("/api/v1/billing/runs/1/resume/", "billingrun"),
    ("/api/v1/billing/runs/1/cancel/", "billingrun"),
    ("/api/v1/billing/runs/1/retry-exceptions/", "billingrun"),
    ("/api/v1/price-caps/1/adopt/", "pricecap"),
]


@pytest.mark.parametrize(("url", "model"), CHANGING_ACTIONS)
def test_an_action_changing_an_object_needs_the_change_permission_not_add(url, model):
    """The default check of a POST asks for ``add``: who might add such objects but not
    change them closed accounts, cancelled runs and adopted price caps (the admin's
    actions asked for ``change``).  Refused before the body or the object is looked at
    (403); with ``change`` the request goes on (to a 400 on the empty body or a 404)."""
    from tests.billing.helpers import api_client, staff_with_permissions

    adder = api_client(staff_with_permissions("adder", f"view_{model}", f"add_{model}"))
    changer = api_client(staff_with_permissions("changer", f"view_{model}", f"change_{model}"))

    assert adder.post(url, {}, format="json").status_code == 403
    assert changer.post(url, {}, format="json").status_code in (400, 404)
