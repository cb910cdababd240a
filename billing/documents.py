"""Invoice PDFs (WeasyPrint): every line explained, readings used, last year, price cap.

The document carries the billing information EED Art. 17 / Annex IX and Commission
Recommendation (EU) 2019/1660 ask for (DOMAIN.md §7): actual prices and consumption,
consumption against the same period last year in graphic form, a comparison with a
normalised reference user, taxes (VAT per rate), fuel mix and emissions, and where to
complain.

Last year's consumption is also shown climate-corrected to this period's weather (the
heating share scaled by this period's degree days over last year's, as in the on-account
estimate), so that the change shown is the customer's own and not the winter's.  Where
last year's figure rests on an estimated register (the comparison records the registers
behind it), it is marked ESTIMATED as estimated readings are, and the register named.

Block prices: the line of a block-priced segment says which trailing year's consumption
chose its blocks (the segment's ``annual_from`` and ``annual_energy_mwh``).
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

from billing.calc import climate_corrected, one_year_earlier
from billing.models import Allocation, Invoice, RefundPart
from heatutility.errors import DomainError, ErrorItem, NotFound
from heatutility.money import plain

log = logging.getLogger(__name__)


class UnableToRenderInvoice(DomainError):
    code = "unable_to_render"


class DocumentMissing(NotFound, Http404):
    """A stored document's file is gone: the API answers 404 with the reason, the admin
    and the portal their 404 page."""

    code = "document_missing"


def pdf_response(document) -> FileResponse:
    """A stored PDF (an invoice's or a reminder letter's ``pdf``), shown inline under the
    document's own file name: the admin, the API and the portal answer with this.

    A file gone from the store (a lost volume, a restore without the media) is a 404 that
    says so, logged for staff, not a server error: rendering it again stores it anew."""
    try:
        handle = document.pdf.open("rb")
    except FileNotFoundError:
        log.error("%s: its PDF %s is not in the document store", document, document.pdf.name)
        raise DocumentMissing(
            f"The PDF of {document} is not in the document store; staff can render it again."
        ) from None
    return FileResponse(handle, content_type="application/pdf", filename=document.pdf_filename)


# WeasyPrint logs every layout step at INFO; one line per invoice is noise in a run.
logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)

# Reference customers of the Danish regulator (DOMAIN.md §7), MWh in a normal year.
REFERENCE_USERS = (
    ("House, 130 m²", Decimal("18.1")),
    ("Flat, 75 m²", Decimal("15.0")),
)


def comparison_svg(
    *,
    this_mwh: Decimal,
    last_mwh: Decimal | None,
    reference_mwh: Decimal,
    last_corrected_mwh: Decimal | None = None,
    this_label: str = "This period",
    last_label: str = "Same period last year",
    last_estimated: bool = False,
) -> str:
    """A small bar chart (inline SVG): this period, same period last year (and, where
    degree days are known, last year in this period's weather), reference user.
    ``last_estimated``: last year's figure rests on an estimated register, and its bars
    say so (the bars are shorter, to leave the words room)."""
    note = " (estimated)" if last_estimated else ""
    bars = [
        (this_label, this_mwh, "#c0392b", ""),
        (last_label, last_mwh, "#7f8c8d", note),
    ]
    if last_corrected_mwh is not None:
        bars.append(("Last year, this weather", last_corrected_mwh, "#b3b6b7", note))
    bars.append(("Reference house", reference_mwh, "#2980b9", ""))
    top = max([v for _, v, _, _ in bars if v is not None] + [Decimal("0.001")])
    longest = 150 if last_estimated else 200
    height = 6 + len(bars) * 20
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="380" height="{height}" font-size="9">'
    ]
    for index, (label, value, colour, said) in enumerate(bars):
        y = 3 + index * 20
        width = 0 if value is None else float(value / top) * longest
        parts.append(f'<text x="0" y="{y + 11}">{label}</text>')
        parts.append(f'<rect x="125" y="{y}" width="{width:.1f}" height="15" fill="{colour}"/>')
        text = "no data" if value is None else f"{value:.3f} MWh{said}"
        parts.append(f'<text x="{130 + width:.1f}" y="{y + 11}">{text}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line_columns(line, currency: str) -> tuple[str, str]:
    """A line's quantity and unit price as the PDF's table prints them, so that quantity
    × unit price = amount can be checked by the reader: an annual charge prorated to the
    period shows its year fraction ("1 year × 1/12", "8 kW × 1/12 year") and a price per
    year ("3310.00 /year", "350.50 /kW/year").  Other lines print as stored."""
    from heatutility.money import quantize_money
    from tariffs.rating import year_fraction

    quantity = f"{line.quantity.normalize():f} {line.unit}".strip()
    price = unit_price_text(line.unit_price)
    if line.period_start is None or line.period_end is None or line.unit_price == 0:
        return quantity, price
    fraction = year_fraction(line.period_start, line.period_end)
    if fraction in (0, 1):
        return quantity, price
    plain = quantize_money(line.quantity * line.unit_price, currency)
    prorated = line.quantity * line.unit_price * fraction.numerator / fraction.denominator
    if plain == line.amount or quantize_money(prorated, currency) != line.amount:
        return quantity, price
    share = f"{fraction.numerator}/{fraction.denominator}"
    if line.unit == "year":
        return f"{line.quantity.normalize():f} year × {share}", f"{price} /year"
    return f"{quantity} × {share} year", f"{price} /{line.unit}/year"


def unit_price_text(price: Decimal) -> str:
    """A unit price as printed: every significant decimal, at least two
    (592.520000 as 592.52, 1200 as 1200.00, 0.123456 as 0.123456)."""
    places = max(2, -price.normalize().as_tuple().exponent)
    return f"{price:.{places}f}"


def weather_comparison(
    *, network_id: int, start: dt.date, end: dt.date, last_mwh: Decimal | None
) -> dict | None:
    """Last year's consumption of ``[start, end)`` in this period's weather, with the
    degree days used; None without last year's figure or complete degree days."""
    from billing import conf
    from metering.selectors import degree_days_total

    if last_mwh is None:
        return None
    dd_this = degree_days_total(network_id=network_id, start=start, end=end)
    dd_last = degree_days_total(
        network_id=network_id, start=one_year_earlier(start), end=one_year_earlier(end)
    )
    if not dd_this or not dd_last:
        return None
    share = conf.heating_share()
    corrected = climate_corrected(
        consumption=last_mwh,
        heating_share=share,
        dd_normal=dd_this,
        dd_actual=dd_last,
    )
    return {
        "last_corrected_mwh": corrected.quantize(Decimal("0.001")),
        "dd_this": dd_this,
        "dd_last": dd_last,
        "heating_share_percent": f"{share * 100:.0f}",
    }


def _days_of_year_from(day: dt.date) -> int:
    """The days of the year that starts on ``day`` (366 when it holds a 29 February)."""
    try:
        next_year = day.replace(year=day.year + 1)
    except ValueError:  # 29 February: the year runs to 1 March
        next_year = dt.date(day.year + 1, 3, 1)
    return (next_year - day).days


def reference_period_mwh(
    *,
    annual_mwh: Decimal,
    heating_share: Decimal,
    days: int,
    year_days: int,
    dd_period: Decimal | None,
    dd_normal: Decimal | None,
) -> Decimal:
    """A reference user's consumption in a period, from its normal-year consumption: the
    heating share follows the weather, ``dd_period / dd_normal``, the rest the calendar,
    ``days / year_days`` (the climate correction's split, DOMAIN.md §3); by days alone
    when either degree-day figure is unknown.  MWh to three decimals, half up."""
    by_days = Decimal(days) / Decimal(year_days)
    if dd_period is not None and dd_normal:
        fraction = heating_share * dd_period / dd_normal + (1 - heating_share) * by_days
    else:
        fraction = by_days
    return (annual_mwh * fraction).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)


