"""The registers behind "same period last year" are recorded on the bill.

``comparison.last_year_mwh`` (the PDF's "same period last year", and the plausibility
hold against it) is measured by the registers a year before each contract interval's
bounds.  The comparison records them (``last_year_readings``, in the readings' shape)
and whether one was estimated (``last_year_estimated``), on the direct path and through
``bill_compute`` alike (``test_render.py`` compares the two byte for byte); the PDF marks
a last-year figure that rests on an estimate.
"""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from pypdf import PdfReader

from billing.calc import ContractInterval, Plausibility, Register, bill_compute
from billing.models import Invoice
from tariffs.published import PUBLISHED_TARIFFS
from tariffs.rating import Determinants, TariffSpec, components_from_data, rate
from tests.billing.factories import billed_network, register, tariff_version
from tests.billing.helpers import NOV, bill_month

DEC = dt.date(2026, 12, 1)
MID = dt.date(2026, 11, 16)
NOV_LY, MID_LY, DEC_LY = dt.date(2025, 11, 1), dt.date(2025, 11, 16), dt.date(2025, 12, 1)


def _hofor() -> TariffSpec:
    entry = PUBLISHED_TARIFFS["hofor-2024"]
    return TariffSpec(
        version_id=7,
        tariff_code="hofor-2024",
        currency=entry["currency"],
        vat_rate=Decimal(entry["vat_rate"]),
        components=components_from_data(entry["components"]),
        prices_include_vat=entry["prices_include_vat"],
    )


def _register(rid: int, kwh: str, *, status: str = "actual") -> Register:
    method = "reading" if status == "actual" else "interpolated"
    return Register(rid, Decimal(kwh), Decimal("100.0000"), None, None, status, method)


def _record(rid: int, cid: int, on: dt.date, kwh: str, status: str = "actual") -> dict:
    return {
        "id": rid,
        "connection_id": cid,
        "on": on.isoformat(),
        "energy_kwh": kwh,
        "volume_m3": "100.0000",
        "status": status,
        "method": "reading" if status == "actual" else "interpolated",
    }


def _compute(intervals, registers):
    tariff = _hofor()
    return bill_compute(
        account_id=1,
        period_start=NOV,
        period_end=DEC,
        currency=tariff.currency,
        intervals=intervals,
        slices={cid: [(NOV, DEC, tariff)] for cid in {i.connection_id for i in intervals}},
        registers=registers,
        rate=rate,
        determinants_type=Determinants,
        plausibility=Plausibility(),
    )


def _interval(cid: int, start: dt.date = NOV, end: dt.date = DEC) -> ContractInterval:
    return ContractInterval(cid, start, end, Decimal("10.00"), Decimal("130.00"))


