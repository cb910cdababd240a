"""Effective-dated electricity charges (grid tariff incl. time of use, system tariffs, tax)
imported from CSV through the idempotent import task; itemised errors; use in the hourly
electricity price, DST days included."""

import datetime as dt
from decimal import Decimal as D

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from tariffs.imports import ImportRejected, parse_electricity_charges
from tariffs.models import DataImport, ElectricityCharge, SpotPrice
from tariffs.selectors import electricity_prices_frame
from tariffs.services import data_import_create, data_import_run

UTC = dt.UTC

GOOD = """price_area,kind,valid_from,valid_to,hours,Amount [DKK/MWh]
DK2,grid,2025-01-01,,0-6,150
DK2,grid,2025-01-01,,6-17,230
DK2,grid,2025-01-01,,17-21,450.5
DK2,grid,2025-01-01,,21-24,230
DK2,system,2025-01-01,,,145
DK2,tax,2025-01-01,2026-01-01,,8
DK2,tax,2026-01-01,,,1
"""


def codes(err) -> set[tuple]:
    return {(e.code, e.row, e.field) for e in err.value.errors}


class TestParse:
    def test_time_of_use_grid_tariff_system_and_tax(self):
        rows = parse_electricity_charges(GOOD, currency="DKK")
        assert len(rows) == 7
        peak = next(r for r in rows if r.hour_from == 17)
        assert (peak.row, peak.kind, peak.hour_to, peak.amount_per_mwh, peak.valid_to) == (
            4,
            "grid",
            21,
            D("450.5"),
            None,
        )
        assert [(r.valid_from, r.valid_to) for r in rows if r.kind == "tax"] == [
            (dt.date(2025, 1, 1), dt.date(2026, 1, 1)),
            (dt.date(2026, 1, 1), None),
        ]

    def test_per_kwh_semicolons_dotted_dates_and_the_imports_price_area(self):
        text = "kind;valid_from;valid_to;amount_per_kwh\nelectricity tax;01.01.2026;;0,008\nsystem tariffs;01.01.2026;;0,145\n"
        rows = parse_electricity_charges(text, price_area="DK1", currency="DKK")
        assert [(r.price_area, r.kind, r.valid_from, r.amount_per_mwh) for r in rows] == [
            ("DK1", "tax", dt.date(2026, 1, 1), D("8.000")),
            ("DK1", "system", dt.date(2026, 1, 1), D("145.000")),
        ]

    def test_bad_rows_are_itemised_by_row_and_field(self):
        text = """price_area,kind,valid_from,valid_to,hours,amount_per_mwh,currency
DK2,grid,2025-01-01,,,100,DKK
DK2,heating,2025-01-01,,,100,DKK
DK2,tax,2025-13-01,,,8,DKK
DK2,system,2025-01-01,2024-12-01,,145,DKK
DK2,tax,2025-01-01,,,abc,DKK
DK2,tax,2025-01-01,,25-26,8,DKK
DK2,tax,2025-01-01,,,8,EUR
,tax,2025-01-01,,,8,DKK
"""
        with pytest.raises(ImportRejected) as err:
            parse_electricity_charges(text, currency="DKK")
        assert codes(err) == {
            ("invalid_kind", 3, "kind"),
            ("invalid_date", 4, "valid_from"),
            ("ends_before_start", 5, "valid_to"),
            ("invalid_number", 6, "amount_per_mwh"),
            ("invalid_hours", 7, "hours"),
            ("currency", 8, "currency"),
            ("required", 9, "price_area"),
        }

    def test_duplicates_overlaps_and_gaps(self):
        text = """price_area,kind,valid_from,valid_to,amount_per_mwh
DK2,tax,2025-01-01,2025-07-01,8
DK2,tax,2025-01-01,2025-03-01,9
DK2,system,2025-01-01,2025-07-01,145
DK2,system,2025-06-01,,150
DK2,grid,2025-01-01,2025-04-01,200
DK2,grid,2025-05-01,,210
"""
        with pytest.raises(ImportRejected) as err:
            parse_electricity_charges(text, currency="DKK")
        assert codes(err) == {
            ("duplicate", 3, "valid_from"),
            ("overlap", 5, "valid_from"),
            ("gap", 7, "valid_from"),
        }
        gap = next(e for e in err.value.errors if e.code == "gap")
        assert (
            gap.message
            == "No grid charge for DK2 from 2025-04-01 to 2025-05-01 (exclusive) between two rows."
        )

    def test_time_of_use_bands_must_not_overlap_and_must_cover_the_day(self):
        text = """price_area,kind,valid_from,hours,amount_per_mwh
DK2,grid,2025-01-01,0-17,150
DK2,grid,2025-01-01,16-24,450
DK2,system,2025-01-01,0-6,100
DK2,system,2025-01-01,6-23,140
"""
        with pytest.raises(ImportRejected) as err:
            parse_electricity_charges(text, currency="DKK")
        assert codes(err) == {("hours_overlap", 3, "hours"), ("hours_gap", 4, "hours")}
        gap = next(e for e in err.value.errors if e.code == "hours_gap")
        assert "local hours 23 have no charge" in gap.message

    def test_header_currency_and_missing_columns(self):
        with pytest.raises(ImportRejected) as err:
            parse_electricity_charges(
                "kind,valid_from,Amount [EUR/MWh]\ntax,2025-01-01,1\n",
                price_area="DK2",
                currency="DKK",
            )
        assert codes(err) == {("currency", None, "Amount [EUR/MWh]")}
        with pytest.raises(ImportRejected) as err:
            parse_electricity_charges("kind,amount_per_mwh\ntax,1\n", currency="DKK")
        assert codes(err) == {
            ("missing_column", None, "valid_from"),
            ("missing_column", None, "price_area"),
        }