def reference_comparison(
    *, network_id: int, dd_normal: Decimal | None, start: dt.date, end: dt.date
) -> dict:
    """The reference users (``REFERENCE_USERS``) over ``[start, end)`` with the weather of
    that period: its degree days against the network's normal year, the same figures the
    climate correction and the on-account estimate use; by days when the period's degree
    days are incomplete or the network has no normal year, and ``note`` says which."""
    from billing import conf
    from metering.selectors import degree_days_total

    days, year_days = (end - start).days, _days_of_year_from(start)
    share = conf.heating_share()
    dd_period = (
        degree_days_total(network_id=network_id, start=start, end=end) if dd_normal else None
    )
    by_weather = dd_period is not None and bool(dd_normal)
    rows = [
        (
            label,
            reference_period_mwh(
                annual_mwh=annual,
                heating_share=share,
                days=days,
                year_days=year_days,
                dd_period=dd_period if by_weather else None,
                dd_normal=dd_normal if by_weather else None,
            ),
        )
        for label, annual in REFERENCE_USERS
    ]
    if by_weather:
        note = (
            f"Reference users: a normal year's use, {share * 100:.0f} % scaled by degree days "
            f"({plain(dd_period.quantize(Decimal('0.1'), rounding=ROUND_HALF_UP))} this period, {plain(dd_normal)} a "
            f"normal year), {(1 - share) * 100:.0f} % by days ({days} of {year_days})."
        )
    else:
        why = (
            "the network has no normal-year degree days"
            if not dd_normal
            else "this period's degree days are incomplete"
        )
        note = (
            f"Reference users: a normal year's use scaled by days ({days} of {year_days}), "
            f"not by the weather: {why}."
        )
    return {
        "rows": rows,
        "basis": "degree_days" if by_weather else "days",
        "dd_period": dd_period if by_weather else None,
        "dd_normal": dd_normal,
        "note": note,
    }


