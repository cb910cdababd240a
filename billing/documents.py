"""Invoice PDFs (WeasyPrint): every line explained, readings used, last year, price cap.

The document carries the billing information EED Art. 17 / Annex IX and Commission
Recommendation (EU) 2019/1660 ask for (DOMAIN.md §7): actual prices and consumption,
consumption against the same period last year in graphic form, a comparison with a
normalised reference user, taxes (VAT per rate), fuel mix and emissions, and where to
complain.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.template.loader import render_to_string

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


def comparison_svg(*, this_mwh: Decimal, last_mwh: Decimal | None, reference_mwh: Decimal) -> str:
    """A small bar chart (inline SVG): this period, same period last year, reference user."""
    bars = [
        ("This period", this_mwh),
        ("Same period last year", last_mwh),
        ("Reference house", reference_mwh),
    ]
    top = max([v for _, v in bars if v is not None] + [Decimal("0.001")])
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="420" height="110" font-size="9">']
    for index, (label, value) in enumerate(bars):
        y = 8 + index * 32
        width = 0 if value is None else float(value / top) * 200
        parts.append(f'<text x="0" y="{y + 13}">{label}</text>')
        parts.append(
            f'<rect x="115" y="{y}" width="{width:.1f}" height="18" fill="{["#c0392b", "#7f8c8d", "#2980b9"][index]}"/>'
        )
        text = "no data" if value is None else f"{value:.3f} MWh"
        parts.append(f'<text x="{120 + width:.1f}" y="{y + 13}">{text}</text>')
    parts.append("</svg>")
    return "".join(parts)


def invoice_context(*, invoice: Invoice) -> dict:
    from tariffs.selectors import price_cap_summary

    account = invoice.account
    lines = list(invoice.lines.all())
    days = (invoice.period_end - invoice.period_start).days
    this_mwh = Decimal(invoice.comparison.get("energy_mwh") or "0")
    last = invoice.comparison.get("last_year_mwh")
    last_mwh = Decimal(last) if last is not None else None
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
        "period_last_day": invoice.period_end - dt.timedelta(days=1),
        "this_mwh": this_mwh,
        "last_mwh": last_mwh,
        "change_percent": (
            ((this_mwh - last_mwh) / last_mwh * 100).quantize(Decimal("0.1")) if last_mwh else None
        ),
        "reference": reference,
        "chart": comparison_svg(
            this_mwh=this_mwh, last_mwh=last_mwh, reference_mwh=reference[0][1]
        ),
        "cap": cap,
        "avg_energy_price": avg_energy_price,
        "utility_name": settings.HEATUTILITY.get("UTILITY_NAME", ""),
        "complaints": settings.HEATUTILITY.get("COMPLAINTS_CONTACT", ""),
        "fuel_mix": getattr(settings, "BILLING", {}).get("FUEL_MIX", DEFAULT_FUEL_MIX),
        "title": invoice.get_kind_display(),
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
