"""Demo step 2: a head-end system delivers a year of daily readings as a vendor CSV file.

The file goes through the real file path (header check, validation, COPY/INSERT, counts),
then VEE runs as the nightly job would, and boundary registers are ensured for the month
starts billing needs.  A few realistic faults are planted so the exception queue and the
estimation have something to do: a register that jumps back, a fault status code, return
above flow, a missing month-start read (interpolated), a meter that stopped reporting
(estimated from last year, degree-day corrected), and a re-sent file (duplicates, one
conflict kept for review).
"""

from __future__ import annotations

import datetime as dt
import math
import random
from decimal import Decimal

from django.utils import timezone

from heatutility.demo import wait_until
from heatutility.timeutil import add_months, local_midnight, month_start
from metering.ingest.batches import readings_batch_process, readings_file_submit
from metering.models import (
    BoundaryRegister,
    DegreeDay,
    HeatMeter,
    IngestBatch,
    MeterVendor,
    Reading,
)
from metering.services import boundary_registers_ensure, vee_run_pending

HEADER = "Målernr;Tidspunkt;Energi;Enhed;Volumen;Fremløb;Retur;Info;VolFrem;VolRetur"
COLUMNS = {
    "meter": "Målernr",
    "read_at": "Tidspunkt",
    "energy": "Energi",
    "energy_unit": "Enhed",
    "volume_m3": "Volumen",
    "flow_temp_c": "Fremløb",
    "return_temp_c": "Retur",
    "status_code": "Info",
    "flow_temp_m3c": "VolFrem",
    "return_temp_m3c": "VolRetur",
}


def _comma(value: float, places: int) -> str:
    return f"{value:.{places}f}".replace(".", ",")


def _mean_temperature(day: dt.date, rng: random.Random) -> float:
    """A Danish-looking daily mean: 0 °C in late January, 17 °C in late July, ± weather."""
    return (
        8.5
        - 8.5 * math.cos(2 * math.pi * (day.timetuple().tm_yday - 25) / 365.25)
        + rng.gauss(0, 2.2)
    )


