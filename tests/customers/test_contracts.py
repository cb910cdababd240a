import datetime as dt

import pytest
from django.db import IntegrityError, transaction

from customers.models import Account, Contract, ServiceConnection
from customers.services import UnableToMoveIn, UnableToMoveOut, contract_move_in, contract_move_out
from heatutility.errors import DomainError
from tests.customers.factories import (
    AccountFactory,
    ContractFactory,
    NetworkFactory,
    ServiceConnectionFactory,
)

pytestmark = pytest.mark.django_db


class TestContractMoveIn:
    def test_starts_an_open_contract(self):
        network = NetworkFactory()
        account = AccountFactory(network=network)
        connection = ServiceConnectionFactory(network=network)

        contract = contract_move_in(
            account=account, connection=connection, move_in_on=dt.date(2026, 3, 1)
        )

        assert contract.valid_from == dt.date(2026, 3, 1)
        assert contract.valid_to is None
        assert contract.history.first().history_change_reason == "move-in"

    def test_overlapping_contract_is_refused_with_a_clear_message(self):
        existing = ContractFactory(valid_from=dt.date(2026, 1, 1))
        newcomer = AccountFactory(network=existing.account.network)

        with pytest.raises(DomainError, match="already has a contract in that period"):
            contract_move_in(
                account=newcomer, connection=existing.connection, move_in_on=dt.date(2026, 5, 1)
            )

        assert Contract.objects.filter(connection=existing.connection).count() == 1

    def test_tenant_change_ends_the_previous_contract_the_same_day(self):
        existing = ContractFactory(valid_from=dt.date(2026, 1, 1))
        newcomer = AccountFactory(network=existing.account.network)

        new = contract_move_in(
            account=newcomer,
            connection=existing.connection,
            move_in_on=dt.date(2026, 5, 15),
            end_previous=True,
        )

        existing.refresh_from_db()
        assert existing.valid_to == dt.date(2026, 5, 15)
        assert new.valid_from == dt.date(2026, 5, 15)

    def test_account_of_another_network_is_refused(self):
        account = AccountFactory()
        connection = ServiceConnectionFactory()  # another network

        with pytest.raises(UnableToMoveIn) as caught:
            contract_move_in(account=account, connection=connection, move_in_on=dt.date(2026, 1, 1))

        assert caught.value.errors[0].code == "network_mismatch"
        assert caught.value.errors[0].field == "connection"

    def test_disconnected_connection_and_closed_account_are_both_reported(self):
        network = NetworkFactory()
        account = AccountFactory(network=network, status=Account.Status.CLOSED)
        connection = ServiceConnectionFactory(
            network=network,
            status=ServiceConnection.Status.DISCONNECTED,
            disconnected_on=dt.date(2025, 1, 1),
        )

        with pytest.raises(UnableToMoveIn) as caught:
            contract_move_in(account=account, connection=connection, move_in_on=dt.date(2026, 1, 1))

        assert {e.code for e in caught.value.errors} == {"disconnected", "account_not_active"}


class TestContractMoveOut:
    def test_sets_the_first_day_no_longer_supplied(self):
        contract = ContractFactory(valid_from=dt.date(2026, 1, 1))

        contract_move_out(contract=contract, move_out_on=dt.date(2026, 7, 1))

        contract.refresh_from_db()
        assert contract.valid_to == dt.date(2026, 7, 1)

    def test_move_out_before_move_in_is_refused(self):
        contract = ContractFactory(valid_from=dt.date(2026, 1, 1))

        with pytest.raises(UnableToMoveOut, match="must be after move-in"):
            contract_move_out(contract=contract, move_out_on=dt.date(2026, 1, 1))

    def test_move_out_of_an_ended_contract_is_refused(self):
        contract = ContractFactory(valid_from=dt.date(2026, 1, 1), valid_to=dt.date(2026, 3, 1))

        with pytest.raises(UnableToMoveOut, match="already ended"):
            contract_move_out(contract=contract, move_out_on=dt.date(2026, 4, 1))

    def test_adjacent_contracts_do_not_overlap(self):
        first = ContractFactory(valid_from=dt.date(2026, 1, 1), valid_to=dt.date(2026, 6, 1))
        second = AccountFactory(network=first.account.network)

        contract = contract_move_in(
            account=second, connection=first.connection, move_in_on=dt.date(2026, 6, 1)
        )

        assert contract.pk is not None


@pytest.mark.postgres
class TestContractDatabaseConstraints:
    """The database refuses what validation would, even when validation is bypassed."""

    def test_exclusion_constraint_refuses_overlap(self):
        existing = ContractFactory(valid_from=dt.date(2026, 1, 1), valid_to=dt.date(2026, 12, 1))
        other = AccountFactory(network=existing.account.network)

        with (
            pytest.raises(IntegrityError, match="contract_no_overlap_per_connection"),
            transaction.atomic(),
        ):
            Contract.objects.create(
                account=other, connection=existing.connection, valid_from=dt.date(2026, 11, 30)
            )

    def test_open_ended_contract_overlaps_everything_after_it(self):
        existing = ContractFactory(valid_from=dt.date(2026, 1, 1))
        other = AccountFactory(network=existing.account.network)

        with pytest.raises(IntegrityError), transaction.atomic():
            Contract.objects.create(
                account=other,
                connection=existing.connection,
                valid_from=dt.date(2030, 1, 1),
                valid_to=dt.date(2031, 1, 1),
            )

    def test_check_constraint_refuses_an_end_before_the_start(self):
        contract = ContractFactory.build(
            valid_from=dt.date(2026, 5, 1), valid_to=dt.date(2026, 4, 1)
        )
        contract.account.network.save()
        contract.account.customer.save()
        contract.account.save()
        contract.connection.building.save()
        contract.connection.network = contract.account.network
        contract.connection.save()
        contract.account = contract.account
        contract.connection = contract.connection

        with pytest.raises(IntegrityError, match="contract_ends_after_start"), transaction.atomic():
            contract.save()
