"""The API answers a constraint violation with the constraint's own message: every one
of them must render (Django formats it with ``%``; a bare ``%`` in one broke them all)."""

from django.apps import apps

from heatutility.db import constraint_messages


def test_every_constraint_has_a_message_that_renders():
    names = {c.name for model in apps.get_models() for c in model._meta.constraints}
    messages = constraint_messages()
    assert set(messages) == names
    assert messages["plantunit_capital_inputs_plausible"] == (
        "The lifetime is at least 1 year and the interest rate a fraction from 0 to 1, "
        "such as 0.04."
    )
    assert all(message.strip() for message in messages.values())
