"""Audit of ingestion, validation and meter exchanges: each test failed before its fix.

Fixed here (fail before the fix):
* a serial carrying U+2028 split the normalised payload into broken lines: the whole
  batch failed (IndexError) instead of refusing that one row;
* PostgreSQL's CSV fast path rounded timestamps with more than 6 second decimals, the
  Python lane cuts them off: one reading, two instants (stored twice across lanes);
* a batch that ended ``failed`` half-way kept its committed readings, which nightly VEE
  never validated (and the fast CSV path had recorded no spans for them);
* a meter's final register below its last reading (no rollover) was accepted, making
  the connection register go down at the exchange.
The other tests pin behaviour the audit checked and found right (DST, exchanges,
rollovers, estimates replaced by reads).
"""

import datetime as dt
from decimal import Decimal

import orjson
import pytest
from django.test import TestCase

from heatutility.timeutil import local_midnight
from metering.ingest.batches import readings_batch_process, readings_batch_submit
from metering.models import BoundaryRegister, IngestBatch, Reading
from metering.services import boundary_registers_ensure
from tests.metering.factories import HeatMeterFactory, MeterInstallationFactory
from tests.metering.factories_readings import (
    MeterVendorFactory,
    add_readings,
    second_store_chunk_fails,
)

pytestmark = pytest.mark.django_db
CPH = "Europe/Copenhagen"
NOW = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)


def at(day, hour=0):
    return local_midnight(day, CPH) + dt.timedelta(hours=hour)


def submit(vendor, rows):
    with TestCase.captureOnCommitCallbacks(execute=True):
        batch, _ = readings_batch_submit(vendor=vendor, body=orjson.dumps(rows), received_at=NOW)
    batch.refresh_from_db()
    return batch


@pytest.mark.parametrize("separator", ["\u2028", "\u0085"])
def test_a_serial_with_a_unicode_line_break_is_refused_per_row_not_the_batch(separator):
    vendor = MeterVendorFactory()
    meter = HeatMeterFactory(vendor=vendor)
    read = {"read_at": "2026-11-01T00:00:00+01:00", "energy": 5, "energy_unit": "kWh"}
    rows = [
        {"meter": meter.serial, **read, "volume_m3": 1},
        {"meter": f"X{separator}1", **read, "volume_m3": 1},
    ]
    batch = submit(vendor, rows)
    assert (batch.state, batch.accepted, batch.rejected) == ("done", 1, 1)
    assert [(e["row"], e["code"]) for e in batch.errors] == [(1, "unknown_meter")]
    assert Reading.objects.filter(meter=meter).count() == 1


def test_interpolation_across_an_exchange_and_a_dst_change_goes_by_elapsed_hours():
    a = MeterInstallationFactory(installed_at=at(dt.date(2026, 1, 1)))
    exchange = at(dt.date(2026, 10, 20), 12)
    a.removed_at, a.final_energy_kwh, a.final_volume_m3 = exchange, Decimal("12000"), Decimal("120")
    a.save()
    b = MeterInstallationFactory(
        unit=a.unit,
        meter=HeatMeterFactory(),
        installed_at=exchange,
        initial_energy_kwh=Decimal("50"),
        initial_volume_m3=Decimal("1"),
    )
    add_readings(a.meter, [(at(dt.date(2026, 10, 1)), "10000", "100")])
    add_readings(b.meter, [(at(dt.date(2026, 11, 10)), "1050", "11")])
    boundary_registers_ensure(
        connection_ids=[a.unit.connection_id],
        dates=[
            dt.date(2026, 10, 1),
            dt.date(2026, 11, 1),
            dt.date(2026, 10, 25),
            dt.date(2026, 10, 26),
        ],
    )
    values = dict(BoundaryRegister.objects.values_list("on", "energy_kwh"))
    # 12,000 at the exchange (10:00Z), 12,000 + 1,050 − 50 on 10 November (Nov 9 23:00Z):
    # 493 hours; 25 October has 25 of them
    assert values[dt.date(2026, 10, 26)] - values[dt.date(2026, 10, 25)] == (
        Decimal(1000) * 25 / 493
    ).quantize(Decimal("0.000001"))
    nov = BoundaryRegister.objects.get(on=dt.date(2026, 11, 1))
    share = Decimal(277) / Decimal(493)
    assert nov.energy_kwh == (Decimal(12000) + 1000 * share).quantize(Decimal("0.000001"))


def test_an_estimate_is_replaced_by_the_read_that_arrives_in_a_batch():
    from metering.services import vee_run_pending

    vendor = MeterVendorFactory()
    inst = MeterInstallationFactory(
        installed_at=at(dt.date(2025, 1, 1)), meter=HeatMeterFactory(vendor=vendor)
    )
    add_readings(
        inst.meter,
        [
            (at(dt.date(2025, 10, 1)), "1000", "10"),
            (at(dt.date(2025, 11, 1)), "2000", "20"),
            (at(dt.date(2026, 10, 1)), "5000", "50"),
        ],
    )
    boundary_registers_ensure(
        connection_ids=[inst.unit.connection_id], dates=[dt.date(2026, 11, 1)]
    )
    assert BoundaryRegister.objects.get().method == "last_year"
    rows = [
        {
            "meter": inst.meter.serial,
            "read_at": (at(dt.date(2026, 10, 31), h)).isoformat(),
            "energy": 5800 + h,
            "energy_unit": "kWh",
            "volume_m3": 58,
        }
        for h in range(0, 25)
    ]
    batch = submit(vendor, rows)
    assert (batch.state, batch.accepted) == ("done", 25)
    vee_run_pending(now=NOW)
    nov = BoundaryRegister.objects.get(on=dt.date(2026, 11, 1))
    assert (nov.energy_kwh, nov.status) == (Decimal("5824"), "actual")


