"""PNG plots rendered by the app (matplotlib, Agg backend) from stored cost series."""

from __future__ import annotations

import io
from decimal import Decimal

import pandas as pd

from heatutility.errors import NotFound

PLOTS = {
    "cop": "Hourly COP, measured vs modelled (Lorenz)",
    "electricity_price": "Hourly electricity price (spot + grid + system + tax)",
    "cost_per_mwh": "Daily variable cost per MWh of heat",
}


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.6), dpi=100)
    return plt, fig, ax


def _png(plt, fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def hourly_frame(cost) -> pd.DataFrame:
    frame = pd.read_csv(io.StringIO(cost.hourly_csv))
    frame["hour_start"] = pd.to_datetime(frame["hour_start"], utc=True)
    frame["local"] = frame["hour_start"].dt.tz_convert(cost.network.time_zone)
    return frame


def render_plot(*, cost, kind: str) -> bytes:
    if kind not in PLOTS:
        raise NotFound(f"No plot {kind!r}; choose one of {', '.join(PLOTS)}.")
    frame = hourly_frame(cost)
    plt, fig, ax = _figure()
    cur = cost.network.currency
    if kind == "cop":
        hp = frame[frame["cop_modelled"].notna()]
        for unit, rows in hp.groupby("unit"):
            ax.plot(
                rows["local"], rows["cop_measured"], lw=0.4, alpha=0.7, label=f"{unit} measured"
            )
            ax.plot(
                rows["local"],
                rows["cop_modelled"],
                lw=0.6,
                alpha=0.8,
                label=f"{unit} modelled (Lorenz)",
            )
        ax.set_ylabel("COP")
        ax.legend(loc="upper right", fontsize=8)
    elif kind == "electricity_price":
        prices = frame.drop_duplicates("hour_start").sort_values("hour_start")
        ax.plot(prices["local"], prices["spot"], lw=0.4, label="spot")
        ax.plot(prices["local"], prices["electricity_price"], lw=0.4, label="spot + tariffs + tax")
        ax.axhline(0, color="black", lw=0.5)
        ax.set_ylabel(f"{cur}/MWh")
        ax.legend(loc="upper right", fontsize=8)
    else:
        daily = frame.groupby(frame["local"].dt.date)[["variable_cost", "heat_mwh"]].sum()
        per_mwh = daily["variable_cost"] / daily["heat_mwh"].where(daily["heat_mwh"] > 0)
        ax.plot(
            pd.to_datetime(daily.index), per_mwh, lw=0.8, label="variable cost per MWh produced"
        )
        total = Decimal(str(cost.cost_per_mwh_produced))
        ax.axhline(
            float(total),
            color="tab:red",
            lw=0.8,
            ls="--",
            label=f"total cost {total} {cur}/MWh (period)",
        )
        ax.set_ylabel(f"{cur}/MWh")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_title(
        f"{PLOTS[kind]} — {cost.network.name}, {cost.period_start} to {cost.period_end}",
        fontsize=10,
    )
    return _png(plt, fig)


def render_cap_plot(*, cap) -> bytes:
    """Bar chart: cost per MWh sold (variable/fixed) next to the cap's energy limit."""
    plt, fig, ax = _figure()
    labels, values = [], []
    if cap.operating_cost_id:
        f = cap.operating_cost.results["figures"]
        sold = Decimal(f["heat_sold_mwh"]) or Decimal(1)
        labels += ["variable cost / MWh sold", "fixed cost / MWh sold"]
        values += [
            float(Decimal(f["variable_cost"]) / sold),
            float(Decimal(f["fixed_cost"]) / sold),
        ]
    if cap.energy_cap_per_mwh is not None:
        labels.append("energy price cap / MWh")
        values.append(float(cap.energy_cap_per_mwh))
    ax.bar(labels, values, color=["tab:blue", "tab:orange", "tab:red"][: len(values)])
    ax.set_ylabel(f"{cap.currency}/MWh")
    ax.set_title(
        f"{cap.get_method_display()} cap, {cap.period_start} to {cap.period_end}", fontsize=10
    )
    return _png(plt, fig)