def _mwh(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)}"


def fuel_mix(*, network_id: int, time_zone: str, period_end: dt.date) -> dict:
    """The fuel-mix and emissions sentences of a PDF (EED Annex IX) from the network's
    plant data over the 12 full local months before ``period_end``
    (:func:`tariffs.selectors.heat_production_mix`, one query), with the emission factor
    of grid electricity from ``BILLING["GRID_EMISSION_G_PER_KWH"]``; without plant data
    ``BILLING["FUEL_MIX"]``, or that the mix is not available.  Nothing is estimated
    that the data and the configuration do not give."""
    from billing import conf
    from heatutility.timeutil import add_months
    from tariffs.selectors import heat_production_mix

    end = period_end.replace(day=1)
    start = add_months(end, -12)
    factor = conf.get("GRID_EMISSION_G_PER_KWH")
    factor = None if factor in (None, "") else Decimal(str(factor))
    mix = heat_production_mix(
        network_id=network_id,
        start=start,
        end=end,
        time_zone=time_zone,
        grid_g_co2_per_kwh=factor,
    )
    if mix is None:
        configured = conf.get("FUEL_MIX")
        return {
            "mix": None,
            "text": configured
            or (
                f"not available: the plant's production data does not cover "
                f"{start:%Y-%m-%d} – {end - dt.timedelta(days=1):%Y-%m-%d}."
            ),
            "emissions": None,
        }
    shares = ", ".join(f"{k['label'].lower()}s {k['percent']} %" for k in mix["kinds"])
    text = (
        f"{shares[:1].upper()}{shares[1:]} of {_mwh(mix['heat_mwh'])} MWh produced "
        f"{mix['first_on']:%Y-%m-%d} – {mix['last_on']:%Y-%m-%d} (plant data)."
    )
    if mix["emissions_kg_per_mwh"] is None:
        emissions = f"not available: {mix['emissions_missing']}."
    else:
        parts = []
        if mix["electricity_mwh"]:
            basis = conf.get("GRID_EMISSION_BASIS")
            parts.append(
                f"{_mwh(mix['electricity_mwh'])} MWh electricity × {plain(factor)} g CO₂/kWh"
                + (f" ({basis})" if basis else "")
            )
            if mix["electricity_estimated_mwh"]:
                share = mix["electricity_estimated_mwh"] / mix["electricity_mwh"] * 100
                parts.append(
                    f"{share.quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)} % of it "
                    "estimated for unmetered hours"
                )
        if mix["fuel_co2_kg"]:
            tonnes = (mix["fuel_co2_kg"] / 1000).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
            parts.append(f"{tonnes} t CO₂ from fuel")
        emissions = (
            f"{mix['emissions_kg_per_mwh']} kg CO₂ per MWh produced, before network losses "
            f"({'; '.join(parts) or 'no electricity or fuel used'})."
        )
    return {"mix": mix, "text": text, "emissions": emissions}


def _change_percent(this_mwh: Decimal, base: Decimal | None) -> Decimal | None:
    return ((this_mwh - base) / base * 100).quantize(Decimal("0.1")) if base else None


def _billed_root(invoice: Invoice) -> Invoice:
    """The invoice a credit note or correction corrects, down its chain (itself if none)."""
    root = invoice
    while root.original_id is not None and root.kind in (
        Invoice.Kind.CREDIT_NOTE,
        Invoice.Kind.CORRECTION,
    ):
        root = root.original
    return root


def _moved_out(invoice: Invoice, lines) -> dt.date | None:
    """For a settlement of a customer who moved out within the year, and for the credit
    note and correction of one: the first day no longer supplied (the end of its last
    consumption line; the year's first day when it has none, only the instalments'
    credit); else None."""
    if _billed_root(invoice).kind != Invoice.Kind.SETTLEMENT:
        return None
    ends = [line.period_end for line in lines if line.connection_id is not None]
    end = max(ends, default=invoice.period_start)
    return end if end < invoice.period_end else None


