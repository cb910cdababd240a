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


# --- a night split over two files -------------------------------------------------------
#
# A vendor delivering hourly files sends 02:00 summer time in one file and 02:00 winter
# time in the next.  Counted per file, the second file's 02:00 was its first and read as
# summer time again: a conflict with the stored 02:00 CEST (nothing stored at 01:00 UTC,
# the hour's consumption lost).  A file's single 02:00 of a meter whose 02:00 CEST is
# stored by an earlier delivery with other values is the winter-time 02:00; with the
# same values it is that reading sent again, a duplicate: a resend of the first file
# never makes a winter-time reading.

CEST_0200 = dt.datetime(2026, 10, 25, 0, tzinfo=UTC)
CET_0200 = dt.datetime(2026, 10, 25, 1, tzinfo=UTC)


def _night(meter):
    first = [(meter.serial, "2026-10-25 01:00", 100), (meter.serial, "2026-10-25 02:00", 101)]
    second = [(meter.serial, "2026-10-25 02:00", 102), (meter.serial, "2026-10-25 03:00", 103)]
    return first, second


def _stored(meter):
    return [
        (at, str(kwh))
        for at, kwh in Reading.objects.filter(meter=meter)
        .order_by("read_at")
        .values_list("read_at", "energy_kwh")
    ]


def _counts(batch):
    return (batch.state, batch.accepted, batch.duplicate, batch.conflicting)


NIGHT = [
    (dt.datetime(2026, 10, 24, 23, tzinfo=UTC), "100.500000"),
    (CEST_0200, "101.500000"),
    (CET_0200, "102.500000"),
    (dt.datetime(2026, 10, 25, 2, tzinfo=UTC), "103.500000"),
]


@pytest.mark.parametrize("path", ["fast", "python"])
@pytest.mark.parametrize("decimal_comma", [True, False])
def test_the_next_file_s_0200_after_a_stored_summer_0200_is_winter_time(
    decimal_comma, path, monkeypatch
):
    vendor = _vendor(decimal_comma)
    meter = HeatMeterFactory(vendor=vendor)
    first, second = _night(meter)

    one = ingest_file(vendor, _file(decimal_comma, first), path=path, monkeypatch=monkeypatch)
    two = ingest_file(vendor, _file(decimal_comma, second), path=path, monkeypatch=monkeypatch)

    assert _counts(one) == ("done", 2, 0, 0)
    assert _counts(two) == ("done", 2, 0, 0)
    assert _stored(meter) == NIGHT


@pytest.mark.parametrize("path", ["fast", "python"])
def test_the_first_file_sent_again_is_a_duplicate_and_makes_no_winter_reading(path, monkeypatch):
    vendor = _vendor(False)
    meter = HeatMeterFactory(vendor=vendor)
    first, second = _night(meter)
    ingest_file(vendor, _file(False, first), path=path, monkeypatch=monkeypatch)

    again = ingest_file(vendor, _file(False, first), path=path, monkeypatch=monkeypatch)

    assert _counts(again) == ("done", 0, 2, 0)
    assert _stored(meter) == NIGHT[:2]

    # and after the second file: each file sent again is all duplicates
    ingest_file(vendor, _file(False, second), path=path, monkeypatch=monkeypatch)
    for rows in (first, second, first + second[:1]):
        batch = ingest_file(vendor, _file(False, rows), path=path, monkeypatch=monkeypatch)
        assert _counts(batch) == ("done", 0, len(rows), 0)
    assert _stored(meter) == NIGHT


@pytest.mark.parametrize("path", ["fast", "python"])
def test_a_file_with_both_0200s_keeps_its_own_order_after_a_stored_summer_0200(path, monkeypatch):
    vendor = _vendor(False)
    meter = HeatMeterFactory(vendor=vendor)
    first, second = _night(meter)
    ingest_file(vendor, _file(False, first), path=path, monkeypatch=monkeypatch)

    whole = ingest_file(vendor, _file(False, first + second), path=path, monkeypatch=monkeypatch)

    assert _counts(whole) == ("done", 2, 2, 0)
    assert _stored(meter) == NIGHT


@pytest.mark.parametrize("path", ["fast", "python"])
def test_a_winter_0200_stated_with_its_offset_keeps_the_wall_time_summer_time(path, monkeypatch):
    """The file says which 02:00 is winter time: its wall-clock 02:00 stays the summer
    one (a conflict with the stored reading, for staff), never a second winter 02:00."""
    vendor = _vendor(False)
    meter = HeatMeterFactory(vendor=vendor)
    first, _ = _night(meter)
    ingest_file(vendor, _file(False, first), path=path, monkeypatch=monkeypatch)
    rows = [
        (meter.serial, "2026-10-25T02:00:00+01:00", 102),
        (meter.serial, "2026-10-25 02:00", 109),
    ]

    batch = ingest_file(vendor, _file(False, rows), path=path, monkeypatch=monkeypatch)

    assert _counts(batch) == ("done", 1, 0, 1)
    assert _stored(meter) == NIGHT[:3]
