"""Invoice PDFs (WeasyPrint): every line explained, readings used, last year, price cap.

The document carries the billing information EED Art. 17 / Annex IX and Commission
Recommendation (EU) 2019/1660 ask for (DOMAIN.md §7): actual prices and consumption,
consumption against the same period last year in graphic form, a comparison with a
normalised reference user, taxes (VAT per rate), fuel mix and emissions, and where to
complain.

Last year's consumption is also shown climate-corrected to this period's weather (the
heating share scaled by this period's degree days over last year's, as in the on-account
estimate), so that the change shown is the customer's own and not the winter's.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.template.loader import render_to_string

from billing.calc import climate_corrected, one_year_earlier
from billing.models import Invoice

# WeasyPrint logs every layout step at INFO; one line per invoice is noise in a run.
logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)

# Reference customers of the Danish regulator (DOMAIN.md §7), MWh per year.
REFERENCE_USERS = (
    ("House, 130 m²", Decimal("18.1")),
    ("Flat, 75 m²", Decimal("15.0")),
)
DEFAULT_FUEL_MIX = (
    "Heat from large heat pumps on seawater and waste heat (about 90 %), electric peak "
    "boilers (about 10 %). Emissions depend on the electricity used; see the utility's "
    "annual environmental declaration."
)


def comparison_svg(
    *,
    this_mwh: Decimal,
    last_mwh: Decimal | None,
    reference_mwh: Decimal,
    last_corrected_mwh: Decimal | None = None,
    this_label: str = "This period",
) -> str:
    """A small bar chart (inline SVG): this period, same period last year (and, where
    degree days are known, last year in this period's weather), reference user."""
    bars = [
        (this_label, this_mwh, "#c0392b"),
        ("Same period last year", last_mwh, "#7f8c8d"),
    ]
    if last_corrected_mwh is not None:
        bars.append(("Last year, this weather", last_corrected_mwh, "#b3b6b7"))
    bars.append(("Reference house", reference_mwh, "#2980b9"))
    top = max([v for _, v, _ in bars if v is not None] + [Decimal("0.001")])
    height = 14 + len(bars) * 32
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="420" height="{height}" font-size="9">'
    ]
    for index, (label, value, colour) in enumerate(bars):
        y = 8 + index * 32
        width = 0 if value is None else float(value / top) * 200
        parts.append(f'<text x="0" y="{y + 13}">{label}</text>')
        parts.append(f'<rect x="125" y="{y}" width="{width:.1f}" height="18" fill="{colour}"/>')
        text = "no data" if value is None else f"{value:.3f} MWh"
        parts.append(f'<text x="{130 + width:.1f}" y="{y + 13}">{text}</text>')
    parts.append("</svg>")
    return "".join(parts)


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


def _change_percent(this_mwh: Decimal, base: Decimal | None) -> Decimal | None:
    return ((this_mwh - base) / base * 100).quantize(Decimal("0.1")) if base else None


def _moved_out(invoice: Invoice, lines) -> dt.date | None:
    """For a settlement of a customer who moved out within the year: the first day no
    longer supplied (the end of its last consumption line); else None."""
    if invoice.kind != Invoice.Kind.SETTLEMENT:
        return None
    ends = [line.period_end for line in lines if line.connection_id is not None]
    end = max(ends, default=None)
    return end if end is not None and end < invoice.period_end else None


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


def invoice_context(*, invoice: Invoice) -> dict:
    from tariffs.selectors import price_cap_summary

    account = invoice.account
    lines = list(invoice.lines.all())
    for line in lines:
        line.unit_price_text = unit_price_text(line.unit_price)
    moved_out = _moved_out(invoice, lines)
    period_end = moved_out or invoice.period_end
    days = (period_end - invoice.period_start).days
    this_mwh = Decimal(invoice.comparison.get("energy_mwh") or "0")
    last = invoice.comparison.get("last_year_mwh")
    last_mwh = Decimal(last) if last is not None else None
    weather = weather_comparison(  # over the days supplied (a final settlement's fewer)
        network_id=invoice.network_id, start=invoice.period_start, end=period_end, last_mwh=last_mwh
    )
    last_corrected = weather["last_corrected_mwh"] if weather else None
    reference = [
        (label, (annual * days / Decimal(365)).quantize(Decimal("0.001")))
        for label, annual in REFERENCE_USERS
    ]
    cap = price_cap_summary(network_id=invoice.network_id, on=invoice.period_start)
    energy_lines = [line for line in lines if line.kind == "energy" and line.unit == "MWh"]
    avg_energy_price = None
    if energy_lines:
        qty = sum((line.quantity for line in energy_lines), Decimal("0"))
        if qty:
            avg_energy_price = (
                sum((line.amount for line in energy_lines), Decimal("0")) / qty
            ).quantize(Decimal("0.01"))
    return {
        "invoice": invoice,
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
        "change_percent": _change_percent(this_mwh, last_mwh),
        "weather": weather,
        "weather_change_percent": _change_percent(this_mwh, last_corrected),
        "reference": reference,
        "chart": comparison_svg(
            this_mwh=this_mwh,
            last_mwh=last_mwh,
            reference_mwh=reference[0][1],
            last_corrected_mwh=last_corrected,
            this_label="Estimate (on-account)"
            if invoice.kind == Invoice.Kind.INSTALMENT
            else "This period",
        ),
        "cap": cap,
        "avg_energy_price": avg_energy_price,
        "utility_name": settings.HEATUTILITY.get("UTILITY_NAME", ""),
        "complaints": settings.HEATUTILITY.get("COMPLAINTS_CONTACT", ""),
        "fuel_mix": getattr(settings, "BILLING", {}).get("FUEL_MIX", DEFAULT_FUEL_MIX),
        "title": "Final settlement" if moved_out else invoice.get_kind_display(),
        "correction": _correction_of_credit(invoice),
    }


def invoice_pdf_bytes(*, invoice: Invoice) -> bytes:
    from weasyprint import HTML

    html = render_to_string("billing/invoice.html", invoice_context(invoice=invoice))
    return HTML(string=html, base_url=str(settings.BASE_DIR)).write_pdf()


def invoice_pdf_render(*, invoice: Invoice) -> str:
    """Render and store the PDF of an issued invoice (idempotent: keeps an existing one)."""
    if invoice.pdf:
        return invoice.pdf.name
    if invoice.number is None:
        raise ValueError("only issued invoices get a PDF")
    data = invoice_pdf_bytes(invoice=invoice)
    issued = invoice.issued_at or dt.datetime.now(dt.UTC)
    name = default_storage.save(
        f"invoices/{issued:%Y/%m}/{invoice.display_number}.pdf", ContentFile(data)
    )
    Invoice.objects.filter(pk=invoice.pk, pdf="").update(pdf=name)
    return name
