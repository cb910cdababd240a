"""What tariffs tells other apps (tariffs depends on none of them; they connect).

``tariff_version_closed`` is sent once the approval of a version that closed an open
predecessor has committed: from the predecessor's new end on, another version prices
the days.  Sent with ``version_id``, the predecessor's.  Billing re-rates the bills
priced with it over those days (a corrected tariff, ``billing.apps``).
"""

from django.dispatch import Signal

tariff_version_closed = Signal()
