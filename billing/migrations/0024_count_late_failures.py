"""Count the exceptions recorded after their run for accounts it counted nowhere.

From now on an invoice run's first exception for an account it counts nowhere (a new
occupant it never planned, an account whose draft was cancelled) counts ``failed`` +1
and ``total`` +1, and billing the account later moves it from ``failed`` to ``done``
(``rerating.late_exception_record``, ``contract_changes.account_bill_missed``).  The
ones recorded before were never counted: billing such an account now would take one
off a ``failed`` that never counted it (below zero, refused by the column's check, on
a run with no other failure).  So they are counted here, once.
"""

from django.db import migrations


def count_late_failures(apps, schema_editor):
    BillingRun = apps.get_model("billing", "BillingRun")
    BillingRunException = apps.get_model("billing", "BillingRunException")
    Invoice = apps.get_model("billing", "Invoice")
    runs = BillingRun.objects.filter(
        kind="invoice", pk__in=BillingRunException.objects.values("run_id")
    ).exclude(state="cancelled")
    for run in runs.order_by("pk").iterator():
        chunks_done: dict[int, list[bool]] = {}
        for done, ids in run.chunks.values_list("done", "account_ids"):
            for account_id in ids:
                chunks_done.setdefault(account_id, []).append(done)
        with_bill = set(Invoice.objects.filter(run=run).values_list("account_id", flat=True))
        billed = set(
            Invoice.objects.filter(
                network_id=run.network_id,
                kind="invoice",
                period_start=run.period_start,
                period_end=run.period_end,
            )
            .exclude(state="cancelled")
            .values_list("account_id", flat=True)
        )
        uncounted = 0
        for account_id in BillingRunException.objects.filter(run=run).values_list(
            "account_id", flat=True
        ):
            done = chunks_done.get(account_id)
            if done and (not all(done) or account_id not in with_bill):
                continue  # a chunk still to come, or one that counted it failed
            if account_id in billed:
                continue  # billed (a late re-rating's exception): counted done or outside
            uncounted += 1
        if uncounted:
            BillingRun.objects.filter(pk=run.pk).update(
                total=run.total + uncounted, failed=run.failed + uncounted
            )


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0023_rerate_failure"),
    ]

    operations = [
        migrations.RunPython(count_late_failures, migrations.RunPython.noop),
    ]
