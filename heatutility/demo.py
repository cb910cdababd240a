"""The main job, end to end on a demo utility: ``manage.py demo`` / ``python3 dev.py demo``.

Each app contributes one step, a module with ``run(ctx: DemoContext) -> list[str]`` that
does real work through the app's services and returns summary lines.  Steps run in
order; later ones read what earlier ones left in ``ctx``:

1. ``customers.demo``  network, customers, accounts, buildings, connections, interface
   units, meters and contracts (``ctx.network``, ``ctx.data["connections"]``)
2. ``metering.demo``   readings delivered as a vendor file, ingested, validated (VEE),
   boundary registers
3. ``tariffs.demo``    plant and electricity prices, COP, operating cost, price cap,
   a tariff approved under the cap
4. ``billing.demo``    a billing run, issued invoices, PDFs
"""

from __future__ import annotations

import datetime as dt
import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

STEPS: list[str] = [
    "customers.demo",
    "metering.demo",
    "tariffs.demo",
    "billing.demo",
]


@dataclass
class DemoContext:
    as_of: dt.date
    """'Today' in the network's zone; the demo bills the last complete month before it."""
    size: int
    """Number of service connections (one account each)."""
    seed: int
    stdout: TextIO
    network: Any = None
    data: dict[str, Any] = field(default_factory=dict)

    def say(self, line: str) -> None:
        self.stdout.write(line + "\n")
        self.stdout.flush()


def wait_until(done: Callable[[], bool], *, what: str, timeout_s: float = 900) -> None:
    """Wait for work handed to Celery: done at once in process (the embedded default),
    done by the workers with ``REDIS_URL``."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{what}: not done after {timeout_s:.0f} s.  With REDIS_URL set the work runs "
                "on Celery workers: is one running (celery -A heatutility worker)?"
            )
        time.sleep(0.2)


def run_demo(*, as_of: dt.date, size: int, seed: int, stdout: TextIO) -> list[str]:
    ctx = DemoContext(as_of=as_of, size=size, seed=seed, stdout=stdout)
    summary: list[str] = []
    for step in STEPS:
        started = time.perf_counter()
        ctx.say(f"== {step} ==")
        lines = importlib.import_module(step).run(ctx)
        elapsed = time.perf_counter() - started
        for line in lines:
            ctx.say(f"  {line}")
        ctx.say(f"  ({elapsed:.1f} s)")
        summary.extend(lines)
    return summary
