"""ENTSO-E day-ahead exports, old and new: the price header in square or round brackets,
extra columns ignored, and each row's MTU (start - end) as long as the file's resolution,
rows neither overlapping nor leaving a gap (Europe/Copenhagen, DST days included)."""

import datetime as dt
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from tariffs.imports import ImportRejected, parse_spot_prices
from tariffs.models import DataImport, SpotPrice
from tariffs.services import data_import_create, data_import_run

TZ = "Europe/Copenhagen"
CPH = ZoneInfo(TZ)
SQUARE, ROUND = "Day-ahead Price [EUR/MWh]", "Day-ahead Price (EUR/MWh)"


def mtus(day: dt.date, minutes: int) -> list[str]:
    """The day's MTU labels as ENTSO-E writes them: local start - local end, the repeated
    autumn hour's starts marked (CEST) / (CET)."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=CPH).astimezone(dt.UTC)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=CPH).astimezone(dt.UTC)
    step = dt.timedelta(minutes=minutes)
    labels, t = [], start
    while t < end:
        a, b = t.astimezone(CPH), (t + step).astimezone(CPH)
        repeated = a.replace(fold=0).utcoffset() != a.replace(fold=1).utcoffset()
        mark = f" ({a.tzname()})" if repeated else ""
        labels.append(f"{a:%d.%m.%Y %H:%M} - {b:%d.%m.%Y %H:%M}{mark}")
        t += step
    return labels


def export(labels, *, header=ROUND, extra=True, price=lambda i: f"{50 + i % 4}.00") -> str:
    """A newer export (extra columns around the two we read) or an older one."""
    if extra:
        lines = [f'"MTU (CET/CEST)","BZN|DK1","Currency","Sequence","{header}"']
        lines += [
            f'"{m}","BZN|DK1","EUR","Without Sequence","{price(i)}"' for i, m in enumerate(labels)
        ]
    else:
        lines = [f'"MTU (CET/CEST)","{header}"']
        lines += [f'"{m}","{price(i)}"' for i, m in enumerate(labels)]
    return "\n".join(lines) + "\n"


def refused(text: str) -> list[tuple[str, int | None]]:
    with pytest.raises(ImportRejected) as err:
        parse_spot_prices(text, time_zone=TZ, currency="EUR")
    return [(e.code, e.row) for e in err.value.errors]


class TestHeadersAndColumns:
    @pytest.mark.parametrize("header", [SQUARE, ROUND], ids=["square", "round"])
    @pytest.mark.parametrize("extra", [False, True], ids=["two-columns", "extra-columns"])
    def test_either_bracket_style_with_or_without_extra_columns(self, header, extra):
        text = export(mtus(dt.date(2026, 1, 5), 60), header=header, extra=extra)

        frame = parse_spot_prices(text, time_zone=TZ, currency="EUR")

        assert (len(frame), frame.attrs["resolution_minutes"]) == (24, 60)
        assert list(frame["price_per_mwh"][:4]) == [50, 51, 52, 53]

    def test_the_round_bracket_currency_is_checked_too(self):
        text = export(mtus(dt.date(2026, 1, 5), 60))
        with pytest.raises(ImportRejected) as err:
            parse_spot_prices(text, time_zone=TZ, currency="DKK")
        assert [(e.code, e.field) for e in err.value.errors] == [("currency", ROUND)]

    def test_the_day_ahead_price_is_read_not_another_price_column(self):
        lines = ['"MTU (CET/CEST)","Intraday Price (EUR/MWh)","Day-ahead Price (EUR/MWh)"']
        lines += [f'"{m}","999.00","{i}.00"' for i, m in enumerate(mtus(dt.date(2026, 1, 5), 60))]
        frame = parse_spot_prices("\n".join(lines), time_zone=TZ, currency="EUR")
        assert list(frame["price_per_mwh"][:3]) == [0, 1, 2]

    def test_a_file_without_a_time_or_a_price_column_is_refused_itemised(self):
        no_time = '"BZN|DK1","Day-ahead Price (EUR/MWh)"\n"BZN|DK1","50.00"\n'
        no_price = '"MTU (CET/CEST)","BZN|DK1","Currency"\n' + "".join(
            f'"{m}","BZN|DK1","EUR"\n' for m in mtus(dt.date(2026, 1, 5), 60)
        )
        with pytest.raises(ImportRejected) as err:
            parse_spot_prices(no_time, time_zone=TZ, currency="EUR")
        assert [(e.code, e.field) for e in err.value.errors] == [("missing_column", "time")]
        with pytest.raises(ImportRejected) as err:
            parse_spot_prices(no_price, time_zone=TZ, currency="EUR")
        assert [(e.code, e.field) for e in err.value.errors] == [("missing_column", "price")]


class TestDaylightSavingDays:
    @pytest.mark.parametrize(
        ("day", "minutes", "rows", "hours"),
        [
            (dt.date(2026, 3, 29), 60, 23, 23),
            (dt.date(2025, 10, 26), 60, 25, 25),
            (dt.date(2026, 3, 29), 15, 92, 23),
            (dt.date(2025, 10, 26), 15, 100, 25),
        ],
        ids=["spring-hourly", "autumn-hourly", "spring-15min", "autumn-15min"],
    )
    def test_the_23_and_25_hour_days(self, day, minutes, rows, hours):
        labels = mtus(day, minutes)
        assert len(labels) == rows

        frame = parse_spot_prices(export(labels), time_zone=TZ, currency="EUR")

        assert (len(frame), frame.attrs["resolution_minutes"]) == (hours, minutes)
        assert frame["hour_start"].is_unique

    def test_the_repeated_hour_ending_at_either_wall_time(self):
        """The first 02:00 (CEST) ends at 03:00 CEST, the instant the wall clock shows 02:00
        CET again: exports write either wall time."""
        labels = mtus(dt.date(2025, 10, 26), 60)
        first = labels.index("26.10.2025 02:00 - 26.10.2025 02:00 (CEST)")
        labels[first] = "26.10.2025 02:00 - 26.10.2025 03:00 (CEST)"

        frame = parse_spot_prices(export(labels), time_zone=TZ, currency="EUR")

        assert len(frame) == 25


class TestMtuLengths:
    def test_an_hour_long_row_in_a_15_minute_file_is_named(self):
        labels = mtus(dt.date(2026, 1, 5), 15)
        labels[20] = "05.01.2026 05:00 - 05.01.2026 06:00"  # row 22

        errors = refused(export(labels))

        assert ("mtu_length", 22) in errors
        assert {code for code, _ in errors} == {"mtu_length"}

    def test_a_quarter_hour_row_in_an_hourly_file_is_named(self):
        labels = mtus(dt.date(2026, 1, 5), 60)
        labels[5] = "05.01.2026 05:00 - 05.01.2026 05:15"  # row 7

        assert refused(export(labels, extra=False)) == [("mtu_length", 7)]

    def test_rows_that_overlap_or_leave_a_gap_are_named(self):
        labels = mtus(dt.date(2026, 1, 5), 60)
        labels[5] = "05.01.2026 05:30 - 05.01.2026 06:30"  # row 7: after a gap, overlaps row 8

        errors = refused(export(labels))

        assert ("mtu_gap", 7) in errors
        assert ("mtu_overlap", 8) in errors

    def test_an_mtu_without_an_end_in_a_file_of_ranges_is_named(self):
        labels = mtus(dt.date(2026, 1, 5), 60)
        labels[3] = "05.01.2026 03:00"  # row 5

        assert refused(export(labels)) == [("invalid_mtu", 5)]


@pytest.mark.django_db
def test_the_import_stores_a_newer_export_and_records_a_refused_row():
    text = export(
        mtus(dt.date(2026, 1, 5), 15), price=lambda i: ("85.10", "85.20", "85.30", "85.41")[i % 4]
    )
    record = data_import_create(
        kind="spot_prices", content=text, price_area="DK1", currency="EUR", enqueue=False
    )
    record = data_import_run(data_import_id=record.pk, now=timezone.now())
    assert (record.status, record.resolution_minutes, record.rows) == (
        DataImport.Status.DONE,
        15,
        24,
    )
    assert set(SpotPrice.objects.values_list("price_per_mwh", flat=True)) == {D("85.2525")}

    labels = mtus(dt.date(2026, 1, 6), 15)
    labels[0] = "06.01.2026 00:00 - 06.01.2026 01:00"
    record = data_import_create(
        kind="spot_prices", content=export(labels), price_area="DK1", currency="EUR", enqueue=False
    )
    record = data_import_run(data_import_id=record.pk, now=timezone.now())
    assert record.status == DataImport.Status.FAILED
    assert [(e["code"], e["row"]) for e in record.errors] == [("mtu_length", 2)]
    assert SpotPrice.objects.count() == 24
