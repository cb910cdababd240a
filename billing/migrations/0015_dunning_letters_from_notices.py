"""Every notice sent as a letter of its own (the rule before 0014) becomes a letter of its
own: same account, day, level, fee, fee invoice and PDF, marked ``legacy`` (the one letter
per account and day rule does not apply to them).  Nothing already sent changes meaning."""

from django.db import migrations
from django.db.models import Q


def notices_to_letters(apps, schema_editor):
    DunningNotice = apps.get_model("billing", "DunningNotice")
    DunningLetter = apps.get_model("billing", "DunningLetter")
    # pay_by is set exactly on notices sent since letters exist (0010), rendered or not yet
    sent_as_letters = (
        DunningNotice.objects.filter(
            Q(pay_by__isnull=False) | ~Q(pdf="") | Q(fee_invoice__isnull=False),
            letter__isnull=True,
        )
        .select_related("invoice")
        .order_by("pk")
    )
    for notice in sent_as_letters.iterator(chunk_size=1000):
        letter = DunningLetter.objects.create(
            account_id=notice.invoice.account_id,
            sent_on=notice.sent_on,
            pay_by=notice.pay_by or notice.sent_on,
            level=notice.level,
            title=notice.title,
            next_steps=notice.next_steps,
            currency=notice.invoice.currency,
            fee=notice.fee,
            fee_invoice_id=notice.fee_invoice_id,
            open_amount=notice.open_amount,
            legacy=True,
            pdf=notice.pdf.name,
        )
        DunningNotice.objects.filter(pk=notice.pk).update(letter=letter)


def letters_to_notices(apps, schema_editor):
    """Back to one letter per notice: a letter sent by the new rule hands its fee, fee
    invoice and PDF to its highest-level notice (the old schema's only place for them),
    so no fee invoice is orphaned and the letter stays downloadable."""
    DunningNotice = apps.get_model("billing", "DunningNotice")
    DunningLetter = apps.get_model("billing", "DunningLetter")
    for letter in DunningLetter.objects.filter(legacy=False).order_by("pk").iterator():
        top = DunningNotice.objects.filter(letter=letter).order_by("-level", "pk").first()
        if top is not None:
            DunningNotice.objects.filter(pk=top.pk).update(
                fee=letter.fee, fee_invoice_id=letter.fee_invoice_id, pdf=letter.pdf.name
            )
    DunningNotice.objects.filter(letter__isnull=False).update(letter=None)
    DunningLetter.objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0014_dunning_letters"),
    ]

    operations = [
        migrations.RunPython(notices_to_letters, letters_to_notices),
    ]
