"""The repeated autumn hour in a file of local times without an offset.

A vendor whose files carry local wall times (``csv_time_zone``) writes the night of the
return to standard time as 01:00, 02:00, 02:00, 03:00 (Europe/Copenhagen, 25 October
2026): the first 02:00 is 00:00 UTC (CEST), the second 01:00 UTC (CET).  Both were read
as the standard-time instant, so every hourly local-time export failed
``duplicate_in_batch`` once a year.  Now, within one meter's rows in file order, the
first occurrence of an ambiguous wall time is the summer-time instant and a later one
the standard-time instant; a third occurrence is a duplicate.  The same on every path.
"""

import datetime as dt

import pytest

from metering.models import Reading
from tests.metering.factories import HeatMeterFactory
from tests.metering.factories_readings import MeterVendorFactory, ingest_file

pytestmark = pytest.mark.django_db

UTC = dt.UTC


def _vendor(decimal_comma):
    return MeterVendorFactory(
        csv_columns={},
        csv_separator=";" if decimal_comma else ",",
        csv_decimal_comma=decimal_comma,
        csv_energy_unit="kWh",
        csv_time_zone="Europe/Copenhagen",
    )


def _file(decimal_comma, rows):
    sep = ";" if decimal_comma else ","
    lines = [f"meter{sep}read_at{sep}energy{sep}volume_m3"]
    for serial, stamp, energy in rows:
        value = f"{energy},5" if decimal_comma else f"{energy}.5"
        lines.append(f"{serial}{sep}{stamp}{sep}{value}{sep}1")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("path", ["fast", "python"])
@pytest.mark.parametrize("decimal_comma", [True, False])
def test_the_repeated_hour_is_summer_time_then_standard_time(decimal_comma, path, monkeypatch):
    vendor = _vendor(decimal_comma)
    meter, other = HeatMeterFactory(vendor=vendor), HeatMeterFactory(vendor=vendor)
    rows = [
        (meter.serial, "2026-10-25 01:00", 100),
        (meter.serial, "2026-10-25 02:00", 101),
        (other.serial, "2026-10-25 02:00", 500),  # another meter: its own first 02:00
        (meter.serial, "2026-10-25 02:00", 102),
        (meter.serial, "2026-10-25 03:00", 103),
        (other.serial, "2026-10-25 02:00", 501),
    ]
    batch = ingest_file(vendor, _file(decimal_comma, rows), path=path, monkeypatch=monkeypatch)

    assert (batch.state, batch.accepted, batch.errors) == ("done", 6, [])
    stored = list(
        Reading.objects.filter(meter=meter).order_by("read_at").values_list("read_at", "energy_kwh")
    )
    assert [(at, str(kwh)) for at, kwh in stored] == [
        (dt.datetime(2026, 10, 24, 23, tzinfo=UTC), "100.500000"),
        (dt.datetime(2026, 10, 25, 0, tzinfo=UTC), "101.500000"),  # 02:00 CEST
        (dt.datetime(2026, 10, 25, 1, tzinfo=UTC), "102.500000"),  # 02:00 CET
        (dt.datetime(2026, 10, 25, 2, tzinfo=UTC), "103.500000"),
    ]
    assert list(
        Reading.objects.filter(meter=other).order_by("read_at").values_list("read_at", flat=True)
    ) == [dt.datetime(2026, 10, 25, 0, tzinfo=UTC), dt.datetime(2026, 10, 25, 1, tzinfo=UTC)]


@pytest.mark.parametrize("path", ["fast", "python"])
@pytest.mark.parametrize("decimal_comma", [True, False])
def test_a_third_occurrence_is_a_duplicate(decimal_comma, path, monkeypatch):
    vendor = _vendor(decimal_comma)
    meter = HeatMeterFactory(vendor=vendor)
    rows = [(meter.serial, "2026-10-25 02:30", 100 + n) for n in range(3)]
    batch = ingest_file(vendor, _file(decimal_comma, rows), path=path, monkeypatch=monkeypatch)

    assert batch.state == "failed"
    assert [(e["row"], e["field"], e["code"]) for e in batch.errors] == [
        (2, "read_at", "duplicate_in_batch")
    ]
    assert Reading.objects.count() == 0


@pytest.mark.parametrize("path", ["fast", "python"])
def test_times_with_an_offset_are_never_reinterpreted(path, monkeypatch):
    vendor = _vendor(False)
    meter = HeatMeterFactory(vendor=vendor)
    rows = [
        (meter.serial, "2026-10-25T02:00:00+01:00", 100),  # the standard-time 02:00, stated
        (meter.serial, "2026-10-25 02:00", 101),  # the first wall-clock 02:00: summer time
    ]
    batch = ingest_file(vendor, _file(False, rows), path=path, monkeypatch=monkeypatch)

    assert (batch.state, batch.accepted) == ("done", 2)
    assert list(
        Reading.objects.filter(meter=meter).order_by("read_at").values_list("energy_kwh", flat=True)
    ) == [101.5, 100.5]


@pytest.mark.parametrize("path", ["fast", "python"])
@pytest.mark.parametrize("decimal_comma", [True, False])
def test_a_single_repeated_wall_time_is_the_summer_time_instant(decimal_comma, path, monkeypatch):
    """No duplicate to make the fast path decline: it must still read 02:00 as the
    first (summer-time) instant, as the Python rules do."""
    vendor = _vendor(decimal_comma)
    meter = HeatMeterFactory(vendor=vendor)
    rows = [(meter.serial, "2026-10-25 01:00", 100), (meter.serial, "2026-10-25 02:00", 101)]
    batch = ingest_file(vendor, _file(decimal_comma, rows), path=path, monkeypatch=monkeypatch)

    assert (batch.state, batch.accepted) == ("done", 2)
    assert list(
        Reading.objects.filter(meter=meter).order_by("read_at").values_list("read_at", flat=True)
    ) == [dt.datetime(2026, 10, 24, 23, tzinfo=UTC), dt.datetime(2026, 10, 25, 0, tzinfo=UTC)]
