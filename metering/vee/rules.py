"""VEE validation rules: pure functions over one meter's readings (no ORM, no clock).

Each rule has a reason code and a severity: ``error`` rejects the reading, ``warning``
makes it suspect (both land in the staff exception queue), ``info`` is recorded only
(rollovers, gaps).  Rollover findings are kept as accepted markers: boundary-register
estimation counts them instead of re-reading a meter's whole history.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Read:
    read_at: dt.datetime
    energy_kwh: Decimal
    volume_m3: Decimal
    flow_temp_c: Decimal | None = None
    return_temp_c: Decimal | None = None
    power_kw: Decimal | None = None
    flow_m3h: Decimal | None = None
    status_code: int | None = None
    status: str = "valid"


@dataclass(frozen=True)
class Finding:
    read_at: dt.datetime
    code: str
    severity: str  # info | warning | error
    message: str


@dataclass(frozen=True)
class Rule:
    code: str
    severity: str
    description: str


RULES = {
    r.code: r
    for r in (
        Rule("register_decrease", "error", "Energy or volume register went down (not a rollover)."),
        Rule("rollover", "info", "Energy register rolled over at its maximum."),
        Rule("volume_rollover", "info", "Volume register rolled over at its maximum."),
        Rule(
            "consumption_above_capacity",
            "warning",
            "Average power between reads above 1.5 × contracted kW.",
        ),
        Rule("return_above_flow", "warning", "Return temperature at or above flow temperature."),
        Rule(
            "temperature_out_of_range",
            "warning",
            "Flow outside 20–130 °C or return outside 5–100 °C.",
        ),
        Rule(
            "power_inconsistent",
            "warning",
            "Reported power/flow far from the energy/volume deltas.",
        ),
        Rule("future_timestamp", "error", "Reading time lies in the future."),
        Rule("outside_installation", "error", "Meter was not installed at the reading time."),
        Rule("fault_status", "warning", "Meter status code signals a fault."),
        Rule(
            "gap",
            "info",
            "Interval before this reading much longer than the meter's usual cadence.",
        ),
    )
}

CAPACITY_FACTOR = Decimal("1.5")
FLOW_RANGE = (Decimal(20), Decimal(130))
RETURN_RANGE = (Decimal(5), Decimal(100))
ROLLOVER_BAND = Decimal("0.1")
# info findings recorded as accepted markers (never in the exception queue)
ROLLOVER_CODES = ("rollover", "volume_rollover")


def _finding(read: Read, code: str, message: str) -> Finding:
    return Finding(read.read_at, code, RULES[code].severity, message)


def is_rollover(previous: Decimal, current: Decimal, register_max: Decimal) -> bool:
    """A decrease from the top tenth of the register range into the bottom tenth."""
    band = register_max * ROLLOVER_BAND
    return previous >= register_max - band and current <= band


def validate(
    *,
    reads: list[Read],
    previous: Read | None,
    register_max_kwh: Decimal,
    volume_register_max_m3: Decimal,
    contracted_kw: Decimal | None,
    installed: list[tuple[dt.datetime, dt.datetime | None]],
    now: dt.datetime,
) -> list[Finding]:
    """Findings for ``reads`` (sorted by time); ``previous`` is the last read before them."""
    findings: list[Finding] = []
    ordered = sorted(reads, key=lambda r: r.read_at)
    intervals = [(b.read_at - a.read_at).total_seconds() for a, b in itertools.pairwise(ordered)]
    cadence = sorted(intervals)[len(intervals) // 2] if intervals else None
    last = previous if previous is not None and previous.status != "rejected" else None
    for read in ordered:
        if read.read_at > now:
            findings.append(
                _finding(
                    read,
                    "future_timestamp",
                    f"Read at {read.read_at.isoformat()}, after {now.isoformat()}.",
                )
            )
        if not any(
            start <= read.read_at and (end is None or read.read_at < end)
            for start, end in installed
        ):
            findings.append(
                _finding(read, "outside_installation", "The meter was not installed at that time.")
            )
        if read.status_code not in (None, 0):
            findings.append(
                _finding(read, "fault_status", f"Meter status code {read.status_code}.")
            )
        flow, ret = read.flow_temp_c, read.return_temp_c
        if flow is not None and ret is not None and ret >= flow:
            findings.append(
                _finding(read, "return_above_flow", f"Return {ret} °C ≥ flow {flow} °C.")
            )
        if (flow is not None and not FLOW_RANGE[0] <= flow <= FLOW_RANGE[1]) or (
            ret is not None and not RETURN_RANGE[0] <= ret <= RETURN_RANGE[1]
        ):
            findings.append(
                _finding(read, "temperature_out_of_range", f"Flow {flow} °C, return {ret} °C.")
            )
        if last is not None:
            hours = Decimal((read.read_at - last.read_at).total_seconds()) / Decimal(3600)
            delta_e = read.energy_kwh - last.energy_kwh
            delta_v = read.volume_m3 - last.volume_m3
            # each register rolls over on its own (EN 1434: every register has a maximum)
            rolled_e = delta_e < 0 and is_rollover(last.energy_kwh, read.energy_kwh, register_max_kwh)
            rolled_v = delta_v < 0 and is_rollover(
                last.volume_m3, read.volume_m3, volume_register_max_m3
            )
            if rolled_e:
                delta_e += register_max_kwh
            if rolled_v:
                delta_v += volume_register_max_m3
            if delta_e < 0 or delta_v < 0:
                findings.append(
                    _finding(
                        read,
                        "register_decrease",
                        f"Energy {last.energy_kwh} → {read.energy_kwh} kWh, volume {last.volume_m3} → {read.volume_m3} m³.",
                    )
                )
                continue  # the previous good read stays the reference
            if rolled_e:
                findings.append(
                    _finding(
                        read,
                        "rollover",
                        f"Energy register rolled over after {last.energy_kwh} kWh.",
                    )
                )
            if rolled_v:
                findings.append(
                    _finding(
                        read,
                        "volume_rollover",
                        f"Volume register rolled over after {last.volume_m3} m³.",
                    )
                )
            if hours > 0:
                avg_kw = delta_e / hours
                if contracted_kw and avg_kw > contracted_kw * CAPACITY_FACTOR:
                    findings.append(
                        _finding(
                            read,
                            "consumption_above_capacity",
                            f"{avg_kw:.1f} kW average over {hours:.1f} h; contracted {contracted_kw} kW.",
                        )
                    )
                avg_flow = delta_v / hours
                power_off = read.power_kw is not None and abs(read.power_kw - avg_kw) > max(
                    Decimal(5), 2 * avg_kw
                )
                flow_off = read.flow_m3h is not None and abs(read.flow_m3h - avg_flow) > max(
                    Decimal("0.5"), 2 * avg_flow
                )
                stuck = delta_e > 0 and read.power_kw == 0 and read.flow_m3h == 0 and hours <= 1
                if power_off or flow_off or stuck:
                    findings.append(
                        _finding(
                            read,
                            "power_inconsistent",
                            f"Power {read.power_kw} kW / flow {read.flow_m3h} m³/h vs {avg_kw:.2f} kW / {avg_flow:.3f} m³/h from the registers.",
                        )
                    )
            if cadence and (read.read_at - last.read_at).total_seconds() > max(
                3 * cadence, 26 * 3600
            ):
                findings.append(
                    _finding(read, "gap", f"No reading since {last.read_at.isoformat()}.")
                )
        last = read
    return findings
