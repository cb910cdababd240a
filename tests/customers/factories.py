import datetime as dt
from decimal import Decimal

import factory

from customers import models


class NetworkFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Network
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"net-{n}")
    name = factory.Sequence(lambda n: f"Network {n}")
    time_zone = "Europe/Copenhagen"
    currency = "DKK"
    price_area = "DK2"


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Customer

    kind = models.Customer.Kind.PERSON
    name = factory.Sequence(lambda n: f"Customer {n}")
    email = factory.Sequence(lambda n: f"customer{n}@example.org")


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Account

    number = factory.Sequence(lambda n: f"{100000 + n}")
    customer = factory.SubFactory(CustomerFactory)
    network = factory.SubFactory(NetworkFactory)
    billing_street = factory.Sequence(lambda n: f"Havnegade {n}")
    billing_postal_code = "2300"
    billing_city = "København S"


class BuildingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Building

    street = factory.Sequence(lambda n: f"Strandvejen {n}")
    postal_code = "2300"
    city = "København S"
    heated_area_m2 = Decimal("130.00")
    dwellings = 1
    use = models.Building.Use.HOUSE
    year_built = 1975


class ServiceConnectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.ServiceConnection

    number = factory.Sequence(lambda n: f"SC{200000 + n}")
    building = factory.SubFactory(BuildingFactory)
    network = factory.SubFactory(NetworkFactory)
    contracted_capacity_kw = Decimal("10.00")
    status = models.ServiceConnection.Status.ACTIVE
    connected_on = dt.date(2020, 1, 1)


class BuildingInterfaceUnitFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.BuildingInterfaceUnit

    connection = factory.SubFactory(ServiceConnectionFactory)
    maker = "Danfoss"
    model = "Termix VX"
    serial = factory.Sequence(lambda n: f"BIU{300000 + n}")
    kind = models.BuildingInterfaceUnit.Kind.INDIRECT
    installed_on = dt.date(2020, 1, 1)


class ContractFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Contract

    account = factory.SubFactory(AccountFactory)
    connection = factory.SubFactory(
        ServiceConnectionFactory, network=factory.SelfAttribute("..account.network")
    )
    valid_from = dt.date(2024, 1, 1)
    valid_to = None