class TestLastYearRegistersInTheComparison:
    def test_two_connections_record_each_connections_registers(self):
        registers = {
            (11, NOV): _register(1, "10000.000000"),
            (11, DEC): _register(2, "11500.000000"),
            (11, NOV_LY): _register(3, "1000.000000"),
            (11, DEC_LY): _register(4, "2400.000500"),
            (12, NOV): _register(5, "500.000000"),
            (12, DEC): _register(6, "800.000000"),
            (12, NOV_LY): _register(7, "100.000000", status="estimated"),
            (12, DEC_LY): _register(8, "350.000000"),
        }
        draft = _compute([_interval(12), _interval(11)], registers)

        # 1,400.0005 + 250 kWh = 1.6500005 MWh: 1.650001 half up, to the Wh
        assert draft.comparison["energy_mwh"] == "1.800000"
        assert draft.comparison["last_year_mwh"] == "1.650001"
        assert draft.comparison["last_year_readings"] == [
            _record(3, 11, NOV_LY, "1000.000000"),
            _record(4, 11, DEC_LY, "2400.000500"),
            _record(7, 12, NOV_LY, "100.000000", "estimated"),
            _record(8, 12, DEC_LY, "350.000000"),
        ]
        assert draft.comparison["last_year_estimated"] is True
        # the comparison's registers are not the bill's: its own reads were all read
        assert draft.has_estimated_reads is False
        assert [r["id"] for r in draft.readings] == [1, 2, 5, 6]
        # 1.8 MWh × 592.52 (hofor-2024) and the month's fixed charges: unchanged by it
        assert draft.net == sum((line.amount for line in draft.lines), Decimal("0"))

    def test_the_recorded_registers_give_last_years_figure_again(self):
        """Two contracts in a row on one connection: the register a year before the
        16th ends one interval's last year and starts the other's, recorded once, and
        the recorded registers add up to the figure again (end less start)."""
        registers = {
            (11, NOV): _register(1, "10000.000000"),
            (11, MID): _register(2, "10700.000000"),
            (11, DEC): _register(3, "11500.000000"),
            (11, NOV_LY): _register(4, "1000.000000"),
            (11, MID_LY): _register(5, "1650.123456", status="estimated"),
            (11, DEC_LY): _register(6, "2400.000000"),
        }
        draft = _compute([_interval(11, MID, DEC), _interval(11, NOV, MID)], registers)

        recorded = draft.comparison["last_year_readings"]
        assert [(r["id"], r["on"]) for r in recorded] == [
            (4, "2025-11-01"),
            (5, "2025-11-16"),
            (6, "2025-12-01"),
        ]
        kwh = Decimal(recorded[-1]["energy_kwh"]) - Decimal(recorded[0]["energy_kwh"])
        assert draft.comparison["last_year_mwh"] == "1.400000" == f"{kwh / 1000:.6f}"
        assert draft.comparison["last_year_estimated"] is True

    @pytest.mark.parametrize("why", ["missing", "someone_else"])
    def test_no_figure_records_no_registers(self, why):
        """One interval without last year's figure leaves the bill without one (as it
        did): then no register is recorded either, not even the other interval's."""
        registers = {
            (11, NOV): _register(1, "10000.000000"),
            (11, DEC): _register(2, "11500.000000"),
            (11, NOV_LY): _register(3, "1000.000000", status="estimated"),
            (11, DEC_LY): _register(4, "2400.000000"),
            (12, NOV): _register(5, "500.000000"),
            (12, DEC): _register(6, "800.000000"),
            (12, NOV_LY): _register(7, "100.000000"),
            (12, DEC_LY): _register(8, "350.000000"),
        }
        second = _interval(12)
        if why == "missing":
            del registers[(12, DEC_LY)]
        else:  # somebody else's contract on connection 12 ended on 1 March 2026
            second = second._replace(others_until=dt.date(2026, 3, 1))
        draft = _compute([_interval(11), second], registers)

        assert draft.comparison == {
            "energy_mwh": "1.800000",
            "last_year_mwh": None,
            "last_year_readings": [],
            "last_year_estimated": False,
        }


def _pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


def _run_november(network, *, paths=None):
    """Bill and issue November 2026 for ``network`` (PDFs rendered on commit by the
    test); counts the calls of the direct path and of bill_compute into ``paths``."""
    from unittest import mock

    from billing.services import render

    with (
        mock.patch.object(render, "bill_render", wraps=render.bill_render) as direct,
        mock.patch.object(render, "bill_compute", wraps=render.bill_compute) as fallback,
    ):
        run = bill_month(network)
    if paths is not None:
        paths.extend([direct.call_count, fallback.call_count])
    return run