def test_a_rollover_between_the_last_read_and_the_final_register_counts_once():
    from metering.installations import meter_exchange

    m = HeatMeterFactory(register_max=Decimal("99999"))
    a = MeterInstallationFactory(
        installed_at=at(dt.date(2026, 1, 1)), meter=m, initial_energy_kwh=Decimal("90000")
    )
    add_readings(
        m, [(at(dt.date(2026, 10, 1)), "99000", "100"), (at(dt.date(2026, 10, 10)), "99900", "110")]
    )
    with TestCase.captureOnCommitCallbacks(execute=False):
        meter_exchange(
            unit=a.unit,
            new_meter=HeatMeterFactory(),
            exchanged_at=at(dt.date(2026, 10, 15)),
            old_final_energy_kwh=Decimal("100"),
            old_final_volume_m3=Decimal("120"),
        )
    b = a.unit.meter_installations.order_by("installed_at").last()
    add_readings(b.meter, [(at(dt.date(2026, 11, 1)), "300", "5")])
    boundary_registers_ensure(
        connection_ids=[a.unit.connection_id], dates=[dt.date(2026, 10, 1), dt.date(2026, 11, 1)]
    )
    vals = dict(BoundaryRegister.objects.values_list("on", "energy_kwh"))
    # 99000→(wrap 100000)→100: 1100 kWh, then new 300
    assert vals[dt.date(2026, 11, 1)] - vals[dt.date(2026, 10, 1)] == Decimal("1400")


def _ingest_file(vendor, text, chunk_rows=3):
    from django.core.files.base import ContentFile

    batch = IngestBatch.objects.create(vendor=vendor, source="file", received_at=NOW)
    batch.file.save("s9.csv", ContentFile(text.encode()))
    readings_batch_process(batch_id=batch.pk, now=NOW, chunk_rows=chunk_rows)
    batch.refresh_from_db()
    return batch


@pytest.mark.parametrize("decimal_comma", [False, True])
def test_more_than_six_second_decimals_give_the_python_lanes_instant(decimal_comma):
    """PostgreSQL's COPY/cast rounded …59.9999996 up to the next second; the Python lane
    (JSON, SQLite, the fallback) cuts it to …59.999999.  (Fails before the fix on
    PostgreSQL only; on SQLite every file takes the Python lane.)"""
    sep = ";" if decimal_comma else ","
    vendor = MeterVendorFactory(
        csv_columns={},
        csv_separator=sep,
        csv_decimal_comma=decimal_comma,
        csv_time_zone="Europe/Copenhagen",
    )
    meter = HeatMeterFactory(vendor=vendor)
    text = (
        f"meter{sep}read_at{sep}energy{sep}volume_m3\n"
        + f"{meter.serial}{sep}2026-11-01T00:59:59.9999996{sep}7{sep}1\n"
    )
    batch = _ingest_file(vendor, text)
    assert (batch.state, batch.accepted) == ("done", 1)
    assert list(Reading.objects.values_list("read_at", flat=True)) == [
        dt.datetime(2026, 10, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)
    ]


