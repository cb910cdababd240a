"""The billing run's hot-path shortcuts give exactly what the plain code gives."""

from __future__ import annotations

import datetime as dt
import gc
from dataclasses import dataclass
from decimal import Decimal

from billing.calc import _iso, _minor, _new_determinants
from heatutility.money import minor_unit
from tariffs.rating import Determinants

D = Decimal


def _values(**over):
    values = {
        "period_start": dt.date(2026, 11, 1),
        "period_end": dt.date(2026, 12, 1),
        "energy_mwh": D("2.191090"),
        "volume_m3": D("57.6602"),
        "return_temp_c": D("36.00"),
        "flow_temp_c": None,
        "contracted_kw": D("9.00"),
        "heated_area_m2": D("81.00"),
        "annual_energy_mwh": None,
        "energy_by_month": None,
    }
    values.update(over)
    return values


def test_new_determinants_equals_the_dataclass_constructor():
    made = _new_determinants(Determinants, **_values())
    plain = Determinants(**_values())
    assert type(made) is Determinants
    assert made == plain
    assert hash(made) == hash(plain)
    assert repr(made) == repr(plain)


def test_new_determinants_falls_back_to_the_constructor_for_other_types():
    @dataclass(frozen=True)
    class Checked:
        period_start: dt.date
        period_end: dt.date
        energy_mwh: Decimal
        volume_m3: Decimal
        return_temp_c: Decimal | None
        flow_temp_c: Decimal | None
        contracted_kw: Decimal
        heated_area_m2: Decimal
        annual_energy_mwh: Decimal | None = None
        energy_by_month: tuple | None = None

        def __post_init__(self):
            if self.energy_mwh < 0:
                raise ValueError("negative")

    assert _new_determinants(Checked, **_values()) == Checked(**_values())
    try:
        _new_determinants(Checked, **_values(energy_mwh=D("-1")))
    except ValueError:
        pass
    else:  # pragma: no cover
        raise AssertionError("__post_init__ was skipped")


def test_cached_minor_unit_and_iso_dates():
    assert _minor("DKK") == minor_unit("DKK") == D("0.01")
    assert _minor("ISK") == D("1")
    assert _iso(dt.date(2026, 2, 28)) == "2026-02-28"


def test_worker_warm_imports_the_chunk_path_and_freezes_the_heap():
    import sys

    from billing.tasks import _CHUNK_MODULES, _worker_warm

    try:
        _worker_warm()
        assert all(m in sys.modules for m in _CHUNK_MODULES)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