def _title(invoice: Invoice, moved_out: dt.date | None) -> str:
    if moved_out is None:
        return invoice.get_kind_display()
    return {
        Invoice.Kind.SETTLEMENT: "Final settlement",
        Invoice.Kind.CORRECTION: "Correction of final settlement",
        Invoice.Kind.CREDIT_NOTE: "Credit note for final settlement",
    }.get(invoice.kind, invoice.get_kind_display())


def _correction_of_credit(invoice: Invoice) -> Invoice | None:
    """For a credit note from re-rating: the correction invoice issued with it."""
    if invoice.kind != Invoice.Kind.CREDIT_NOTE or invoice.original_id is None:
        return None
    return (
        Invoice.objects.filter(
            original_id=invoice.original_id,
            kind=Invoice.Kind.CORRECTION,
            number__isnull=False,
            pk__gt=invoice.pk,
        )
        .order_by("pk")
        .first()
    )


def _settled(invoice: Invoice) -> dict | None:
    """What of a bill is already settled when the PDF is rendered (allocated credit notes
    and payments, each with its reference) and what is still to pay; None when nothing
    is settled (the total is what there is to pay) or for a credit."""
    if invoice.gross <= 0 or invoice.paid <= 0:
        return None
    rows = []
    for allocation in (
        Allocation.objects.filter(invoice=invoice)
        .select_related("credit_note", "payment")
        .order_by("allocated_on", "pk")
    ):
        if allocation.credit_note_id is not None:
            note = allocation.credit_note
            label = (
                f"Settled by {note.get_kind_display().lower()} {note.display_number} "
                f"of {allocation.allocated_on:%Y-%m-%d}"
            )
            if note.kind == Invoice.Kind.CREDIT_NOTE and note.original_id is not None:
                label += f" (reverses invoice {note.original.display_number})"
        else:
            payment = allocation.payment
            label = f"Payment received {payment.received_on:%Y-%m-%d}"
            if payment.reference:
                label += f", reference {payment.reference}"
        rows.append({"label": label, "amount": allocation.amount})
    return {"rows": rows, "paid": invoice.paid, "open": invoice.gross - invoice.paid}


def _credit_use(invoice: Invoice) -> dict | None:
    """For a credit note: the invoices its credit settled, what was paid back, and what
    is left on the account as credit, as the PDF is rendered."""
    if invoice.gross >= 0:  # credit notes, and settlements in the customer's favour
        return None
    rows = [
        {
            "label": f"Settles invoice {a.invoice.display_number}",
            "amount": a.amount,
        }
        for a in Allocation.objects.filter(credit_note=invoice)
        .select_related("invoice")
        .order_by("allocated_on", "pk")
    ]
    rows += [
        {"label": f"Paid back to you on {part.refund.paid_on:%Y-%m-%d}", "amount": part.amount}
        for part in RefundPart.objects.filter(credit_note=invoice)
        .select_related("refund")
        .order_by("pk")
    ]
    return {"rows": rows, "left": invoice.paid - invoice.gross}


def css_string(text: str) -> str:
    """``text`` as the inside of a CSS string (``content: "…"``): quotes, backslashes,
    line breaks and ``<`` escaped as CSS escapes.  In a ``<style>`` element HTML escaping
    does not apply: "A &amp; B" would print as such."""
    out = []
    for char in text:
        if char in "\"\\<>&'" or ord(char) < 32:
            out.append(f"\\{ord(char):x} ")
        else:
            out.append(char)
    return mark_safe("".join(out))  # safe: every character that could end the string is escaped


def _instalments_credited(invoice: Invoice, lines) -> list[dict]:
    """For a settlement (or its correction) that credits the year's instalments: those
    instalments, with what is still open on each (the customer pays that separately)."""
    if invoice.kind == Invoice.Kind.INSTALMENT or not any(
        line.component == "on_account" and line.amount < 0 for line in lines
    ):
        return []
    instalments = (
        Invoice.objects.filter(
            account_id=invoice.account_id,
            kind=Invoice.Kind.INSTALMENT,
            number__isnull=False,
            period_start__gte=invoice.period_start,
            period_start__lt=invoice.period_end,
        )
        # as the settlement counted them (billing.services.aconto._instalments_invoiced)
        .not_credited()
        .order_by("period_start", "number")
    )
    return [
        {"number": i.display_number, "period_start": i.period_start, "open": i.gross - i.paid}
        for i in instalments
    ]