def run(ctx) -> list[str]:
    rng = random.Random(ctx.seed + 2)
    network = ctx.network
    zone = network.time_zone
    vendor = MeterVendor.objects.create(
        code=f"{network.code}-headend",
        name=f"Kamstrup READy head-end ({network.code})",
        csv_columns=COLUMNS,
        csv_separator=";",
        csv_decimal_comma=True,
        csv_energy_unit="kWh",
        csv_time_zone=zone,
    )
    meters = list(
        HeatMeter.objects.filter(pk__in=ctx.data["meters"])
        .prefetch_related("installations__unit__connection__building")
        .order_by("pk")
    )
    HeatMeter.objects.filter(pk__in=[m.pk for m in meters]).update(vendor=vendor)

    last_day = ctx.as_of  # the read at 00:00 of "today" is the newest
    first_day = add_months(month_start(last_day), -14)
    days = [first_day + dt.timedelta(days=n) for n in range((last_day - first_day).days + 1)]
    temps = {day: _mean_temperature(day, rng) for day in days}
    DegreeDay.objects.bulk_create(
        [
            DegreeDay(network=network, on=day, degree_days=Decimal(f"{max(0.0, 17 - t):.2f}"))
            for day, t in temps.items()
        ],
        ignore_conflicts=True,
    )

    planted = (
        {
            "decrease": meters[1],
            "fault": meters[2],
            "return_above_flow": meters[3],
            "missing_month_start": meters[4],
            "stopped": meters[5],
        }
        if len(meters) > 5
        else {}
    )
    stop_after = add_months(month_start(last_day), -1) - dt.timedelta(days=9)
    missing_day = add_months(month_start(last_day), -3)
    lines = [HEADER]
    for meter in meters:
        area = float(meter.installations.all()[0].unit.connection.building.heated_area_m2)
        mwh = meter.register_unit == "MWh"
        energy = rng.uniform(5_000, 60_000) * (20 if mwh else 1)
        volume = energy / 40
        flow_m3c = volume * 70
        return_m3c = volume * 38
        for day in days:
            hdd = max(0.0, 17 - temps[day])
            kwh = area * (0.068 + 0.038 * hdd) * rng.uniform(0.9, 1.1)
            flow_t = 72 + rng.gauss(0, 1.0)
            return_t = 38 + rng.gauss(0, 1.5)
            m3 = kwh / (1.163 * (flow_t - return_t))
            energy, volume = energy + kwh, volume + m3
            flow_m3c, return_m3c = flow_m3c + m3 * flow_t, return_m3c + m3 * return_t
            status = 0
            shown_energy = energy
            if meter is planted.get("decrease") and day == last_day - dt.timedelta(days=20):
                shown_energy = energy - 500  # a glitch: the register seems to run back
            if meter is planted.get("fault") and day == last_day - dt.timedelta(days=12):
                status = 16  # e.g. "temperature sensor error"
            if meter is planted.get("return_above_flow") and day == last_day - dt.timedelta(days=6):
                flow_t, return_t = 41.0, 44.0
            if meter is planted.get("missing_month_start") and day == missing_day:
                continue
            if meter is planted.get("stopped") and day > stop_after:
                continue
            value = shown_energy / 1000 if mwh else shown_energy
            lines.append(
                ";".join(
                    [
                        meter.serial,
                        f"{day.isoformat()} 00:00",
                        _comma(value, 3),
                        "MWh" if mwh else "kWh",
                        _comma(volume, 3),
                        _comma(flow_t, 1),
                        _comma(return_t, 1),
                        str(status),
                        _comma(flow_m3c, 1),
                        _comma(return_m3c, 1),
                    ]
                )
            )
    received = timezone.now()
    batch, _ = readings_file_submit(
        vendor=vendor,
        content=("\n".join(lines) + "\n").encode("utf-8"),
        file_name=f"readings-{last_day.isoformat()}.csv",
        received_at=received,
    )
    batch = _stored(batch, now=received)

    # The head-end re-sends its last three days; one value was corrected at the source.
    resend = [HEADER, *lines[-3:]]
    fields = resend[-1].split(";")
    fields[2] = _comma(float(fields[2].replace(",", ".")) + 1, 3)
    resend[-1] = ";".join(fields)
    again, _ = readings_file_submit(
        vendor=vendor,
        content=("\n".join(resend) + "\n").encode("utf-8"),
        file_name=f"readings-{last_day.isoformat()}-resend.csv",
        received_at=received,
    )
    again = _stored(again, now=received)

    now = local_midnight(last_day, zone) + dt.timedelta(hours=2)
    vee_run_pending(now=now)
    boundaries = [add_months(month_start(last_day), -k) for k in range(13)]
    connection_ids = ctx.data["connections"]
    boundary_registers_ensure(connection_ids=connection_ids, dates=boundaries)

    statuses = {
        s: Reading.objects.filter(meter__in=meters, status=s).count()
        for s in ("suspect", "rejected")
    }
    registers = BoundaryRegister.objects.filter(connection_id__in=connection_ids, on__in=boundaries)
    estimated = registers.filter(status="estimated")
    batches = IngestBatch.objects.filter(pk__in=[batch.pk, again.pk])
    return [
        f"vendor {vendor.name}: {len(meters)} meters assigned; CSV with decimal commas, local time",
        f"{batch.row_count:,} daily readings {days[0].isoformat()}…{last_day.isoformat()} ingested: "
        f"{sum(b.accepted for b in batches):,} stored, {sum(b.duplicate for b in batches)} duplicates, "
        f"{sum(b.conflicting for b in batches)} conflicting (kept for review), {sum(b.rejected for b in batches)} refused",
        f"VEE: {statuses['suspect']} suspect, {statuses['rejected']} rejected readings in the exception queue",
        f"boundary registers for {len(boundaries)} month starts: {registers.count()} values, "
        f"{estimated.count()} estimated ({', '.join(sorted(set(estimated.values_list('method', flat=True)))) or '—'})",
    ]


def _stored(batch: IngestBatch, *, now: dt.datetime) -> IngestBatch:
    """The batch once stored.  The submit queued it for a worker; it is processed here
    unless a worker already is (one processor per batch), then waited for."""
    readings_batch_process(batch_id=batch.pk, now=now)
    finished = (IngestBatch.State.DONE, IngestBatch.State.FAILED)
    wait_until(
        lambda: IngestBatch.objects.filter(pk=batch.pk, state__in=finished).exists(),
        what=f"reading batch {batch.pk}",
    )
    batch.refresh_from_db()
    return batch