def run_import(content, **kw):
    record = data_import_create(
        kind="electricity_charges", content=content, enqueue=False, currency="DKK", **kw
    )
    return data_import_run(data_import_id=record.pk, now=timezone.now())


@pytest.mark.django_db
class TestImportTask:
    def test_imported_through_the_celery_task_once_and_idempotent(
        self, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=True):
            record = data_import_create(
                kind="electricity_charges", content=GOOD, filename="charges.csv"
            )
        record.refresh_from_db()
        assert record.status == DataImport.Status.DONE, record.errors
        assert record.rows == 7
        assert record.first_hour == dt.datetime(
            2024, 12, 31, 23, tzinfo=UTC
        )  # local midnight, Copenhagen
        assert record.last_hour is None  # open-ended
        assert ElectricityCharge.objects.filter(data_import=record).count() == 7
        # the finished import run again is a no-op; the same file in a new import changes nothing
        assert (
            data_import_run(data_import_id=record.pk, now=timezone.now()).status
            == DataImport.Status.DONE
        )
        again = run_import(GOOD)
        assert again.status == DataImport.Status.DONE
        assert ElectricityCharge.objects.count() == 7
        assert not ElectricityCharge.objects.filter(data_import=again).exists()

    def test_a_new_price_list_closes_the_open_charge(self):
        run_import("price_area,kind,valid_from,amount_per_mwh\nDK2,system,2025-01-01,145\n")
        done = run_import("price_area,kind,valid_from,amount_per_mwh\nDK2,system,2026-01-01,160\n")
        assert done.status == DataImport.Status.DONE, done.errors
        assert list(
            ElectricityCharge.objects.order_by("valid_from").values_list(
                "valid_from", "valid_to", "amount_per_mwh"
            )
        ) == [
            (dt.date(2025, 1, 1), dt.date(2026, 1, 1), D("145.0000")),
            (dt.date(2026, 1, 1), None, D("160.0000")),
        ]

    def test_a_row_overlapping_a_stored_charge_fails_the_whole_file(self):
        run_import(
            "price_area,kind,valid_from,valid_to,amount_per_mwh\nDK2,tax,2025-01-01,2026-01-01,8\n"
            "DK2,grid,2025-01-01,,200\n"
        )
        bad = run_import(
            "price_area,kind,valid_from,valid_to,amount_per_mwh\n"
            "DK2,grid,2026-01-01,,210\n"  # fine alone: closes the open grid charge
            "DK2,tax,2025-06-01,2026-06-01,9\n"
        )
        assert bad.status == DataImport.Status.FAILED
        assert [(e["code"], e["row"], e["field"]) for e in bad.errors] == [
            ("overlap", 3, "valid_from")
        ]
        stored = ElectricityCharge.objects.get(kind="tax")
        assert (
            f"stored charge #{stored.pk} (8.0000 DKK/MWh, [2025-01-01, 2026-01-01)"
            in bad.errors[0]["message"]
        )
        # nothing of the failed file stays, the grid charge was not closed either
        assert ElectricityCharge.objects.count() == 2
        assert ElectricityCharge.objects.get(kind="grid").valid_to is None

    def test_parse_errors_are_recorded_on_the_import(self):
        bad = run_import("price_area,kind,valid_from,amount_per_mwh\nDK2,grid,2025-01-01,x\n")
        assert bad.status == DataImport.Status.FAILED
        assert bad.errors == [
            {
                "code": "invalid_number",
                "field": "amount_per_mwh",
                "row": 2,
                "message": "'x' is not a number.",
            }
        ]

    def test_database_refuses_an_overlap_of_the_same_band(self):
        ElectricityCharge.objects.create(
            price_area="DK2",
            kind="grid",
            valid_from=dt.date(2025, 1, 1),
            hour_from=17,
            hour_to=21,
            amount_per_mwh=D("450"),
        )
        dup = ElectricityCharge(
            price_area="DK2",
            kind="grid",
            valid_from=dt.date(2025, 6, 1),
            hour_from=17,
            hour_to=21,
            amount_per_mwh=D("460"),
        )
        from django.core.exceptions import ValidationError

        with pytest.raises(ValidationError):
            dup.full_clean()
        with pytest.raises(IntegrityError), transaction.atomic():
            ElectricityCharge.objects.create(
                price_area="DK2",
                kind="grid",
                valid_from=dt.date(2025, 1, 1),
                hour_from=21,
                hour_to=17,
                amount_per_mwh=D("1"),
            )


