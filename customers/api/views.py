"""Staff API for customers and their connections.

Reference data (networks, customers, buildings, connections, interface units) is plain
CRUD guarded by the model's own validation; contracts change only through the move-in /
move-out services.
"""

from django.db.models import ProtectedError
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from customers import models, services
from customers.api import serializers
from heatutility.errors import ConflictError
from heatutility.permissions import HasPermission, RequirePermissionMixin


class ProtectedDeleteMixin:
    def perform_destroy(self, instance):
        try:
            instance.delete()
        except ProtectedError as exc:
            raise ConflictError(
                f"{instance._meta.verbose_name.capitalize()} {instance} is still referenced and cannot be deleted."
            ) from exc


@extend_schema_view(list=extend_schema(summary="List networks"))
class NetworkViewSet(ProtectedDeleteMixin, viewsets.ModelViewSet):
    queryset = models.Network.objects.all()
    serializer_class = serializers.NetworkSerializer
    search_fields = ["code", "name"]
    filterset_fields = ["currency", "price_area"]


class CustomerViewSet(ProtectedDeleteMixin, viewsets.ModelViewSet):
    queryset = models.Customer.objects.all()
    serializer_class = serializers.CustomerSerializer
    search_fields = ["name", "email", "organisation_number", "accounts__number"]
    filterset_fields = ["kind"]


class AccountViewSet(ProtectedDeleteMixin, viewsets.ModelViewSet):
    queryset = models.Account.objects.select_related("customer", "network")
    serializer_class = serializers.AccountSerializer
    search_fields = ["number", "customer__name", "billing_street", "billing_city"]
    filterset_fields = ["network", "status", "customer"]
    ordering_fields = ["number", "created_at"]

    @extend_schema(
        request=serializers.AccountStatusSerializer, responses=serializers.AccountSerializer
    )
    # a change of the account, not an addition: the change permission (the default's
    # POST would ask for add_account)
    @action(
        detail=True,
        methods=["post"],
        url_path="status",
        permission_classes=[HasPermission.of("customers.change_account")],
    )
    def set_status(self, request, pk=None):
        """Suspend, reactivate or close an account (closing needs all contracts ended)."""
        body = serializers.AccountStatusSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        account = services.account_set_status(
            account=self.get_object(), actor=request.user, **body.validated_data
        )
        return Response(serializers.AccountSerializer(account).data)


class BuildingViewSet(RequirePermissionMixin, ProtectedDeleteMixin, viewsets.ModelViewSet):
    queryset = models.Building.objects.all()
    serializer_class = serializers.BuildingSerializer
    search_fields = ["street", "postal_code", "city", "register_id"]
    filterset_fields = ["use", "city"]

    @extend_schema(
        methods=["get"],
        responses=serializers.AreaChangeSerializer(many=True),
        summary="The building's heated area changes",
    )
    @extend_schema(
        methods=["post"],
        request=serializers.AreaChangeSerializer,
        responses={201: serializers.AreaChangeSerializer},
        summary="Change the heated area from a day on (back-dated: billed periods are re-rated)",
    )
    @action(
        detail=True,
        methods=["get", "post"],
        url_path="area-changes",
        pagination_class=None,
        filter_backends=[],
    )
    def area_changes(self, request, pk=None):
        building = self.get_object()
        return _dated_changes(
            self,
            request,
            serializer=serializers.AreaChangeSerializer,
            changes=building.area_changes.all(),
            model="areachange",
            context={"building": building},
            record=lambda **data: services.building_area_change(building=building, **data),
        )


class ServiceConnectionViewSet(RequirePermissionMixin, ProtectedDeleteMixin, viewsets.ModelViewSet):
    queryset = models.ServiceConnection.objects.select_related("building", "network")
    serializer_class = serializers.ServiceConnectionSerializer
    search_fields = ["number", "building__street", "building__city"]
    filterset_fields = ["network", "status", "building"]

    @extend_schema(
        methods=["get"],
        responses=serializers.CapacityChangeSerializer(many=True),
        summary="The connection's contracted capacity changes",
    )
    @extend_schema(
        methods=["post"],
        request=serializers.CapacityChangeSerializer,
        responses={201: serializers.CapacityChangeSerializer},
        summary="Change the contracted capacity from a day on (back-dated: billed periods are re-rated)",
    )
    @action(
        detail=True,
        methods=["get", "post"],
        url_path="capacity-changes",
        pagination_class=None,
        filter_backends=[],
    )
    def capacity_changes(self, request, pk=None):
        connection = self.get_object()
        return _dated_changes(
            self,
            request,
            serializer=serializers.CapacityChangeSerializer,
            changes=connection.capacity_changes.all(),
            model="capacitychange",
            context={"connection": connection},
            record=lambda **data: services.connection_capacity_change(
                connection=connection, **data
            ),
        )


def _dated_changes(view, request, *, serializer, changes, model, context, record):
    """GET: the dated changes (capacity, area) of one object; POST: record one through
    its service (``record``), 201 with it.  Each needs the model's own permission."""
    if request.method == "GET":
        view.require(f"customers.view_{model}")
        return Response(serializer(changes, many=True).data)
    view.require(f"customers.add_{model}")
    body = serializer(data=request.data, context=context)
    body.is_valid(raise_exception=True)
    change = record(actor=request.user, **body.validated_data)
    return Response(serializer(change).data, status=status.HTTP_201_CREATED)


class BuildingInterfaceUnitViewSet(ProtectedDeleteMixin, viewsets.ModelViewSet):
    queryset = models.BuildingInterfaceUnit.objects.select_related("connection")
    serializer_class = serializers.BuildingInterfaceUnitSerializer
    search_fields = ["serial", "maker", "model", "connection__number"]
    filterset_fields = ["connection", "kind", "maker"]


class ContractViewSet(
    RequirePermissionMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    queryset = models.Contract.objects.select_related("account", "connection")
    serializer_class = serializers.ContractSerializer
    filterset_fields = ["account", "connection", "connection__network"]
    ordering_fields = ["valid_from"]

    @extend_schema(
        request=serializers.MoveInSerializer,
        responses={201: serializers.ContractSerializer},
        summary="Move in: start a contract",
    )
    @action(detail=False, methods=["post"], url_path="move-in")
    def move_in(self, request):
        self.require("customers.add_contract")
        body = serializers.MoveInSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        contract = services.contract_move_in(actor=request.user, **body.validated_data)
        return Response(
            serializers.ContractSerializer(contract).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(
        request=serializers.MoveOutSerializer,
        responses=serializers.ContractSerializer,
        summary="Move out: end a contract",
    )
    @action(detail=True, methods=["post"], url_path="move-out")
    def move_out(self, request, pk=None):
        self.require("customers.change_contract")
        body = serializers.MoveOutSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        contract = services.contract_move_out(
            contract=self.get_object(), actor=request.user, **body.validated_data
        )
        return Response(serializers.ContractSerializer(contract).data)
