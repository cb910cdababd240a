"""Day-ahead prices at 15-minute resolution (the single day-ahead market since 1 Oct 2025):
validated like the hourly file, stored as each hour's mean of its four quarter-hour prices."""

import datetime as dt
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from tariffs.api.serializers import DataImportSerializer
from tariffs.imports import ImportRejected, parse_spot_prices
from tariffs.models import DataImport, SpotPrice, UnitHour
from tariffs.selectors import spot_price_hours_by_resolution
from tariffs.services import data_import_create, data_import_run, operating_cost_compute
from tests.customers.factories import NetworkFactory
from tests.tariffs.factories import PlantUnitFactory

CPH = ZoneInfo("Europe/Copenhagen")
TZ = "Europe/Copenhagen"


def quarters(day: dt.date, *, days: int = 1) -> list[dt.datetime]:
    """Every quarter-hour of the local days, as aware local datetimes (92/96/100 a day)."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=CPH).astimezone(dt.UTC)
    end = dt.datetime.combine(day + dt.timedelta(days=days), dt.time(), tzinfo=CPH).astimezone(
        dt.UTC
    )
    out, t = [], start
    while t < end:
        out.append(t.astimezone(CPH))
        t += dt.timedelta(minutes=15)
    return out


def naive(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M")


def price_csv(rows: list[tuple[str, str]]) -> str:
    return "time,price\n" + "".join(f"{t},{p}\n" for t, p in rows)


def stored(frame) -> dict[str, D]:
    return {
        t.isoformat(): p for t, p in zip(frame["hour_start"], frame["price_per_mwh"], strict=True)
    }


# 2026-01-05 (CET, UTC+1): the first local hours' quarter prices and their means, by hand
JAN_5_HOURS = {
    0: (("745.11", "745.12", "745.13", "745.15"), D("745.1275")),  # 2,980.51 / 4, exact
    1: (("-12.50", "-3.20", "0.00", "4.10"), D("-2.9000")),  # -11.60 / 4: a negative hour
    2: (("0.0002", "0", "0", "0"), D("0.0001")),  # 0.00005: half up (half even gives 0.0000)
    3: (("-0.0002", "0", "0", "0"), D("-0.0001")),  # -0.00005: ties away from zero
    4: (("1.00005", "1.00005", "1.00005", "1.00005"), D("1.0001")),  # a float reads 1.000049999…
    5: (("99.99", "100.00", "100.01", "100.03"), D("100.0075")),  # 400.03 / 4
}


def jan_5_rows() -> list[tuple[str, str]]:
    rows = []
    for t in quarters(dt.date(2026, 1, 5)):
        prices = JAN_5_HOURS.get(t.hour, (("50.00",) * 4, None))[0]
        rows.append((naive(t), prices[t.minute // 15]))
    return rows


class TestQuarterHourPricesAreHourlyMeans:
    def test_each_hour_is_the_mean_of_its_four_quarters_to_the_last_decimal(self):
        frame = parse_spot_prices(price_csv(jan_5_rows()), time_zone=TZ, currency="DKK")
        assert frame.attrs["resolution_minutes"] == 15
        assert len(frame) == 24
        prices = stored(frame)
        for hour, (_, mean) in JAN_5_HOURS.items():
            utc = dt.datetime(2026, 1, 5, hour, tzinfo=CPH).astimezone(dt.UTC)
            assert prices[utc.isoformat()] == mean
            assert str(prices[utc.isoformat()]) == str(mean)  # four decimals, the column's scale
        assert prices["2026-01-05T22:00:00+00:00"] == D("50.0000")

    def test_entsoe_mtu_export_with_decimal_commas(self):
        rows = ['"MTU (CET/CEST)";"Day-ahead Price [EUR/MWh]"']
        for t in quarters(dt.date(2026, 1, 5)):
            end = t + dt.timedelta(minutes=15)
            price = ("85,10", "85,20", "85,30", "85,41")[t.minute // 15]
            rows.append(f'"{t:%d.%m.%Y %H:%M} - {end:%d.%m.%Y %H:%M}";"{price}"')
        frame = parse_spot_prices("\n".join(rows), time_zone=TZ, currency="EUR")
        assert len(frame) == 24
        assert set(frame["price_per_mwh"]) == {D("85.2525")}  # 341.01 / 4

    def test_the_23_hour_spring_day_has_92_quarters_and_23_hours(self):
        day = quarters(dt.date(2026, 3, 29))
        assert len(day) == 92
        rows = [
            (naive(t), ("{h}.00", "{h}.25", "{h}.50", "{h}.76")[t.minute // 15].format(h=t.hour))
            for t in day
        ]
        frame = parse_spot_prices(price_csv(rows), time_zone=TZ, currency="DKK")
        prices = stored(frame)
        assert len(prices) == 23
        assert prices["2026-03-29T00:00:00+00:00"] == D("1.3775")  # 01:00 CET
        assert prices["2026-03-29T01:00:00+00:00"] == D("3.3775")  # 03:00 CEST: no 02:00
        assert prices["2026-03-29T21:00:00+00:00"] == D("23.3775")

    @pytest.mark.parametrize("marked", [False, True], ids=["summer-first", "cest-cet-markers"])
    def test_the_25_hour_autumn_day_keeps_both_02_00_hours_quarters(self, marked):
        day = quarters(dt.date(2025, 10, 26))
        assert len(day) == 100
        rows = []
        for t in day:
            q = t.minute // 15
            if t.hour == 2:
                price = (
                    ("20.00", "20.10", "20.20", "20.30")[q]
                    if t.tzname() == "CEST"
                    else ("30.01", "30.02", "30.03", "30.04")[q]
                )
            else:
                price = "40"
            stamp = naive(t) + (f" ({t.tzname()})" if marked and t.hour == 2 else "")
            rows.append((stamp, price))
        if marked:  # with markers the order of the repeated hour does not matter
            cest = [r for r in rows if "(CEST)" in r[0]]
            cet = [r for r in rows if "(CET)" in r[0]]
            i = rows.index(cest[0])
            rows[i : i + 8] = cet + cest
        frame = parse_spot_prices(price_csv(rows), time_zone=TZ, currency="DKK")
        prices = stored(frame)
        assert len(prices) == 25
        assert prices["2025-10-26T00:00:00+00:00"] == D("20.1500")  # 02:00 CEST
        assert prices["2025-10-26T01:00:00+00:00"] == D("30.0250")  # 02:00 CET: 120.10 / 4
        assert prices["2025-10-25T22:00:00+00:00"] == D("40.0000")


class TestQuarterHourErrors:
    def test_missing_duplicate_and_off_grid_quarters_are_itemised_by_row(self):
        rows = jan_5_rows()
        # edited from the end (index = quarter of the day); rows are CSV lines of the
        # edited file (header = 1)
        rows[12 * 4 + 1] = ("2026-01-05 12:10", "50.00")  # 12:15 written as 12:10: row 51
        rows.insert(10 * 4 + 3, rows[10 * 4 + 2])  # 10:30 twice: rows 43 and 44
        del rows[7 * 4 + 1]  # 07:15 missing: 07:30 is row 31
        with pytest.raises(ImportRejected) as err:
            parse_spot_prices(price_csv(rows), time_zone=TZ, currency="DKK")
        items = {(e.code, e.row, e.field) for e in err.value.errors}
        assert items == {
            ("missing_quarter", 31, "time"),
            ("duplicate_quarter", 44, "time"),
            ("not_quarter_hour", 51, "time"),
            ("missing_quarter", 52, "time"),  # 12:15, before 12:30 (12:10 is no quarter-hour)
        }
        messages = {e.code + str(e.row): e.message for e in err.value.errors}
        assert (
            messages["missing_quarter31"]
            == "Quarter-hour 2026-01-05 07:15 CET (UTC 06:15) is missing (before row 31)."
        )
        assert messages["duplicate_quarter44"] == (
            "Quarter-hour 2026-01-05 10:30 CET (UTC 09:30) appears twice (first on row 43)."
        )

    def test_the_autumn_day_with_one_set_of_02_quarters_misses_the_winter_ones(self):
        rows = [(f"2025-10-26 {h:02d}:{m:02d}", "1") for h in range(24) for m in (0, 15, 30, 45)]
        with pytest.raises(ImportRejected) as err:
            parse_spot_prices(price_csv(rows), time_zone=TZ, currency="DKK")
        assert [(e.code, e.row) for e in err.value.errors] == [
            ("missing_quarter", 14)
        ] * 4  # before 03:00 (row 14)
        assert err.value.errors[0].message.startswith(
            "Quarter-hour 2025-10-26 02:00 CET (UTC 01:00) is missing"
        )

    def test_a_quarter_in_the_skipped_spring_hour_does_not_exist(self):
        rows = [(f"2026-03-29 {h:02d}:{m:02d}", "1") for h in range(24) for m in (0, 15, 30, 45)]
        with pytest.raises(ImportRejected) as err:
            parse_spot_prices(price_csv(rows), time_zone=TZ, currency="DKK")
        assert [(e.code, e.row) for e in err.value.errors] == [
            ("nonexistent_time", r) for r in (10, 11, 12, 13)
        ]

    def test_a_partial_day_is_refused(self):
        rows = jan_5_rows()[:-4]  # ends 22:45
        with pytest.raises(ImportRejected) as err:
            parse_spot_prices(price_csv(rows), time_zone=TZ, currency="DKK")
        assert [e.code for e in err.value.errors] == ["partial_day"]

    def test_hourly_and_quarter_hour_days_in_one_file_are_refused(self):
        hourly = [(f"2026-01-04 {h:02d}:00", "10") for h in range(24)]
        rows = hourly + jan_5_rows() + [(f"2026-01-06 {h:02d}:00", "10") for h in range(24)]
        with pytest.raises(ImportRejected) as err:
            parse_spot_prices(price_csv(rows), time_zone=TZ, currency="DKK")
        assert [(e.code, e.row, e.field) for e in err.value.errors] == [
            ("mixed_resolution", 26, "time")
        ]
        assert err.value.errors[0].message == (
            "2026-01-05 has 15-minute values (from row 26), the file's first day 2026-01-04 hourly values: "
            "one file holds one resolution."
        )

    def test_an_hourly_file_with_a_stray_half_hour_is_still_not_hourly(self):
        rows = [(f"2026-01-04 {h:02d}:00", "10") for h in range(24)]
        rows[5] = ("2026-01-04 05:30", "10")
        with pytest.raises(ImportRejected) as err:
            parse_spot_prices(price_csv(rows), time_zone=TZ, currency="DKK")
        assert {(e.code, e.row) for e in err.value.errors} == {
            ("not_hourly", 7),
            ("missing_hours", None),
        }


@pytest.mark.django_db
class TestQuarterHourImport:
    def test_the_import_stores_hourly_means_and_records_the_resolution(self):
        record = data_import_create(
            kind="spot_prices", content=price_csv(jan_5_rows()), price_area="DK2", enqueue=False
        )
        record = data_import_run(data_import_id=record.pk, now=timezone.now())
        assert record.status == DataImport.Status.DONE, record.errors
        assert record.resolution_minutes == 15
        assert record.rows == 24  # hours stored
        assert record.first_hour.isoformat() == "2026-01-04T23:00:00+00:00"
        assert record.last_hour.isoformat() == "2026-01-05T22:00:00+00:00"
        prices = dict(
            SpotPrice.objects.filter(price_area="DK2").values_list("hour_start", "price_per_mwh")
        )
        assert len(prices) == 24
        for hour, (_, mean) in JAN_5_HOURS.items():
            assert prices[dt.datetime(2026, 1, 5, hour, tzinfo=CPH)] == mean
        assert set(SpotPrice.objects.values_list("data_import__resolution_minutes", flat=True)) == {
            15
        }
        assert DataImportSerializer(record).data["resolution_minutes"] == 15

    def test_the_cost_run_prices_the_hourly_means_and_says_they_are(self):
        network = NetworkFactory(code="quarter-hours", price_area="DK2")
        unit = PlantUnitFactory(plant__network=network, code="hp")
        UnitHour.objects.bulk_create(
            UnitHour(unit=unit, hour_start=t, heat_mwh=D("1.000000"), electricity_mwh=D("0.250000"))
            for t in (q for q in quarters(dt.date(2026, 1, 5)) if q.minute == 0)
        )
        record = data_import_create(
            kind="spot_prices", content=price_csv(jan_5_rows()), price_area="DK2", enqueue=False
        )
        data_import_run(data_import_id=record.pk, now=timezone.now())
        cost = operating_cost_compute(
            network=network,
            period_start=dt.date(2026, 1, 5),
            period_end=dt.date(2026, 1, 6),
            now=timezone.now(),
        )
        assert cost.inputs["spot_price_hours_by_resolution_minutes"] == {"15": 24}
        # 0.25 MWh an hour × Σ hourly means 1,743.2351 (745.1275 − 2.9 + 0.0001 − 0.0001 + 1.0001
        # + 100.0075 + 18 × 50) = 435.808775 DKK, no charges: 435.81
        assert cost.results["figures"]["electricity_cost"] == "435.81"

    def test_an_hourly_import_records_60_minutes(self):
        text = price_csv([(f"2026-01-04 {h:02d}:00", "10.5") for h in range(24)])
        record = data_import_create(
            kind="spot_prices", content=text, price_area="DK2", enqueue=False
        )
        record = data_import_run(data_import_id=record.pk, now=timezone.now())
        assert (record.status, record.resolution_minutes, record.rows) == (
            DataImport.Status.DONE,
            60,
            24,
        )
        assert set(SpotPrice.objects.values_list("price_per_mwh", flat=True)) == {D("10.5000")}
        SpotPrice.objects.create(
            price_area="DK2", hour_start=dt.datetime(2026, 1, 5, tzinfo=CPH), price_per_mwh=D(1)
        )
        assert spot_price_hours_by_resolution(
            price_area="DK2",
            start_at=dt.datetime(2026, 1, 4, tzinfo=CPH),
            end_at=dt.datetime(2026, 1, 6, tzinfo=CPH),
        ) == {"60": 24, "unrecorded": 1}

    def test_a_refused_file_stores_nothing_and_no_resolution(self):
        rows = jan_5_rows()
        del rows[3]
        record = data_import_create(
            kind="spot_prices", content=price_csv(rows), price_area="DK2", enqueue=False
        )
        record = data_import_run(data_import_id=record.pk, now=timezone.now())
        assert record.status == DataImport.Status.FAILED
        assert record.resolution_minutes is None
        assert [e["code"] for e in record.errors] == ["missing_quarter"]
        assert SpotPrice.objects.count() == 0
