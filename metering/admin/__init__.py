"""Staff admin for metering; one module per concern."""

from metering.admin import (
    installations,  # noqa: F401
    meters,  # noqa: F401
    readings,  # noqa: F401
    revalidation,  # noqa: F401
    vendors,  # noqa: F401
)
