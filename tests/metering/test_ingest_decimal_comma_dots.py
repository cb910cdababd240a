"""A dot in a decimal-comma file is a thousands separator only where it groups digits.

``12.346,0`` was stored as 12346 (the dot read as a thousands separator) and ``12.345``
as 12.345 (the dot read as a decimal point): a silent factor of 1000 between two values
of one file.  Now a dot counts only in a well-formed group position before the comma
(``1.234,5``, ``1.234.567,0``), and a value with a dot and no comma, which a reader
cannot tell apart from a decimal point (the vendor settings have no thousands-separator
switch), is refused ``ambiguous_number`` with how to write it.  The same on every path.
"""

from decimal import Decimal

import pytest

from metering.models import Reading
from tests.metering.factories import HeatMeterFactory
from tests.metering.factories_readings import MeterVendorFactory, ingest_file

pytestmark = pytest.mark.django_db


def _vendor():
    return MeterVendorFactory(
        csv_columns={},
        csv_separator=";",
        csv_decimal_comma=True,
        csv_energy_unit="kWh",
        csv_time_zone="UTC",
    )


def _text(serial, energies, temp="70,5"):
    lines = ["meter;read_at;energy;volume_m3;flow_temp_c"]
    for hour, energy in enumerate(energies):
        lines.append(f"{serial};2026-11-01T{hour:02d}:00:00Z;{energy};1;{temp}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("path", ["fast", "python"])
@pytest.mark.parametrize(
    ("energy", "kwh"),
    [
        ("1.234,5", "1234.5"),
        ("12.346,0", "12346"),
        ("1.234.567,25", "1234567.25"),
        (" 1.234,5 ", "1234.5"),
        ("12345,678", "12345.678"),
        ("12345", "12345"),
    ],
)
def test_well_formed_values_are_read(energy, kwh, path, monkeypatch, caplog):
    caplog.set_level("INFO", logger="metering.ingest.fastcsv")
    vendor = _vendor()
    meter = HeatMeterFactory(vendor=vendor)
    batch = ingest_file(vendor, _text(meter.serial, [energy]), path=path, monkeypatch=monkeypatch)
    assert (batch.state, batch.accepted, batch.errors) == ("done", 1, [])
    assert Reading.objects.get(meter=meter).energy_kwh == Decimal(kwh)
    assert "declined" not in caplog.text  # PostgreSQL's fast path reads them itself


@pytest.mark.parametrize("path", ["fast", "python"])
@pytest.mark.parametrize("energy", ["12.345", "1.234", "1.5", "12.34,5", "1.2345,0", "1,234.5"])
def test_a_dot_that_is_not_a_thousands_group_is_refused(energy, path, monkeypatch):
    vendor = _vendor()
    meter = HeatMeterFactory(vendor=vendor)
    text = _text(meter.serial, ["100,5", energy])
    batch = ingest_file(vendor, text, path=path, monkeypatch=monkeypatch)
    assert batch.state == "failed"
    assert [(e["row"], e["field"], e["code"]) for e in batch.errors] == [
        (1, "energy", "ambiguous_number")
    ]
    assert "decimal comma" in batch.errors[0]["message"]
    assert Reading.objects.count() == 0


@pytest.mark.parametrize("path", ["fast", "python"])
def test_an_optional_field_with_a_dot_is_refused_too(path, monkeypatch):
    vendor = _vendor()
    meter = HeatMeterFactory(vendor=vendor)
    batch = ingest_file(
        vendor, _text(meter.serial, ["100,5"], temp="70.5"), path=path, monkeypatch=monkeypatch
    )
    assert [(e["row"], e["field"], e["code"]) for e in batch.errors] == [
        (0, "flow_temp_c", "ambiguous_number")
    ]
    assert Reading.objects.count() == 0