def _instalment_last_year(invoice: Invoice) -> dict | None:
    """For an instalment: last year's consumption as the plan knows it (the year's MWh),
    and the share of it this instalment stands for (1/n, n instalments a year: the same
    share its estimate is of the plan's estimate).  The plan is named in the invoice's
    determinants; the instalment's comparison carries no last-year figure."""
    from billing.models import InstalmentPlan

    if invoice.kind != Invoice.Kind.INSTALMENT:
        return None
    segments = invoice.determinants.get("segments") or []
    plan_ids = [s.get("plan_id") for s in segments if isinstance(s, dict) and s.get("plan_id")]
    plan = InstalmentPlan.objects.filter(pk__in=plan_ids).first() if plan_ids else None
    if plan is None:
        return None
    n = 12 if plan.frequency == InstalmentPlan.Frequency.MONTHLY else 4
    year_mwh = plan.last_year_mwh
    parts = plan.connections or []
    # a plan kept per connection: last year of the connections this instalment bills
    held = {c for s in segments if isinstance(s, dict) for c in s.get("connections") or ()}
    if parts and held:
        parts = [p for p in parts if p["connection_id"] in held]
        year_mwh = sum((Decimal(p["last_year_mwh"]) for p in parts), Decimal("0"))
    return {
        "share_mwh": (year_mwh / n).quantize(Decimal("0.001")),
        "year_mwh": year_mwh,
        "n": n,
        # on an estimated register (a plan made before this was recorded: not known)
        "estimated": any(p.get("last_year_estimated") for p in parts),
    }


def _on_basis(lines, *, includes_vat: bool) -> Decimal:
    """The lines' amounts excl. VAT, or incl. each line's VAT rate (unrounded)."""
    return sum(
        (line.amount * (1 + line.vat_rate) if includes_vat else line.amount for line in lines),
        Decimal("0"),
    )


def energy_lines_mwh(lines) -> tuple[list, Decimal]:
    """The energy lines and their quantity in MWh: a tariff prices energy per MWh, GJ or
    kWh (DOMAIN.md §4), while the cap and the average price are per MWh (1 GJ = 1/3.6
    MWh, as the cap's approval check converts a price per GJ)."""
    from tariffs.units import ENERGY_UNITS

    energy = [ln for ln in lines if ln.kind == "energy" and ln.unit in ENERGY_UNITS]
    mwh = sum(
        (
            ln.quantity * ENERGY_UNITS[ln.unit].numerator / ENERGY_UNITS[ln.unit].denominator
            for ln in energy
        ),
        Decimal("0"),
    )
    return energy, mwh


def _latest_segments(lines) -> list:
    """Each connection's lines of its last segment (the prices in force at the end)."""
    last: dict[int, dt.date] = {}
    for line in lines:
        if line.connection_id is not None and line.period_start is not None:
            last[line.connection_id] = max(
                line.period_start, last.get(line.connection_id, line.period_start)
            )
    return [
        [ln for ln in lines if ln.connection_id == cid and ln.period_start == start]
        for cid, start in sorted(last.items())
    ]