def spot_day(day: dt.date, tz="Europe/Copenhagen"):
    """Spot prices of one local day (23, 24 or 25 hours), 100 per MWh."""
    import pandas as pd

    start = pd.Timestamp(day).tz_localize(tz)
    end = pd.Timestamp(day + dt.timedelta(days=1)).tz_localize(tz)
    hours = pd.date_range(start, end, freq="h", inclusive="left").tz_convert("UTC")
    SpotPrice.objects.bulk_create(
        SpotPrice(price_area="DK2", hour_start=t.to_pydatetime(), price_per_mwh=D("100"))
        for t in hours
    )
    return start.to_pydatetime(), end.to_pydatetime()


@pytest.mark.django_db
class TestTimeOfUseInTheHourlyPrice:
    CSV = """price_area,kind,valid_from,hours,amount_per_mwh
DK2,grid,2025-01-01,0-2,100
DK2,grid,2025-01-01,2-3,999
DK2,grid,2025-01-01,3-17,200
DK2,grid,2025-01-01,17-21,450
DK2,grid,2025-01-01,21-24,200
DK2,system,2025-01-01,,145
DK2,tax,2025-01-01,,8
"""

    def test_the_25_hour_day_charges_both_02_00_hours_at_their_band(self):
        assert run_import(self.CSV).status == DataImport.Status.DONE
        start, end = spot_day(dt.date(2025, 10, 26))
        frame = electricity_prices_frame(
            price_area="DK2", start_at=start, end_at=end, time_zone="Europe/Copenhagen"
        )
        assert len(frame) == 25
        assert (
            list(frame["grid"])
            == [100.0] * 2 + [999.0] * 2 + [200.0] * 14 + [450.0] * 4 + [200.0] * 3
        )
        # Σ price over the day: spot 25×100 + grid + system 25×145 + tax 25×8
        assert frame[["spot", "grid", "system", "tax"]].sum(axis=1).sum() == pytest.approx(
            2500 + (200 + 1998 + 2800 + 1800 + 600) + 3625 + 200
        )

    def test_the_23_hour_day_has_no_02_00_hour(self):
        run_import(self.CSV)
        start, end = spot_day(dt.date(2025, 3, 30))
        frame = electricity_prices_frame(
            price_area="DK2", start_at=start, end_at=end, time_zone="Europe/Copenhagen"
        )
        assert len(frame) == 23
        assert 999.0 not in set(frame["grid"])
        assert list(frame["grid"]) == [100.0] * 2 + [200.0] * 14 + [450.0] * 4 + [200.0] * 3


@pytest.mark.django_db
def test_admin_validation_refuses_a_band_overlapping_another_band():
    from django.core.exceptions import ValidationError

    stored = ElectricityCharge.objects.create(
        price_area="DK2", kind="grid", valid_from=dt.date(2025, 1, 1), amount_per_mwh=D("200")
    )
    peak = ElectricityCharge(
        price_area="DK2",
        kind="grid",
        valid_from=dt.date(2025, 6, 1),
        hour_from=17,
        hour_to=21,
        amount_per_mwh=D("450"),
    )
    with pytest.raises(
        ValidationError, match=rf"Hours 17–21 overlap charge #{stored.pk} \(00–24 from 2025-01-01\)"
    ):
        peak.full_clean()
    peak.valid_from = dt.date(2024, 1, 1)
    peak.valid_to = dt.date(2025, 1, 1)
    peak.full_clean()  # the days before are free


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgres_refuses_overlapping_dates_of_one_band():
    ElectricityCharge.objects.create(
        price_area="DK2",
        kind="grid",
        valid_from=dt.date(2025, 1, 1),
        hour_from=17,
        hour_to=21,
        amount_per_mwh=D("450"),
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        ElectricityCharge.objects.create(
            price_area="DK2",
            kind="grid",
            valid_from=dt.date(2025, 6, 1),
            hour_from=17,
            hour_to=21,
            amount_per_mwh=D("460"),
        )
    # another band, or the same band in another area or kind, is not this constraint's business
    ElectricityCharge.objects.create(
        price_area="DK1",
        kind="grid",
        valid_from=dt.date(2025, 6, 1),
        hour_from=17,
        hour_to=21,
        amount_per_mwh=D("460"),
    )


@pytest.mark.django_db
def test_an_amount_with_more_decimals_than_stored_is_still_imported_idempotently():
    # a grid tariff published per kWh with 7 decimals: 0.1234567 DKK/kWh = 123.4567 DKK/MWh
    # fits the column (4 decimals); 0.12345678 DKK/kWh = 123.45678 DKK/MWh does not and is
    # stored as 123.4568.  The same file imported again must change nothing, not clash
    # with what its first import stored.
    text = "price_area,kind,valid_from,amount_per_kwh\nDK2,grid,2026-01-01,0.12345678\n"
    first = run_import(text)
    assert first.status == DataImport.Status.DONE, first.errors
    assert ElectricityCharge.objects.get().amount_per_mwh == D("123.4568")
    again = run_import(text)
    assert again.status == DataImport.Status.DONE, again.errors
    assert ElectricityCharge.objects.count() == 1
