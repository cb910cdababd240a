"""Heat-pump coefficient of performance: measured, Carnot and Lorenz (DOMAIN.md §6).

Pure functions over floats / numpy arrays (temperatures are measurements, not money): a COP
is physics and stays float; the energy priced on it (``Q / COP``) is rounded to 1 Wh as a
``Decimal`` in ``tariffs.costs`` before any money is computed.

* measured COP = heat delivered / electricity used, where both are metered;
* Carnot ``T_sink / (T_sink − T_source)`` in kelvin;
* Lorenz: log-mean temperatures ``T̄ = (T_in − T_out) / ln(T_in / T_out)`` of the sink
  (return → supply) and the source (inlet → outlet), ``COP_L = T̄_sink / (T̄_sink − T̄_source)``,
  real COP = η · COP_L (Reinholdt et al. 2018; η ≈ 0.5–0.6 for large units);
* seasonal COP over a period is energy-weighted, ``ΣQ / ΣE``, never the mean of hourly COPs.
"""

from __future__ import annotations

import numpy as np

KELVIN = 273.15


def log_mean_temperature_k(t_in_c, t_out_c):
    """Log-mean (thermodynamic mean) temperature in kelvin of a stream from t_in to t_out."""
    t_in = np.asarray(t_in_c, dtype="float64") + KELVIN
    t_out = np.asarray(t_out_c, dtype="float64") + KELVIN
    with np.errstate(divide="ignore", invalid="ignore"):
        lm = (t_in - t_out) / np.log(t_in / t_out)
    result = np.where(np.isclose(t_in, t_out), (t_in + t_out) / 2, lm)
    return float(result) if result.ndim == 0 else result


def carnot_cop(*, sink_c, source_c):
    sink = np.asarray(sink_c, dtype="float64") + KELVIN
    source = np.asarray(source_c, dtype="float64") + KELVIN
    result = sink / (sink - source)
    return float(result) if result.ndim == 0 else result


def lorenz_cop(*, sink_in_c, sink_out_c, source_in_c, source_out_c):
    """Ideal Lorenz COP (vectorised); NaN where the sink is not above the source."""
    sink = log_mean_temperature_k(sink_in_c, sink_out_c)
    source = log_mean_temperature_k(source_in_c, source_out_c)
    sink_a = np.asarray(sink)
    source_a = np.asarray(source)
    with np.errstate(divide="ignore", invalid="ignore"):
        result = np.where(sink_a > source_a, sink_a / (sink_a - source_a), np.nan)
    return float(result) if result.ndim == 0 else result


def modelled_cop(*, efficiency: float, sink_in_c, sink_out_c, source_in_c, source_out_c):
    """Real COP modelled as Lorenz efficiency × Lorenz COP."""
    return float(efficiency) * lorenz_cop(
        sink_in_c=sink_in_c,
        sink_out_c=sink_out_c,
        source_in_c=source_in_c,
        source_out_c=source_out_c,
    )


def measured_cop(heat_mwh, electricity_mwh):
    """Heat / electricity per hour; NaN where electricity is missing or zero."""
    heat = np.asarray(heat_mwh, dtype="float64")
    elec = np.asarray(electricity_mwh, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(elec > 0, heat / elec, np.nan)


def seasonal_cop(heat_mwh, electricity_mwh) -> float | None:
    """Energy-weighted COP over a period: ΣQ / ΣE (hours with both values only)."""
    heat = np.asarray(heat_mwh, dtype="float64")
    elec = np.asarray(electricity_mwh, dtype="float64")
    mask = ~np.isnan(heat) & ~np.isnan(elec)
    total_e = elec[mask].sum()
    if total_e <= 0:
        return None
    return float(heat[mask].sum() / total_e)