def cap_comparison(*, cap: dict, invoice: Invoice, lines, this_mwh: Decimal) -> list[dict]:
    """The bill's prices beside each limit of the cap, on the cap's VAT basis (DOMAIN.md §5:
    NL's maximum includes VAT; the other methods exclude it): energy per MWh (the bill's
    average), fixed charges per connection and year, capacity per kW and area per m² (the
    highest band billed), and for a benchmark cap the reference customer's yearly bill
    under the customer's tariff and the customer's own bill per MWh."""
    from heatutility.money import quantize_money
    from tariffs.units import POWER_UNITS

    currency, incl = invoice.currency, cap["includes_vat"]

    def money(value: Decimal) -> Decimal:
        return quantize_money(value, currency)

    def row(label: str, unit: str, limit: Decimal, yours: Decimal, yours_net: Decimal) -> dict:
        return {
            "label": label,
            "unit": unit,
            "cap": limit,
            "yours": yours,
            "yours_net": yours_net if incl else None,
            "above": yours - limit if yours > limit else None,
        }

    rows = []
    energy, qty = energy_lines_mwh(lines)
    if cap["energy_cap_per_mwh"] is not None and qty > 0:
        rows.append(
            row(
                "Energy price (average of this bill)",
                f"{currency}/MWh",
                cap["energy_cap_per_mwh"],
                money(_on_basis(energy, includes_vat=incl) / qty),
                money(_on_basis(energy, includes_vat=False) / qty),
            )
        )
    segments = _latest_segments(lines)
    if cap["fixed_cap_per_year"] is not None:
        # per connection: its fixed charges and band fees a year (the lines priced per year)
        fixed = [
            (
                sum((money(ln.unit_price * (1 + ln.vat_rate)) for ln in annual), Decimal("0")),
                sum((money(ln.unit_price) for ln in annual), Decimal("0")),
            )
            for annual in ([ln for ln in seg if ln.unit == "year"] for seg in segments)
            if annual
        ]
        if fixed:
            gross, net = max(fixed)
            rows.append(
                row(
                    "Fixed charges per connection and year",
                    f"{currency}/year",
                    cap["fixed_cap_per_year"],
                    gross if incl else net,
                    net,
                )
            )
    for key, kind, label, unit in (
        ("capacity_cap_per_kw", "capacity", "Capacity price per kW and year", "/kW/year"),
        ("area_cap_per_m2", "area", "Area price per m² and year", "/m²/year"),
    ):
        if cap[key] is None:
            continue
        prices = []
        for seg in segments:
            for ln in seg:
                if ln.kind != kind or ln.unit == "year":
                    continue
                if kind == "capacity":
                    factor = POWER_UNITS.get(ln.unit)
                    if factor is None:
                        continue  # l/h needs the design ΔT: checked at tariff approval
                    net = ln.unit_price * factor.denominator / factor.numerator
                else:
                    net = ln.unit_price
                prices.append((money(net * (1 + ln.vat_rate) if incl else net), money(net)))
        if prices:
            yours, net = max(prices)
            rows.append(row(label, f"{currency}{unit}", cap[key], yours, net))
    reference = cap.get("reference")
    if cap["reference_total_cap"] is not None and reference is not None:
        bill = _reference_bill(cap=cap, lines=lines, invoice=invoice)
        if bill is not None:
            rows.append(
                row(
                    "The reference home's yearly bill under your tariff",
                    f"{currency}/year",
                    cap["reference_total_cap"],
                    bill[0 if incl else 1],
                    bill[1],
                )
            )
        billed = [ln for ln in lines if ln.component != "on_account"] or lines
        if reference["total_per_mwh"] is not None and this_mwh > 0:
            rows.append(
                row(
                    "Your bill per MWh (all charges of this bill)",
                    f"{currency}/MWh",
                    reference["total_per_mwh"],
                    money(_on_basis(billed, includes_vat=incl) / this_mwh),
                    money(_on_basis(billed, includes_vat=False) / this_mwh),
                )
            )
    return rows


def _reference_bill(*, cap: dict, lines, invoice: Invoice) -> tuple[Decimal, Decimal] | None:
    """(gross, net) a year of the cap's reference customer under the tariff version this
    bill used last, rated as the approval check rates it."""
    from tariffs.models import TariffVersion
    from tariffs.rating import Determinants, rate, totals
    from tariffs.selectors import tariff_spec_for_version

    dated = [
        (ln.period_start or invoice.period_start, ln.tariff_version_id)
        for ln in lines
        if ln.tariff_version_id
    ]
    version_id = max(dated)[1] if dated else max(invoice.tariff_version_ids or [0])
    version = TariffVersion.objects.select_related("tariff__network").filter(pk=version_id).first()
    if version is None:
        return None
    ref = cap["reference"]
    determinants = Determinants(
        period_start=cap["period_start"],
        period_end=cap["period_end"],
        energy_mwh=ref["energy_mwh"],
        volume_m3=ref["volume_m3"],
        return_temp_c=None,
        flow_temp_c=None,
        contracted_kw=ref["contracted_kw"],
        heated_area_m2=ref["heated_area_m2"],
    )
    spec = tariff_spec_for_version(version, currency=invoice.currency)
    t = totals(rate(determinants=determinants, tariff=spec), invoice.currency)
    return t.gross, t.net


def last_year_estimates(comparison: dict) -> list[dict]:
    """The estimated registers behind the comparison's last-year figure (``billing.calc``
    records them in ``last_year_readings``); none without a figure, and none for a bill
    made before they were recorded (its comparison has no such key).

    An instalment's comparison has neither key, by design: it bills an estimate, not a
    measured period, so there is no same period last year to measure (its figure is
    ``last_year_mwh: null``; its PDF shows 1/n of the plan's last year instead,
    :func:`_instalment_last_year`, marked where the plan's registers were estimated)."""
    if comparison.get("last_year_mwh") is None or not comparison.get("last_year_estimated"):
        return []
    return [
        r
        for r in comparison.get("last_year_readings") or ()
        if isinstance(r, dict) and r.get("status") == "estimated"
    ]


def _mwh3(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)


