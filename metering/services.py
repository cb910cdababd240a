"""Metering writes other apps call (billing: ``boundary_registers_ensure``)."""

from metering.ingest.batches import (
    readings_batch_process,
    readings_batch_submit,
    readings_file_submit,
)
from metering.vee.estimation import boundary_registers_ensure
from metering.vee.services import reading_edit, vee_run_meter, vee_run_pending

__all__ = [
    "boundary_registers_ensure",
    "reading_edit",
    "readings_batch_process",
    "readings_batch_submit",
    "readings_file_submit",
    "vee_run_meter",
    "vee_run_pending",
]
