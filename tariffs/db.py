"""A no-overlap constraint that only binds rows matching a condition.

Drafts of a tariff version may overlap the version in force (a draft for next year is
written while this year's open-ended version applies); approved and published versions
never overlap.  On PostgreSQL this is a partial GiST exclusion constraint
(``EXCLUDE … WHERE (status IN ('approved','published'))``); model validation runs the same
rule as an ORM query on every backend.  The mechanism is
:class:`heatutility.db.NoOverlapConstraint` with its ``condition``; this name stays for
the migrations that refer to it.
"""

from __future__ import annotations

from django.db.models import Q

from heatutility.db import NoOverlapConstraint


class ConditionalNoOverlapConstraint(NoOverlapConstraint):
    def __init__(self, *, condition: Q, **kwargs) -> None:
        super().__init__(condition=condition, **kwargs)