def blocks_basis(segments) -> list[tuple[tuple, str]]:
    """For each block-priced segment (``billing.calc`` records ``annual_from`` on those
    alone): the segment's key (connection, first day, end, tariff version, as its lines
    carry them) and the sentence that says which consumption chose its blocks, the
    trailing year from ``annual_from`` to the end of the segment's contract interval
    (the latest end among the connection's segments with that ``annual_from``), or that
    without a register then the block limits were scaled to the period (docs/tariffs.md)."""
    block = [
        s for s in segments if isinstance(s, dict) and s.get("annual_from") and s.get("period_end")
    ]
    ends: dict[tuple, str] = {}
    for s in block:
        key = (s.get("connection_id"), s["annual_from"])
        ends[key] = max(ends.get(key, s["period_end"]), s["period_end"])
    out = []
    for s in block:
        start = dt.date.fromisoformat(s["annual_from"])
        end = dt.date.fromisoformat(ends[(s.get("connection_id"), s["annual_from"])])
        annual = s.get("annual_energy_mwh")
        if annual is None:
            text = (
                f"Blocks scaled to this period: no meter reading on {start:%Y-%m-%d}, "
                f"12 months before {end:%Y-%m-%d}, to measure the year by."
            )
        else:
            last_day = end - dt.timedelta(days=1)
            text = (
                f"Blocks by consumption over the 12 months {start:%Y-%m-%d} – "
                f"{last_day:%Y-%m-%d}: {_mwh3(Decimal(annual))} MWh"
            )
        key = (
            s.get("connection_id"),
            s.get("period_start"),
            s["period_end"],
            s.get("tariff_version_id"),
        )
        out.append((key, text))
    return out


def blocks_notes_place(lines, segments) -> list[str]:
    """Put each block-priced segment's sentence (:func:`blocks_basis`) on the last energy
    line of that segment (``line.blocks_note``, printed under it); the sentences of
    segments without such a line, to print after the table."""
    left = []
    for (cid, start, end, version), text in blocks_basis(segments):
        mine = [
            ln
            for ln in lines
            if ln.kind == "energy"
            and ln.connection_id == cid
            and ln.period_start is not None
            and ln.period_end is not None
            and ln.period_start.isoformat() == start
            and ln.period_end.isoformat() == end
            and ln.tariff_version_id == version
        ]
        if mine:
            mine[-1].blocks_note = text
        elif text not in left:
            left.append(text)
    return left


def invoice_context(*, invoice: Invoice) -> dict:
    from tariffs.selectors import price_cap_summary

    account = invoice.account
    lines = list(invoice.lines.all())
    for line in lines:
        line.quantity_text, line.unit_price_text = line_columns(line, invoice.currency)
        line.blocks_note = None
    blocks_left = blocks_notes_place(lines, invoice.determinants.get("segments") or [])
    moved_out = _moved_out(invoice, lines)
    period_end = moved_out or invoice.period_end
    days = (period_end - invoice.period_start).days
    this_mwh = Decimal(invoice.comparison.get("energy_mwh") or "0")
    last = invoice.comparison.get("last_year_mwh")
    last_estimates = last_year_estimates(invoice.comparison)
    plan_last_year = _instalment_last_year(invoice) if last is None else None
    if last is not None:
        last_mwh = Decimal(last)
    else:
        last_mwh = plan_last_year["share_mwh"] if plan_last_year else None
    # over the days supplied (a final settlement's fewer); an instalment's share of last
    # year is not that period's consumption, and its estimate is climate-corrected already
    weather = weather_comparison(
        network_id=invoice.network_id,
        start=invoice.period_start,
        end=period_end,
        last_mwh=None if plan_last_year else last_mwh,
    )
    last_corrected = weather["last_corrected_mwh"] if weather else None
    network = invoice.network
    reference = reference_comparison(
        network_id=invoice.network_id,
        dd_normal=network.normal_degree_days,
        start=invoice.period_start,
        end=period_end,
    )
    cap = price_cap_summary(network_id=invoice.network_id, on=invoice.period_start)
    energy_lines, qty = energy_lines_mwh(lines)
    avg_energy_price = None
    if energy_lines and qty:
        avg_energy_price = (
            sum((line.amount for line in energy_lines), Decimal("0")) / qty
        ).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)  # half up, as the PDF says
    return {
        "invoice": invoice,
        # the local date of the network's time zone, not of the server's TIME_ZONE
        "issued_on": invoice.issued_at.astimezone(ZoneInfo(network.time_zone)).date()
        if invoice.issued_at
        else None,
        "account": account,
        "customer": account.customer,
        "lines": lines,
        "vat": [
            {**v, "percent": f"{(Decimal(str(v['rate'])) * 100).normalize():f}"}
            for v in invoice.determinants.get("vat", [])
        ],
        "readings": invoice.readings,
        "days": days,
        "period_last_day": period_end - dt.timedelta(days=1),
        "moved_out": moved_out,
        "this_mwh": this_mwh,
        "last_mwh": last_mwh,
        "last_estimates": last_estimates,
        "plan_last_year": plan_last_year,
        "change_percent": _change_percent(this_mwh, last_mwh),
        "weather": weather,
        "weather_change_percent": _change_percent(this_mwh, last_corrected),
        "reference": reference["rows"],
        "reference_note": reference["note"],
        "chart": comparison_svg(
            this_mwh=this_mwh,
            last_mwh=last_mwh,
            reference_mwh=reference["rows"][0][1],
            last_corrected_mwh=last_corrected,
            last_estimated=bool(last_estimates)
            or bool(plan_last_year and plan_last_year["estimated"]),
            last_label=f"Last year (1/{plan_last_year['n']})"
            if plan_last_year
            else "Same period last year",
            this_label="Estimate (on-account)"
            if invoice.kind == Invoice.Kind.INSTALMENT
            else "This period",
        ),
        "cap": cap,
        "cap_rows": cap_comparison(cap=cap, invoice=invoice, lines=lines, this_mwh=this_mwh)
        if cap
        else [],
        "avg_energy_price": avg_energy_price,
        "blocks_left": blocks_left,
        "settled": _settled(invoice),
        "credit_use": _credit_use(invoice),
        "instalments_credited": _instalments_credited(invoice, lines),
        "utility_name": settings.HEATUTILITY.get("UTILITY_NAME", ""),
        # the same inside the stylesheet's page footer, a CSS string (no HTML escaping)
        "utility_name_css": css_string(settings.HEATUTILITY.get("UTILITY_NAME", "")),
        "complaints": settings.HEATUTILITY.get("COMPLAINTS_CONTACT", ""),
        "fuel_mix": fuel_mix(
            network_id=invoice.network_id,
            time_zone=network.time_zone,
            period_end=invoice.period_end,
        ),
        "title": _title(invoice, moved_out),
        "correction": _correction_of_credit(invoice),
    }