@pytest.mark.postgres
@pytest.mark.django_db
class TestRunsRecordLastYearsRegisters:
    @pytest.mark.parametrize("path", ["direct", "bill_compute"])
    def test_the_recorded_registers_are_the_boundary_registers_used(self, path):
        """One account on each path (a tariff version changing on the 16th takes it
        through bill_compute): last year's registers on 1 November and 1 December 2025
        are recorded as metering holds them, the estimated one flagged; the bill is the
        same to the cent."""
        from metering.models import BoundaryRegister

        network, contracts = billed_network(accounts=1)
        if path == "bill_compute":
            from tariffs.models import TariffVersion

            version = TariffVersion.objects.get(tariff__network=network)
            version.valid_to = MID
            version.save()
            tariff_version(network=network, valid_from=MID)
        connection = contracts[0].connection
        # 1 November 2025: estimated, 1,500 kWh a month as read
        register(connection, NOV_LY, Decimal("10000") + 10 * 1500, status="estimated")
        paths: list[int] = []
        _run_november(network, paths=paths)
        assert paths == ([1, 0] if path == "direct" else [0, 1])

        invoice = Invoice.objects.get()
        rows = {
            r.on: r
            for r in BoundaryRegister.objects.filter(connection=connection, on__in=[NOV_LY, DEC_LY])
        }
        assert invoice.comparison["last_year_readings"] == [
            {
                "id": rows[day].pk,
                "connection_id": connection.pk,
                "on": day.isoformat(),
                "energy_kwh": str(rows[day].energy_kwh),
                "volume_m3": str(rows[day].volume_m3),
                "status": rows[day].status,
                "method": rows[day].method,
            }
            for day in (NOV_LY, DEC_LY)
        ]
        assert [r["energy_kwh"] for r in invoice.comparison["last_year_readings"]] == [
            "25000.000000",
            "26500.000000",
        ]
        assert invoice.comparison["last_year_mwh"] == "1.500000"
        assert invoice.comparison["last_year_estimated"] is True
        assert invoice.has_estimated_reads is False  # the bill's own reads were read
        # 1.5 MWh × 592.52 = 888.78, + 100.00 + 100.00, VAT 272.20 (docs/billing.md)
        assert (invoice.net, invoice.vat, invoice.gross) == (
            Decimal("1088.78"),
            Decimal("272.20"),
            Decimal("1360.98"),
        )

    def test_a_bill_held_against_an_estimated_last_year_says_so(self):
        network, contracts = billed_network(accounts=1)
        # last year's November estimated at 500 kWh: 1.5 MWh is 3× that
        register(
            contracts[0].connection, DEC_LY, Decimal("10000") + 10 * 1500 + 500, status="estimated"
        )
        _run_november(network)
        invoice = Invoice.objects.get()
        assert invoice.held
        assert (
            "1.500000 MWh is 3.00× the same period last year (0.500000 MWh, from an "
            "estimated register)" in invoice.hold_reason
        )


@pytest.mark.django_db
class TestPdfMarksAnEstimatedLastYear:
    def _pdf(self, invoice: Invoice) -> str:
        from billing.documents import invoice_pdf_bytes

        return _pdf_text(invoice_pdf_bytes(invoice=invoice))

    def test_an_estimated_last_year_is_marked_and_its_register_named(self):
        network, contracts = billed_network(accounts=1)
        connection = contracts[0].connection
        register(connection, NOV_LY, Decimal("10000") + 10 * 1500, status="estimated")
        _run_november(network)

        text = self._pdf(Invoice.objects.get())
        assert "Same period last year: 1.500 MWh ESTIMATED (0.0 %)" in text
        assert (
            f"Last year's figure uses an estimated meter reading: connection {connection.pk}, "
            "2025-11-01 (interpolation)." in text
        )
        assert "1.500 MWh (estimated)" in text  # the chart's bar
        # the readings table's own reads were read: no ESTIMATED there, no note under it
        assert "Readings marked ESTIMATED" not in text

    def test_a_read_last_year_is_not_marked(self):
        network, _ = billed_network(accounts=1)
        _run_november(network)

        text = self._pdf(Invoice.objects.get())
        assert "Same period last year: 1.500 MWh (0.0 %)" in text
        assert "ESTIMATED" not in text
        assert "(estimated)" not in text

    def test_an_invoice_recorded_before_the_registers_were_still_renders(self):
        """An invoice written before the comparison recorded its registers (the old
        shape: energy and last year's MWh alone) renders as it did, unmarked."""
        network, contracts = billed_network(accounts=1)
        register(contracts[0].connection, NOV_LY, Decimal("25000"), status="estimated")
        bill_month(network, issue=False)
        invoice = Invoice.objects.get()
        assert invoice.comparison["last_year_estimated"] is True
        Invoice.objects.filter(pk=invoice.pk).update(
            comparison={"energy_mwh": "1.500000", "last_year_mwh": "1.500000"}
        )
        invoice.refresh_from_db()

        text = self._pdf(invoice)
        assert "Same period last year: 1.500 MWh (0.0 %)" in text
        assert "ESTIMATED" not in text