def test_readings_of_a_batch_that_failed_half_way_are_validated(monkeypatch):
    from metering.services import vee_run_pending

    vendor = MeterVendorFactory(
        csv_columns={}, csv_separator=",", csv_decimal_comma=False, csv_time_zone="UTC"
    )
    meter = HeatMeterFactory(vendor=vendor)
    MeterInstallationFactory(meter=meter, installed_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    energies = [10, 20, 5, 30, 40, 50, 60]  # 5 kWh at 02:00: the register went down
    text = "meter,read_at,energy,volume_m3\n" + "".join(
        f"{meter.serial},2026-09-01T{h:02d}:00:00Z,{e},1\n" for h, e in enumerate(energies)
    )
    with monkeypatch.context() as patch:
        second_store_chunk_fails(patch)
        batch = _ingest_file(vendor, text)
    assert (batch.state, batch.accepted) == ("failed", 3)

    vee_run_pending(now=NOW)

    assert dict(Reading.objects.filter(meter=meter).values_list("energy_kwh", "status")) == {
        Decimal("10"): "valid",
        Decimal("20"): "valid",
        Decimal("5"): "rejected",
    }
    batch.refresh_from_db()
    assert batch.vee_done_at == NOW


def test_a_final_register_below_the_last_reading_is_refused():
    from metering.installations import UnableToInstallMeter, meter_exchange, meter_remove

    old = MeterInstallationFactory(installed_at=at(dt.date(2026, 1, 1)))
    add_readings(
        old.meter,
        [(at(dt.date(2026, 10, 1)), "11000", "110"), (at(dt.date(2026, 10, 10)), "11900", "119")],
    )
    with pytest.raises(UnableToInstallMeter) as caught:  # 1,200 typed for 12,000
        meter_exchange(
            unit=old.unit,
            new_meter=HeatMeterFactory(),
            exchanged_at=at(dt.date(2026, 10, 15)),
            old_final_energy_kwh=Decimal("1200"),
            old_final_volume_m3=Decimal("120"),
        )
    assert [(e.code, e.field) for e in caught.value.errors] == [
        ("final_below_last_read", "final_energy_kwh")
    ]
    old.refresh_from_db()
    assert old.removed_at is None
    assert old.unit.meter_installations.count() == 1
    # the true final register goes through
    meter_remove(
        installation=old,
        removed_at=at(dt.date(2026, 10, 15)),
        final_energy_kwh=Decimal("12000"),
        final_volume_m3=Decimal("120"),
    )


@pytest.mark.parametrize(
    "read_at",
    [
        "2026-11-01T24:00:00+01:00",  # PostgreSQL: the next midnight
        "2026-11-01T23:59:60+01:00",  # PostgreSQL: a leap second rolled over
        "2026-11-01T12:00:00+1",  # PostgreSQL: +01:00
    ],
)
def test_a_file_time_the_json_path_refuses_is_refused_on_every_lane(read_at):
    """The file fast path (COPY + cast, PostgreSQL) took timestamps the Python rules and
    so the JSON path refuse: one reading accepted or refused by how it was delivered.
    Such files now go to the Python validator, whatever the database."""
    vendor = MeterVendorFactory(
        csv_columns={}, csv_separator=",", csv_decimal_comma=False, csv_time_zone="UTC"
    )
    meter = HeatMeterFactory(vendor=vendor)
    text = (
        "meter,read_at,energy,volume_m3\n"
        f"{meter.serial},2026-11-01T10:00:00+01:00,5,1\n"
        f"{meter.serial},{read_at},7,1\n"
    )

    batch = _ingest_file(vendor, text)

    # as the Python rules have it (SQLite, JSON): the file is refused whole, itemised
    assert (batch.state, batch.accepted) == ("failed", 0), batch.errors
    assert [(e["row"], e["field"], e["code"]) for e in batch.errors] == [
        (1, "read_at", "invalid_datetime")
    ]
    assert not Reading.objects.exists()


def test_the_file_fast_path_still_takes_the_usual_iso_forms():
    from metering.ingest.fastcsv import iso_timestamps

    forms = [
        "2026-11-01T00:00",
        "2026-11-01 00:00:00",
        "2026-11-01T00:00:00Z",
        "2026-11-01T00:00:00.5Z",
        "2026-11-01T00:00:00.123456+01:00",
        "2026-11-01T00:00:00+0100",
        "2026-11-01T00:00:00-05",
        "2026-11-01T23:59:59+14:00",
    ]
    text = "meter,read_at\n" + "".join(f"M,{form}\n" for form in forms)
    assert iso_timestamps(text.encode(), column=1, width=2, separator=",")
    for odd in (
        "2026-11-01T24:00",
        "2026-11-01T10:60",
        "2026-11-01T10:00:00+1",
        "2026-11-01T10:00:00+23:59",
    ):
        text = f"meter,read_at\nM,2026-11-01T00:00\nM,{odd}\n"
        assert not iso_timestamps(text.encode(), column=1, width=2, separator=","), odd


def test_two_uploads_of_a_file_with_one_idempotency_key_get_one_batch(monkeypatch):
    """The second of two simultaneous uploads with the same key found no batch when it
    looked, then hit the key's unique constraint: a 500.  It now answers with the
    first one's batch, as the JSON path does."""

    from metering.ingest import batches

    vendor = MeterVendorFactory(
        csv_columns={}, csv_separator=",", csv_decimal_comma=False, csv_time_zone="UTC"
    )
    meter = HeatMeterFactory(vendor=vendor)
    content = f"meter,read_at,energy,volume_m3\n{meter.serial},2026-11-01T00:00:00Z,5,1\n".encode()
    with TestCase.captureOnCommitCallbacks(execute=False):
        first, created = batches.readings_file_submit(
            vendor=vendor,
            content=content,
            file_name="a.csv",
            received_at=NOW,
            idempotency_key="job-7",
        )
    assert created
    real_replay = batches._replay
    looks = []

    def not_committed_yet(**kwargs):  # the first upload commits after this look
        looks.append(kwargs)
        return None if len(looks) == 1 else real_replay(**kwargs)

    monkeypatch.setattr(batches, "_replay", not_committed_yet)
    with TestCase.captureOnCommitCallbacks(execute=False):
        second, created = batches.readings_file_submit(
            vendor=vendor,
            content=content,
            file_name="a.csv",
            received_at=NOW,
            idempotency_key="job-7",
        )

    assert (second.pk, created) == (first.pk, False)
    assert IngestBatch.objects.count() == 1