def invoice_pdf_bytes(*, invoice: Invoice) -> bytes:
    from weasyprint import HTML

    html = render_to_string("billing/invoice.html", invoice_context(invoice=invoice))
    return HTML(string=html, base_url=str(settings.BASE_DIR)).write_pdf()


def pdf_store_once(*, document, path: str, data: bytes) -> str:
    """Store ``data`` as ``document``'s PDF unless another renderer stored one first.

    Two renderers of one document (a task and its redelivery, the admin action) both
    save a file; only the first name reaches the row, and the other's file, which nothing
    would ever refer to, is removed.  Returns the stored name and sets it on ``document``.
    """
    saved = default_storage.save(path, ContentFile(data))
    rows = type(document).objects.filter(pk=document.pk)
    rows.filter(pdf="").update(pdf=saved)
    name = rows.values_list("pdf", flat=True).get()
    if name != saved:
        default_storage.delete(saved)
    document.pdf.name = name
    return name


def invoice_pdf_render(*, invoice: Invoice) -> str:
    """Render and store the PDF of an issued invoice (idempotent: keeps an existing one;
    two renderers racing keep the first stored, see :func:`pdf_store_once`).

    A reminder fee is refused: its document is its dunning letter, which
    ``billing.reminders.reminder_pdf_render`` makes the fee's PDF too; rendered here it
    came out as an energy bill (consumption, reference users, price cap) for a fee."""
    if invoice.kind == Invoice.Kind.REMINDER_FEE:
        raise UnableToRenderInvoice.refusing(
            f"Cannot render {invoice.display_number} as an invoice",
            [
                ErrorItem(
                    code="reminder_fee",
                    field="kind",
                    message="a reminder fee's PDF is its dunning letter (render the letter)",
                )
            ],
        )
    if invoice.pdf:
        return invoice.pdf.name
    if invoice.number is None:
        raise UnableToRenderInvoice.refusing(
            f"Cannot render draft invoice {invoice.pk}: it is not issued",
            [
                ErrorItem(
                    code="not_issued",
                    field="number",
                    message="only issued (numbered) invoices get a PDF; issue it first",
                )
            ],
        )
    data = invoice_pdf_bytes(invoice=invoice)
    issued = invoice.issued_at or dt.datetime.now(dt.UTC)
    return pdf_store_once(
        document=invoice, path=f"invoices/{issued:%Y/%m}/{invoice.display_number}.pdf", data=data
    )
