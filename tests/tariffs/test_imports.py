"""Hourly CSV imports: DST days, gaps, duplicates; idempotent Celery import."""

import datetime as dt
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from tariffs.imports import ImportRejected, parse_spot_prices, parse_unit_hours
from tariffs.models import DataImport, SpotPrice, UnitHour
from tariffs.services import data_import_create, data_import_run
from tests.tariffs.factories import PlantUnitFactory

CPH = ZoneInfo("Europe/Copenhagen")


def local_day_rows(day: dt.date, *, repeat_fallback=True):
    """Naive local hours of a Copenhagen day, as a SCADA export writes them."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=CPH)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=CPH)
    t = start.astimezone(dt.UTC)
    rows = []
    while t < end.astimezone(dt.UTC):
        rows.append(t.astimezone(CPH).strftime("%Y-%m-%d %H:%M"))
        t += dt.timedelta(hours=1)
    return rows


def unit_csv(times, heat="10.0"):
    lines = ["time,heat_mwh,electricity_mwh,source_in_c,source_out_c,supply_c,return_c"]
    lines += [f"{t},{heat},3.0,8,4,75,40" for t in times]
    return "\n".join(lines) + "\n"


class TestDaylightSaving:
    def test_the_23_hour_day_imports_23_hours(self):
        times = local_day_rows(dt.date(2025, 3, 30))
        assert len(times) == 23
        frame = parse_unit_hours(unit_csv(times), time_zone="Europe/Copenhagen")
        assert len(frame) == 23
        assert frame["hour_start"].iloc[0].isoformat() == "2025-03-29T23:00:00+00:00"

    def test_the_25_hour_day_keeps_both_02_00_hours(self):
        times = local_day_rows(dt.date(2025, 10, 26))
        assert len(times) == 25
        assert times.count("2025-10-26 02:00") == 2
        frame = parse_unit_hours(unit_csv(times), time_zone="Europe/Copenhagen")
        assert frame["hour_start"].is_unique
        assert len(frame) == 25

    def test_a_02_00_on_the_spring_day_does_not_exist(self):
        times = [f"2025-03-30 {h:02d}:00" for h in range(24)]  # a naive 24-hour day
        with pytest.raises(ImportRejected) as err:
            parse_unit_hours(unit_csv(times), time_zone="Europe/Copenhagen")
        codes = {(e.code, e.row) for e in err.value.errors}
        assert ("nonexistent_time", 4) in codes  # row 4 = 02:00 (header is row 1)

    def test_the_autumn_day_with_only_one_02_00_misses_an_hour(self):
        times = [f"2025-10-26 {h:02d}:00" for h in range(24)]
        with pytest.raises(ImportRejected) as err:
            parse_unit_hours(unit_csv(times), time_zone="Europe/Copenhagen")
        messages = [e.message for e in err.value.errors if e.code == "missing_hours"]
        assert messages == ["1 hour(s) missing: 2025-10-26 02:00 CET."]

    def test_entsoe_export_with_cet_cest_markers(self):
        rows = ['"MTU (CET/CEST)","Day-ahead Price [DKK/MWh]"']
        day = dt.date(2025, 10, 26)
        t = dt.datetime.combine(day, dt.time(), tzinfo=CPH).astimezone(dt.UTC)
        for _ in range(25):
            a = t.astimezone(CPH)
            b = (t + dt.timedelta(hours=1)).astimezone(CPH)
            mark = f" ({a.tzname()})" if a.hour == 2 else ""
            rows.append(
                f'"{a:%d.%m.%Y %H:%M} - {b:%d.%m.%Y %H:%M}{mark}","{-12.5 if a.hour == 3 else 400}"'
            )
            t += dt.timedelta(hours=1)
        frame = parse_spot_prices("\n".join(rows), time_zone="Europe/Copenhagen", currency="DKK")
        assert len(frame) == 25
        assert frame["price_per_mwh"].min() == -12.5

    @pytest.mark.parametrize(
        ("zone", "summer", "winter"),
        [("Europe/London", "BST", "GMT"), ("Europe/Lisbon", "WEST", "WET")],
    )
    def test_the_repeated_hour_marked_in_another_zone(self, zone, summer, winter):
        """A network outside CET marks its repeated hour with its own abbreviations:
        01:00 (BST) is 00:00 UTC, 01:00 (GMT) 01:00 UTC, in whichever order they come."""
        rows = ["time,price"]
        for hour in range(24):
            if hour == 1:
                rows += [f"2025-10-26 01:00 ({winter}),20", f"2025-10-26 01:00 ({summer}),10"]
            else:
                rows.append(f"2025-10-26 {hour:02d}:00,{hour}")
        frame = parse_spot_prices("\n".join(rows), time_zone=zone, currency="EUR")
        assert len(frame) == 25
        prices = {
            t.isoformat(): p
            for t, p in zip(frame["hour_start"], frame["price_per_mwh"], strict=True)
        }
        assert prices["2025-10-26T00:00:00+00:00"] == 10
        assert prices["2025-10-26T01:00:00+00:00"] == 20


class TestGapsAndDuplicates:
    def test_missing_and_duplicate_hours_are_listed_with_rows(self):
        times = local_day_rows(dt.date(2026, 1, 5))
        times = times[:5] + times[6:]  # 05:00 missing
        times.insert(10, times[9])  # a duplicate
        with pytest.raises(ImportRejected) as err:
            parse_unit_hours(unit_csv(times), time_zone="Europe/Copenhagen")
        by_code = {e.code: e for e in err.value.errors}
        assert by_code["missing_hours"].message == "1 hour(s) missing: 2026-01-05 05:00 CET."
        assert by_code["duplicate_hour"].row == 12

    def test_currency_mismatch_and_bad_numbers(self):
        text = '"MTU (CET/CEST)","Day-ahead Price [EUR/MWh]"\n"05.01.2026 00:00 - 05.01.2026 01:00","abc"\n'
        with pytest.raises(ImportRejected) as err:
            parse_spot_prices(text, time_zone="Europe/Copenhagen", currency="DKK")
        assert {e.code for e in err.value.errors} >= {"currency", "invalid_number"}


@pytest.mark.django_db
class TestImportTask:
    def test_import_is_idempotent_and_failures_are_recorded(
        self, django_capture_on_commit_callbacks
    ):
        from tests.tariffs.factories import PlantUnitFactory

        unit = PlantUnitFactory()
        text = unit_csv(local_day_rows(dt.date(2025, 10, 26)))
        with django_capture_on_commit_callbacks(execute=True):
            record = data_import_create(
                kind="unit_hours", content=text, unit=unit, filename="scada.csv"
            )
        record.refresh_from_db()
        assert record.status == DataImport.Status.DONE
        assert record.rows == 25
        assert UnitHour.objects.filter(unit=unit).count() == 25
        # the same file again: same rows, same values
        with django_capture_on_commit_callbacks(execute=True):
            again = data_import_create(
                kind="unit_hours", content=text.replace(",10.0,", ",11.0,"), unit=unit
            )
        again.refresh_from_db()
        assert UnitHour.objects.filter(unit=unit).count() == 25
        assert set(UnitHour.objects.filter(unit=unit).values_list("heat_mwh", flat=True)) == {
            D("11.000000")
        }

        with django_capture_on_commit_callbacks(execute=True):
            bad = data_import_create(
                kind="spot_prices",
                content="time,price\n2026-01-01 00:00,1\n2026-01-01 00:00,2\n",
                price_area="DK2",
            )
        bad.refresh_from_db()
        assert bad.status == DataImport.Status.FAILED
        assert {e["code"] for e in bad.errors} >= {"duplicate_hour", "partial_day"}
        assert SpotPrice.objects.count() == 0
        assert timezone.is_aware(bad.finished_at)


def test_iso_offsets_that_change_at_dst_are_read_as_utc():
    # a whole year written with its local offsets: +01:00 in winter, +02:00 in summer
    import pandas as pd

    hours = pd.date_range(
        "2025-01-01", "2026-01-01", freq="h", inclusive="left", tz="Europe/Copenhagen"
    )
    text = "time,heat_mwh\n" + "".join(f"{t.isoformat()},1\n" for t in hours)
    frame = parse_unit_hours(text, time_zone="Europe/Copenhagen")
    assert len(frame) == 8760
    assert frame["hour_start"].dt.tz is not None


@pytest.mark.django_db
def test_a_year_of_hours_is_stored_set_based_not_one_query_per_hour(django_assert_max_num_queries):
    import pandas as pd

    from tariffs.services import data_import_run
    from tests.tariffs.factories import PlantUnitFactory

    unit = PlantUnitFactory()
    hours = pd.date_range(
        "2025-01-01", "2026-01-01", freq="h", inclusive="left", tz="Europe/Copenhagen"
    )
    text = "time,heat_mwh,electricity_mwh\n" + "".join(f"{t.isoformat()},1.5,0.5\n" for t in hours)
    record = data_import_create(kind="unit_hours", content=text, unit=unit, enqueue=False)
    from django.db import connection

    # 8,760 hours: COPY + one INSERT…SELECT on PostgreSQL; on SQLite bulk upserts of ~100 rows
    # (its 999-parameter limit), never one query per hour
    limit = 15 if connection.vendor == "postgresql" else 100
    with django_assert_max_num_queries(limit):
        assert (
            data_import_run(data_import_id=record.pk, now=timezone.now()).status
            == DataImport.Status.DONE
        )
    assert UnitHour.objects.filter(unit=unit).count() == 8760


@pytest.mark.django_db
def test_imported_hours_are_stored_rounded_half_up_as_the_columns_and_charges_round():
    # the stored scale's ties went half even through the float: 1.00005 became 1.0000 and
    # 0.0000025 MWh 0.000002, where PostgreSQL's numeric and the charge import round half up
    import pandas as pd

    hours = pd.date_range(
        "2026-01-05", "2026-01-06", freq="h", inclusive="left", tz="Europe/Copenhagen"
    )
    prices = ["1.00005", "-1.00005", "2.00025", "0.00025"] + ["10"] * 20
    text = "time,price\n" + "".join(
        f"{t.isoformat()},{p}\n" for t, p in zip(hours, prices, strict=True)
    )
    record = data_import_create(kind="spot_prices", content=text, price_area="DK2", enqueue=False)
    record = data_import_run(data_import_id=record.pk, now=timezone.now())
    assert record.status == DataImport.Status.DONE, record.errors
    stored = list(
        SpotPrice.objects.order_by("hour_start").values_list("price_per_mwh", flat=True)[:4]
    )
    assert stored == [D("1.0001"), D("-1.0001"), D("2.0003"), D("0.0003")]

    unit = PlantUnitFactory()
    text = "time,heat_mwh,supply_c\n" + "".join(
        f"{t.isoformat()},{h},{c}\n"
        for t, h, c in zip(
            hours,
            ["0.0000025", "1.0000005"] + ["1"] * 22,
            ["70.125", "69.985"] + ["70"] * 22,
            strict=True,
        )
    )
    record = data_import_create(kind="unit_hours", content=text, unit=unit, enqueue=False)
    record = data_import_run(data_import_id=record.pk, now=timezone.now())
    assert record.status == DataImport.Status.DONE, record.errors
    first_two = list(
        UnitHour.objects.filter(unit=unit)
        .order_by("hour_start")
        .values_list("heat_mwh", "supply_c")[:2]
    )
    assert first_two == [(D("0.000003"), D("70.13")), (D("1.000001"), D("69.99"))]
