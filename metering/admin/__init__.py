"""Staff admin for metering; one module per concern."""

from metering.admin import (
    meters,  # noqa: F401
    readings,  # noqa: F401
    vendors,  # noqa: F401
)
