"""VEE validation rules: pure functions over one meter's readings (no ORM, no clock).

Each rule has a reason code and a severity: ``error`` rejects the reading, ``warning``
makes it suspect (both land in the staff exception queue), ``info`` is recorded only
(rollovers, gaps).  Rollover findings are kept as accepted markers: boundary-register
estimation counts them instead of re-reading a meter's whole history.  An ambiguous
rollover (``AMBIGUOUS_ROLLOVER_CODES``) counts one wrap until staff accept it with the
number of wraps they found (``ReadingIssue.wraps``, at most
:func:`rollover_wraps_possible`).  A ``register_decrease`` staff accepted with a number
of wraps (``DECREASE``, :func:`decrease_wraps_possible`) is a rollover they declared:
the register that fell counts that many wraps there (``validate(declared=…)``), though
the fall is outside the rollover band VEE counts on its own.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal


def installed_then(
    installed_at: dt.datetime, removed_at: dt.datetime | None, at: dt.datetime
) -> bool:
    """Does the installation ``[installed_at, removed_at]`` cover a read taken ``at``?

    The one rule for VEE, estimation and the exchange's checks: a read at the removal
    instant is the removed meter's final read (its m³·°C end values where the removal
    records none), so the end is included, though installations of a unit never
    overlap (``[installed_at, removed_at)``, ``MeterInstallation``)."""
    return installed_at <= at and (removed_at is None or at <= removed_at)


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
        Rule(
            "register_spike",
            "error",
            "Register above both neighbouring reads, which agree without it (a garbled read).",
        ),
        Rule("rollover", "info", "Energy register rolled over at its maximum."),
        Rule("volume_rollover", "info", "Volume register rolled over at its maximum."),
        Rule(
            "rollover_ambiguous",
            "warning",
            "Energy register rolled over, and the time since the previous read allows more "
            "than one wrap within 1.5 × contracted kW: counted as one unless staff state "
            "how many.",
        ),
        Rule(
            "volume_rollover_ambiguous",
            "warning",
            "Volume register rolled over, and the time since the previous read allows more "
            "than one wrap at the meter's nominal flow qp: counted as one unless staff state "
            "how many.",
        ),
        Rule(
            "consumption_above_capacity",
            "warning",
            "Average power between reads above 1.5 × contracted kW.",
        ),
        Rule(
            "initial_register_low",
            "warning",
            "Average power from the installation's initial register to the first read a day "
            "or more later above 1.5 × contracted kW, or average flow from its initial volume "
            "register above the meter's nominal flow qp: is the initial register too low "
            "(or the installation time late)?",
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
# the span from an installation's initial register over which its consumption is judged
# against the capacity (``initial_register_low``): its time is the paperwork's, so a
# shorter span would flag an installation recorded an hour late before an hourly read
INITIAL_SPAN = dt.timedelta(days=1)
FLOW_RANGE = (Decimal(20), Decimal(130))
RETURN_RANGE = (Decimal(5), Decimal(100))
ROLLOVER_BAND = Decimal("0.1")
# info findings recorded as accepted markers (never in the exception queue)
ROLLOVER_CODES = ("rollover", "volume_rollover")
# warning findings whose wrap count staff may state on acceptance (ReadingIssue.wraps),
# with the rollover marker of the same register
AMBIGUOUS_ROLLOVER_CODES = ("rollover_ambiguous", "volume_rollover_ambiguous")
# the error finding staff may accept as a rollover they declare, with a wrap count
# (ReadingIssue.wraps): a real wrap whose fall VEE's band does not take for one
DECREASE = "register_decrease"
# the findings whose acceptance takes a wrap count
WRAP_CODES = (*AMBIGUOUS_ROLLOVER_CODES, DECREASE)
# Read.status of an installation's initial registers taken as the reference read
INITIAL = "initial"


def _finding(read: Read, code: str, message: str) -> Finding:
    return Finding(read.read_at, code, RULES[code].severity, message)


def _initial_low(
    initial: Read,
    read: Read,
    contracted_kw: Decimal | None,
    nominal_flow_m3h: Decimal | None,
) -> list[Finding]:
    """``initial_register_low`` on ``read`` where what a register counted since the
    installation's ``initial`` register is more than the connection can take: energy
    above the capacity limit (1.5 × ``contracted_kw``), volume above the meter's nominal
    flow qp (``nominal_flow_m3h``), each judged where its limit is known.  A register
    below the initial one (a rollover, which the rollover checks judge) never exceeds a
    limit."""
    hours = Decimal((read.read_at - initial.read_at).total_seconds()) / Decimal(3600)
    energy_kwh = read.energy_kwh - initial.energy_kwh
    volume_m3 = read.volume_m3 - initial.volume_m3
    found = []
    if contracted_kw and energy_kwh > _energy_most(contracted_kw, hours):
        found.append(
            f"{energy_kwh / hours:.1f} kW average over the {hours:.1f} h since the "
            f"installation at {initial.read_at.isoformat()} (initial register "
            f"{initial.energy_kwh} kWh, {energy_kwh} kWh counted); contracted "
            f"{contracted_kw} kW"
        )
    if nominal_flow_m3h and volume_m3 > _volume_most(nominal_flow_m3h, hours):
        found.append(
            f"{volume_m3 / hours:.2f} m³/h average over the {hours:.1f} h since the "
            f"installation at {initial.read_at.isoformat()} (initial volume register "
            f"{initial.volume_m3} m³, {volume_m3} m³ counted); nominal flow qp "
            f"{nominal_flow_m3h} m³/h"
        )
    if not found:
        return []
    question = "is the initial register" if len(found) == 1 else "are the initial registers"
    return [
        _finding(
            read,
            "initial_register_low",
            "; ".join(found) + f": {question} too low, or the installation time late?",
        )
    ]


def is_rollover(previous: Decimal, current: Decimal, register_max: Decimal) -> bool:
    """A decrease from the top tenth of the register range into the bottom tenth."""
    band = register_max * ROLLOVER_BAND
    return previous >= register_max - band and current <= band


def _wraps_possible(*, advance: Decimal, wrap: Decimal, most: Decimal) -> int:
    """How many wraps a rolled-over register may have made: ``advance`` is the step
    counted with one wrap, ``most`` the largest plausible advance over the interval;
    each further wrap adds ``wrap``.  Registers alone cannot tell 1 from 2 once a second
    wrap stays within ``most``."""
    if advance > most:
        return 1
    return 1 + int((most - advance) // wrap)


def _energy_most(contracted_kw: Decimal, hours: Decimal) -> Decimal:
    """The most energy a connection plausibly takes in ``hours``: the
    ``consumption_above_capacity`` limit, 1.5 × contracted kW."""
    return contracted_kw * CAPACITY_FACTOR * hours


def _volume_most(nominal_flow_m3h: Decimal, hours: Decimal) -> Decimal:
    """The most water a meter plausibly counts in ``hours``: its nominal flow qp, the
    highest it runs at continuously (EN 1434)."""
    return nominal_flow_m3h * hours


@dataclass(frozen=True)
class _Step:
    """Register advance from a reference read to the next one, rollovers counted."""

    energy_kwh: Decimal
    volume_m3: Decimal
    rolled_e: bool
    rolled_v: bool

    @property
    def decreases(self) -> bool:
        return self.energy_kwh < 0 or self.volume_m3 < 0


def _step(
    last: Read,
    read: Read,
    *,
    register_max_kwh: Decimal,
    volume_register_max_m3: Decimal,
    register_wrap_kwh: Decimal,
    volume_register_wrap_m3: Decimal,
    declared: int | None = None,
) -> _Step:
    """``declared``: the wraps staff stated where they declared a decrease at ``read`` a
    rollover (an accepted ``register_decrease``): each register that fell from ``last``
    counts that many, in the band or not."""
    delta_e = read.energy_kwh - last.energy_kwh
    delta_v = read.volume_m3 - last.volume_m3
    # each register rolls over on its own (EN 1434: every register has a maximum); a
    # rollover adds maximum + resolution, the step from the largest value to 0
    rolled_e = delta_e < 0 and (
        bool(declared) or is_rollover(last.energy_kwh, read.energy_kwh, register_max_kwh)
    )
    rolled_v = delta_v < 0 and (
        bool(declared) or is_rollover(last.volume_m3, read.volume_m3, volume_register_max_m3)
    )
    wraps = declared or 1
    return _Step(
        delta_e + (register_wrap_kwh * wraps if rolled_e else 0),
        delta_v + (volume_register_wrap_m3 * wraps if rolled_v else 0),
        rolled_e,
        rolled_v,
    )


def rollover_wraps_possible(
    *,
    code: str,
    last: Read,
    read: Read,
    register_max_kwh: Decimal,
    volume_register_max_m3: Decimal,
    register_wrap_kwh: Decimal,
    volume_register_wrap_m3: Decimal,
    contracted_kw: Decimal | None,
    nominal_flow_m3h: Decimal | None,
) -> int | None:
    """How many wraps the register of an ambiguous-rollover finding (``code``, one of
    ``AMBIGUOUS_ROLLOVER_CODES``) may have made from ``last`` to ``read``, within the
    limit :func:`validate` applies (energy: 1.5 × ``contracted_kw``; volume: qp).  None
    when that register does not roll over from ``last`` to ``read``."""
    step = _step(
        last,
        read,
        register_max_kwh=register_max_kwh,
        volume_register_max_m3=volume_register_max_m3,
        register_wrap_kwh=register_wrap_kwh,
        volume_register_wrap_m3=volume_register_wrap_m3,
    )
    hours = Decimal((read.read_at - last.read_at).total_seconds()) / Decimal(3600)
    if code == "rollover_ambiguous":
        if not step.rolled_e:
            return None
        if not contracted_kw:
            return 1
        return _wraps_possible(
            advance=step.energy_kwh, wrap=register_wrap_kwh, most=_energy_most(contracted_kw, hours)
        )
    if code == "volume_rollover_ambiguous":
        if not step.rolled_v:
            return None
        if not nominal_flow_m3h:
            return 1
        return _wraps_possible(
            advance=step.volume_m3,
            wrap=volume_register_wrap_m3,
            most=_volume_most(nominal_flow_m3h, hours),
        )
    raise ValueError(f"{code} is not an ambiguous-rollover finding")


@dataclass(frozen=True)
class DecreaseFit:
    """How a register that fell from one read to the next fits a rollover staff declare
    (:func:`decrease_wraps_possible`)."""

    register: str  # energy | volume
    unit: str
    fall: Decimal  # the previous register less the read's
    wrap: Decimal  # what one wrap adds (maximum + resolution)
    hours: Decimal
    most: Decimal | None  # the most the meter plausibly counts in ``hours`` (None: no limit)
    limit: str  # what ``most`` rests on (or why there is none), for messages
    wraps: int  # how many wraps fit (0: not even one)

    def counted(self, wraps: int) -> Decimal:
        """What the register counted over the interval with ``wraps`` wraps."""
        return wraps * self.wrap - self.fall


def decrease_wraps_possible(
    *,
    last: Read,
    read: Read,
    register_wrap_kwh: Decimal,
    volume_register_wrap_m3: Decimal,
    contracted_kw: Decimal | None,
    nominal_flow_m3h: Decimal | None,
) -> list[DecreaseFit]:
    """For each register that fell from ``last`` to ``read`` (a ``register_decrease``),
    how many wraps fit a rollover staff declare there: ``n`` wraps count
    ``n × wrap − fall``, which must stay within what :func:`validate` finds plausible
    (energy: 1.5 × ``contracted_kw``; volume: the nominal flow qp).  Without that limit a
    declared rollover counts one wrap (as VEE counts one where it cannot tell).  Empty
    when neither register fell."""
    hours = Decimal((read.read_at - last.read_at).total_seconds()) / Decimal(3600)
    fits = []
    for register, unit, before, after, wrap, most, limit in (
        (
            "energy",
            "kWh",
            last.energy_kwh,
            read.energy_kwh,
            register_wrap_kwh,
            _energy_most(contracted_kw, hours) if contracted_kw else None,
            f"{CAPACITY_FACTOR} × contracted {contracted_kw} kW"
            if contracted_kw
            else "the connection has no contracted capacity",
        ),
        (
            "volume",
            "m³",
            last.volume_m3,
            read.volume_m3,
            volume_register_wrap_m3,
            _volume_most(nominal_flow_m3h, hours) if nominal_flow_m3h else None,
            f"nominal flow qp {nominal_flow_m3h} m³/h"
            if nominal_flow_m3h
            else "the meter has no nominal flow qp",
        ),
    ):
        if after >= before:
            continue
        fall = before - after
        wraps = 1 if most is None else max(0, int((most + fall) // wrap))
        fits.append(DecreaseFit(register, unit, fall, wrap, hours, most, limit, wraps))
    return fits


def validate(
    *,
    reads: list[Read],
    previous: Read | None,
    register_max_kwh: Decimal,
    volume_register_max_m3: Decimal,
    contracted_kw: Decimal | None,
    installed: list[tuple[dt.datetime, dt.datetime | None]],
    now: dt.datetime,
    register_wrap_kwh: Decimal | None = None,
    volume_register_wrap_m3: Decimal | None = None,
    nominal_flow_m3h: Decimal | None = None,
    initials: Sequence[Read] = (),
    declared: Mapping[dt.datetime, int] | None = None,
) -> list[Finding]:
    """Findings for ``reads`` (sorted by time); ``previous`` is the last read before them.

    ``register_max_*`` are the largest register values; ``*_wrap_*`` what one rollover
    adds (``HeatMeter.register_wrap_kwh`` / ``volume_register_wrap_m3``: maximum +
    resolution).  Without a wrap a rollover adds the maximum, one resolution step short.

    A rollover is counted as one wrap.  Where the interval is long enough that a second
    wrap would still stay within what the meter can plausibly have counted (energy:
    the ``consumption_above_capacity`` limit, 1.5 × ``contracted_kw``; volume: the
    meter's nominal flow qp, ``nominal_flow_m3h``, the highest it runs at continuously,
    EN 1434), the count is a guess: the read gets ``rollover_ambiguous`` /
    ``volume_rollover_ambiguous`` (suspect, for staff) besides the rollover marker.
    Without the limit (no contracted kW, no qp) a rollover is counted as one, as ever.

    Each read is checked against the last read that stays usable (no error finding): a
    rejected read is never the reference.  When a read goes below the reference (or rolls
    over from it) but not below the reference before it, the reference is the outlier
    (one garbled read above both neighbours, which agree without it): it gets
    ``register_spike`` and the earlier read is the reference again, so the good reads
    after a spike are not rejected.

    ``initials``: installations' initial registers, each as a read at its installation
    time.  Consumption is counted from the initial register (DOMAIN.md §2), so it is the
    reference of the installation's first read, and of every later one while no read of
    the installation is usable: a read below it that does not roll over from it is a
    ``register_decrease`` (a digit typed wrong at the installation, 12,345 for 1,234,
    would otherwise count a negative or a lost consumption at the installation).  Only
    the register checks use it (decrease, rollover, ambiguous rollover): its time is the
    paperwork's, not a read's, so the rate and gap rules wait for a second read; nor is
    it the earlier read that shows a spike (the register may have wrapped since).  What
    the installation counted from it is judged once, at the first usable read a day or
    more after it (:data:`INITIAL_SPAN`; in whichever run that read is validated): an
    average above the capacity limit (energy) or the nominal flow qp (volume) is
    ``initial_register_low`` (suspect, for staff), an initial register typed too low
    (1,234 for 12,345), which would bill the difference as consumption (energy) or
    weigh the period's return temperature and volume charge with it (volume).

    ``declared``: {read time: wraps} of the decreases staff declared rollovers (accepted
    ``register_decrease`` findings with a wrap count).  A register that falls at such a
    read counts that many wraps, as a rollover (its marker is recorded, not the
    ambiguity: staff stated the count), so the read is the reference of the next ones.
    """
    declared = declared or {}
    findings: list[Finding] = []
    starts = sorted((replace(i, status=INITIAL) for i in initials), key=lambda i: i.read_at)
    start_times = [i.read_at for i in starts]
    ordered = sorted(reads, key=lambda r: r.read_at)
    intervals = [(b.read_at - a.read_at).total_seconds() for a, b in itertools.pairwise(ordered)]
    cadence = sorted(intervals)[len(intervals) // 2] if intervals else None
    registers = {
        "register_max_kwh": register_max_kwh,
        "volume_register_max_m3": volume_register_max_m3,
        "register_wrap_kwh": register_max_kwh if register_wrap_kwh is None else register_wrap_kwh,
        "volume_register_wrap_m3": volume_register_max_m3
        if volume_register_wrap_m3 is None
        else volume_register_wrap_m3,
    }
    # the reference read and, when the reference is one of ``reads``, the one before it
    last = previous if previous is not None and previous.status != "rejected" else None
    prior: Read | None = None
    for read in ordered:
        own: list[Finding] = []
        if read.read_at > now:
            own.append(
                _finding(
                    read,
                    "future_timestamp",
                    f"Read at {read.read_at.isoformat()}, after {now.isoformat()}.",
                )
            )
        inside = any(installed_then(start, end, read.read_at) for start, end in installed)
        if not inside:
            own.append(
                _finding(read, "outside_installation", "The meter was not installed at that time.")
            )
        # installations of a meter never overlap: the last one begun is the read's
        begun = bisect.bisect_right(start_times, read.read_at)
        if inside and begun and (last is None or last.read_at < start_times[begun - 1]):
            last, prior = starts[begun - 1], None
        if read.status_code not in (None, 0):
            own.append(_finding(read, "fault_status", f"Meter status code {read.status_code}."))
        flow, ret = read.flow_temp_c, read.return_temp_c
        if flow is not None and ret is not None and ret >= flow:
            own.append(_finding(read, "return_above_flow", f"Return {ret} °C ≥ flow {flow} °C."))
        if (flow is not None and not FLOW_RANGE[0] <= flow <= FLOW_RANGE[1]) or (
            ret is not None and not RETURN_RANGE[0] <= ret <= RETURN_RANGE[1]
        ):
            own.append(
                _finding(read, "temperature_out_of_range", f"Flow {flow} °C, return {ret} °C.")
            )
        if last is not None:
            stated = declared.get(read.read_at)
            step = _step(last, read, **registers, declared=stated)
            if prior is not None and (step.decreases or step.rolled_e or step.rolled_v):
                back = _step(prior, read, **registers, declared=stated)
                # the register cannot pass a whole wrap between prior and read: if they
                # agree without a decrease or rollover, last is the odd one out
                if not (back.decreases or back.rolled_e or back.rolled_v):
                    findings.append(
                        _finding(
                            last,
                            "register_spike",
                            f"Energy {last.energy_kwh} kWh, volume {last.volume_m3} m³ lie above "
                            f"{prior.read_at.isoformat()} ({prior.energy_kwh} kWh, {prior.volume_m3} m³) "
                            f"and {read.read_at.isoformat()} ({read.energy_kwh} kWh, {read.volume_m3} m³).",
                        )
                    )
                    last, prior, step = prior, None, back
            from_initial = last.status == INITIAL
            if step.decreases:
                own.append(
                    _finding(
                        read,
                        "register_decrease",
                        f"Energy {last.energy_kwh} → {read.energy_kwh} kWh, volume {last.volume_m3} → {read.volume_m3} m³"
                        + (
                            f", below the initial registers of the installation at {last.read_at.isoformat()}: "
                            "is a register of the installation or this read wrong?"
                            if from_initial
                            else "."
                        ),
                    )
                )
                findings.extend(own)
                continue  # the previous good read stays the reference
            delta_e, delta_v = step.energy_kwh, step.volume_m3
            hours = Decimal((read.read_at - last.read_at).total_seconds()) / Decimal(3600)
            by_staff = f" ({stated} wrap(s), declared by staff)" if stated else ""
            if step.rolled_e:
                own.append(
                    _finding(
                        read,
                        "rollover",
                        f"Energy register rolled over after {last.energy_kwh} kWh{by_staff}.",
                    )
                )
            if step.rolled_v:
                own.append(
                    _finding(
                        read,
                        "volume_rollover",
                        f"Volume register rolled over after {last.volume_m3} m³{by_staff}.",
                    )
                )
            if step.rolled_e and contracted_kw and not stated:
                wraps = _wraps_possible(
                    advance=delta_e,
                    wrap=registers["register_wrap_kwh"],
                    most=_energy_most(contracted_kw, hours),
                )
                if wraps > 1:
                    own.append(
                        _finding(
                            read,
                            "rollover_ambiguous",
                            f"Energy register rolled over after {last.energy_kwh} kWh; "
                            f"{hours:.0f} h since {last.read_at.isoformat()} allow up to {wraps} "
                            f"wraps of {registers['register_wrap_kwh']:.0f} kWh within "
                            f"{CAPACITY_FACTOR} × contracted {contracted_kw} kW: counted as one.",
                        )
                    )
            if step.rolled_v and nominal_flow_m3h and not stated:
                wraps = _wraps_possible(
                    advance=delta_v,
                    wrap=registers["volume_register_wrap_m3"],
                    most=_volume_most(nominal_flow_m3h, hours),
                )
                if wraps > 1:
                    own.append(
                        _finding(
                            read,
                            "volume_rollover_ambiguous",
                            f"Volume register rolled over after {last.volume_m3} m³; "
                            f"{hours:.0f} h since {last.read_at.isoformat()} allow up to {wraps} "
                            f"wraps of {registers['volume_register_wrap_m3']} m³ at qp "
                            f"{nominal_flow_m3h} m³/h: counted as one.",
                        )
                    )
            if hours > 0 and not from_initial:
                avg_kw = delta_e / hours
                if contracted_kw and avg_kw > contracted_kw * CAPACITY_FACTOR:
                    own.append(
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
                    own.append(
                        _finding(
                            read,
                            "power_inconsistent",
                            f"Power {read.power_kw} kW / flow {read.flow_m3h} m³/h vs {avg_kw:.2f} kW / {avg_flow:.3f} m³/h from the registers.",
                        )
                    )
            if (
                cadence
                and not from_initial
                and (read.read_at - last.read_at).total_seconds() > max(3 * cadence, 26 * 3600)
            ):
                own.append(_finding(read, "gap", f"No reading since {last.read_at.isoformat()}."))
            start = starts[begun - 1] if inside and begun else None
            if (
                start is not None
                and read.read_at - start.read_at >= INITIAL_SPAN > last.read_at - start.read_at
                and last.read_at >= start.read_at
                and not any(f.severity == "error" for f in own)
            ):
                # the first usable read a day or more after the installation: judged once
                own.extend(_initial_low(start, read, contracted_kw, nominal_flow_m3h))
        findings.extend(own)
        if all(f.severity != "error" for f in own):
            # an initial register is no witness of a spike: the register may have
            # wrapped since the installation, as a read's has not since the read before
            prior, last = (None if last is not None and last.status == INITIAL else last), read
    return findings
