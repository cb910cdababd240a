"""Celery tasks of customers (thin: the work is in ``customers.services``)."""

from celery import shared_task


@shared_task(acks_late=True)
def capacities_sync_due() -> int:
    """Beat: capacity changes dated ahead that have come due update their connection."""
    from customers.services import capacities_sync_due as sync

    return sync()


@shared_task(acks_late=True)
def areas_sync_due() -> int:
    """Beat: area changes dated ahead that have come due update their building."""
    from customers.services import areas_sync_due as sync

    return sync()


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def portal_email_send(subject: str, body: str, to: str) -> None:
    """A portal e-mail (password link, invitation) sent off the request."""
    from django.core import mail

    mail.EmailMessage(subject=subject, body=body, to=[to]).send()
