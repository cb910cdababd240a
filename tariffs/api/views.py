"""Staff API for tariffs, plant data, operating cost and price caps.

Each write goes through one service; approval and publication additionally need the
``tariffs.approve_tariffversion`` permission (tariff managers only).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from heatutility.errors import NotFound
from heatutility.permissions import HasPermission
from heatutility.uploads import upload_read, upload_text
from tariffs import models, services
from tariffs.api import serializers as s
from tariffs.plots import PLOTS, render_cap_plot, render_plot
from tariffs.selectors import tariff_spec_for_version
from tariffs.simulation import price_examples, tariff_version_impact

APPROVER = HasPermission.of("tariffs.approve_tariffversion")


class TariffViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    queryset = models.Tariff.objects.select_related("network")
    serializer_class = s.TariffSerializer
    filterset_fields = ["network", "is_default"]
    search_fields = ["code", "name"]


@extend_schema_view(
    list=extend_schema(summary="List tariff versions"),
    create=extend_schema(
        summary="Create a draft version",
        examples=[
            OpenApiExample(
                "HOFOR-style draft",
                value={
                    "tariff": 1,
                    "valid_from": "2027-01-01",
                    "vat_rate": "0.25",
                    "prices_include_vat": False,
                    "components": [
                        {
                            "type": "banded",
                            "code": "capacity",
                            "description": "Capacity charge",
                            "basis": "capacity",
                            "unit": "kW",
                            "bands": [{"unit_price": "210.91"}],
                        },
                        {
                            "type": "energy",
                            "code": "energy",
                            "description": "Energy charge",
                            "unit": "MWh",
                            "price": "592.52",
                        },
                    ],
                },
            )
        ],
    ),
)
class TariffVersionViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    queryset = models.TariffVersion.objects.select_related("tariff__network")
    serializer_class = s.TariffVersionSerializer
    filterset_fields = ["tariff", "status"]
    ordering_fields = ["valid_from", "number"]

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.tariff_version_create(
            tariff=data["tariff"],
            valid_from=data["valid_from"],
            valid_to=data.get("valid_to"),
            components=data["components"],
            prices_include_vat=data.get("prices_include_vat", False),
            vat_rate=data.get("vat_rate", models.TariffVersion._meta.get_field("vat_rate").default),
            notes=data.get("notes", ""),
        )

    @extend_schema(
        request=s.TariffVersionDraftUpdateSerializer,
        responses=s.TariffVersionSerializer,
        summary="Change a draft (approved versions never change)",
    )
    def partial_update(self, request, pk=None):
        body = s.TariffVersionDraftUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = services.tariff_version_update_draft(
            version=self.get_object(), **body.validated_data
        )
        return Response(s.TariffVersionSerializer(version).data)

    @extend_schema(
        request=None,
        responses=s.TariffVersionSerializer,
        summary="Approve under the price cap",
        description="Tariff managers only. Refused (422, code tariff_above_cap) with one error per "
        "component that exceeds a cap, naming the cap and the excess.",
    )
    @action(detail=True, methods=["post"], permission_classes=[APPROVER])
    def approve(self, request, pk=None):
        version = services.tariff_version_approve(
            version=self.get_object(), user=request.user, now=timezone.now()
        )
        return Response(s.TariffVersionSerializer(version).data)

    @extend_schema(
        request=None, responses=s.TariffVersionSerializer, summary="Publish an approved version"
    )
    @action(detail=True, methods=["post"], permission_classes=[APPROVER])
    def publish(self, request, pk=None):
        version = services.tariff_version_publish(
            version=self.get_object(), user=request.user, now=timezone.now()
        )
        return Response(s.TariffVersionSerializer(version).data)

    @extend_schema(
        request=s.NewVersionSerializer,
        responses={201: s.TariffVersionSerializer},
        summary="Start a change: a draft copy from a date",
    )
    @action(detail=True, methods=["post"], url_path="new-version")
    def new_version(self, request, pk=None):
        body = s.NewVersionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = services.tariff_version_new_from(version=self.get_object(), **body.validated_data)
        return Response(s.TariffVersionSerializer(version).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=s.CapCheckSerializer, summary="Which caps the version's prices exceed")
    @action(detail=True, methods=["get"], url_path="cap-check")
    def cap_check(self, request, pk=None):
        caps, excesses = services.tariff_version_cap_check(version=self.get_object())
        return Response({"caps": [c.pk for c in caps], "excesses": excesses})

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "year", int, description="Calendar year priced (default: year of valid_from)"
            )
        ],
        responses=s.PriceExampleSerializer(many=True),
        summary="Standard price examples (SE and DK reference customers)",
    )
    @action(
        detail=True,
        methods=["get"],
        url_path="price-examples",
        pagination_class=None,
        filter_backends=[],
    )
    def price_examples(self, request, pk=None):
        version = self.get_object()
        query = s.PriceExamplesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        year = query.validated_data.get("year") or version.valid_from.year
        examples = price_examples(spec=tariff_spec_for_version(version), year=year)
        return Response(s.PriceExampleSerializer(examples, many=True).data)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "as_of", OpenApiTypes.DATE, description="Window ends at the start of this month"
            )
        ],
        responses=s.ImpactSerializer,
        summary="Bill changes over the last 12 months of determinants",
    )
    @action(detail=True, methods=["get"])
    def impact(self, request, pk=None):
        query = s.ImpactQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        version = self.get_object()
        # today in the network's zone: its months, not the server's, have ended
        as_of = query.validated_data.get("as_of") or timezone.localdate(
            timezone=ZoneInfo(version.tariff.network.time_zone)
        )
        return Response(
            s.ImpactSerializer(tariff_version_impact(version=version, as_of=as_of)).data
        )


class TariffAssignmentViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    queryset = models.TariffAssignment.objects.select_related("tariff")
    serializer_class = s.TariffAssignmentSerializer
    filterset_fields = ["tariff", "connection"]

    @extend_schema(
        request=s.BulkAssignSerializer,
        responses={200: OpenApiTypes.OBJECT},
        summary="Put connections on a tariff from a date",
    )
    @action(detail=False, methods=["post"])
    def assign(self, request):
        body = s.BulkAssignSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        created = services.tariff_assign(**body.validated_data)
        return Response({"created": created})


class PlantViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    queryset = models.Plant.objects.all()
    serializer_class = s.PlantSerializer
    filterset_fields = ["network"]


class PlantUnitViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    queryset = models.PlantUnit.objects.select_related("plant")
    serializer_class = s.PlantUnitSerializer
    filterset_fields = ["plant", "kind"]


class ElectricityChargeViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    queryset = models.ElectricityCharge.objects.all()
    serializer_class = s.ElectricityChargeSerializer
    filterset_fields = ["price_area", "kind"]

    @extend_schema(
        summary="Add one effective-dated charge (overlaps refused, an open predecessor closed); "
        "files go through plant-data-imports kind=electricity_charges"
    )
    def create(self, request):
        from tariffs.imports import ChargeRow

        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        d = body.validated_data
        row = ChargeRow(
            row=None,
            price_area=d["price_area"],
            kind=d["kind"],
            valid_from=d["valid_from"],
            valid_to=d.get("valid_to"),
            hour_from=d.get("hour_from", 0),
            hour_to=d.get("hour_to", 24),
            amount_per_mwh=d["amount_per_mwh"],
            currency=d.get("currency", "DKK"),
        )
        services.electricity_charges_store(rows=[row])
        stored = models.ElectricityCharge.objects.get(
            price_area=row.price_area,
            kind=row.kind,
            valid_from=row.valid_from,
            hour_from=row.hour_from,
            hour_to=row.hour_to,
        )
        return Response(s.ElectricityChargeSerializer(stored).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(
        summary="Hourly operating data of plant units (UTC hours; filter by unit and hour_start)"
    )
)
class UnitHourViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = models.UnitHour.objects.all()
    serializer_class = s.UnitHourSerializer
    filterset_fields = {"unit": ["exact"], "hour_start": ["gte", "lt"], "data_import": ["exact"]}


@extend_schema_view(
    list=extend_schema(
        summary="Hourly day-ahead prices (UTC hours; filter by price_area and hour_start)"
    )
)
class SpotPriceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = models.SpotPrice.objects.all()
    serializer_class = s.SpotPriceSerializer
    filterset_fields = {
        "price_area": ["exact"],
        "hour_start": ["gte", "lt"],
        "data_import": ["exact"],
    }


class DataImportViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = models.DataImport.objects.select_related("unit")
    serializer_class = s.DataImportSerializer
    filterset_fields = ["kind", "status", "unit", "price_area"]
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(
        request=s.DataImportCreateSerializer,
        responses={202: s.DataImportSerializer},
        summary="Upload an hourly CSV (SCADA or ENTSO-E export; day-ahead prices also at 15 minutes, "
        "stored as hourly means); imported by a Celery task",
    )
    def create(self, request):
        body = s.DataImportCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        upload = data.get("file")
        content = upload_text(upload_read(upload)) if upload else data["content"]
        record = services.data_import_create(
            kind=data["kind"],
            content=content,
            filename=getattr(upload, "name", "") or "",
            unit=data.get("unit"),
            price_area=data.get("price_area", ""),
            currency=data.get("currency", "DKK"),
            time_zone=data.get("time_zone", "Europe/Copenhagen"),
        )
        record.refresh_from_db()
        return Response(s.DataImportSerializer(record).data, status=status.HTTP_202_ACCEPTED)


def _png(content: bytes) -> HttpResponse:
    return HttpResponse(content, content_type="image/png")


class OperatingCostViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    queryset = models.OperatingCost.objects.select_related("network")
    serializer_class = s.OperatingCostSerializer
    filterset_fields = ["network"]

    @extend_schema(
        request=s.OperatingCostComputeSerializer,
        responses={201: s.OperatingCostSerializer},
        summary="Compute the plant's operating cost over a period",
    )
    def create(self, request):
        body = s.OperatingCostComputeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        cost = services.operating_cost_compute(now=timezone.now(), **body.validated_data)
        return Response(s.OperatingCostSerializer(cost).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[OpenApiParameter("kind", str, OpenApiParameter.PATH, enum=list(PLOTS))],
        responses={(200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY)},
        summary="Plot: hourly COP measured vs modelled, electricity price, cost per MWh",
    )
    @action(detail=True, methods=["get"], url_path=r"plots/(?P<kind>[a-z_]+)")
    def plot(self, request, pk=None, kind=None):
        return _png(render_plot(cost=self.get_object(), kind=kind))


class PriceCapViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = models.PriceCap.objects.select_related("network")
    serializer_class = s.PriceCapSerializer
    filterset_fields = ["network", "method", "status"]

    @extend_schema(
        request=s.PriceCapComputeSerializer,
        responses={201: s.PriceCapSerializer},
        summary="Compute a draft cap by a method, keeping every input and figure",
    )
    def create(self, request):
        body = s.PriceCapComputeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        cap = services.price_cap_compute(now=timezone.now(), **body.validated_data)
        return Response(s.PriceCapSerializer(cap).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=None,
        responses=s.PriceCapSerializer,
        summary="Adopt the cap; versions_above_cap names the versions in force above it",
    )
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[HasPermission.of("tariffs.change_pricecap")],
    )
    def adopt(self, request, pk=None):
        return Response(
            s.PriceCapSerializer(
                services.price_cap_adopt(cap=self.get_object(), now=timezone.now())
            ).data
        )

    @extend_schema(
        responses={
            200: OpenApiTypes.OBJECT,
            422: OpenApiResponse(
                description="The stored inputs can no longer be computed "
                "(e.g. the network now bills in another currency); the reason, "
                "itemised."
            ),
        },
        summary="Recompute from the stored inputs and compare",
    )
    @action(detail=True, methods=["get"])
    def recompute(self, request, pk=None):
        diffs = services.price_cap_recompute(cap=self.get_object())
        return Response(
            {
                "identical": not diffs,
                "differences": {k: [str(a), str(b)] for k, (a, b) in diffs.items()},
            }
        )

    @extend_schema(
        parameters=[OpenApiParameter("kind", str, OpenApiParameter.PATH, enum=["cap", *PLOTS])],
        responses={(200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY)},
        summary="Plot: cost per MWh sold vs the energy cap (`cap`), or a plot of the cap's cost run",
    )
    @action(detail=True, methods=["get"], url_path=r"plots/(?P<kind>[a-z_]+)")
    def plot(self, request, pk=None, kind=None):
        cap = self.get_object()
        if kind == "cap":
            return _png(render_cap_plot(cap=cap))
        if cap.operating_cost_id is None:
            raise NotFound(
                f"Price cap #{cap.pk} has no operating-cost run; only the 'cap' plot exists."
            )
        return _png(render_plot(cost=cap.operating_cost, kind=kind))

    @extend_schema(
        parameters=[OpenApiParameter("as", str, enum=["json", "csv"])],
        responses={
            (200, "text/csv"): OpenApiTypes.STR,
            (200, "application/json"): OpenApiTypes.OBJECT,
            400: OpenApiResponse(description="`as` is neither json nor csv"),
        },
        summary="Export inputs, figures and limits for the regulator",
    )
    @action(detail=True, methods=["get"])
    def export(self, request, pk=None):
        fmt = request.query_params.get("as", "json")
        if fmt not in ("json", "csv"):  # not a JSON file named as asked (?as=xml)
            raise ValidationError({"as": [f"Export as json or csv, not {fmt!r}."]})
        cap = self.get_object()
        body = services.price_cap_export(cap=cap, fmt=fmt)
        response = HttpResponse(
            body, content_type="text/csv; charset=utf-8" if fmt == "csv" else "application/json"
        )
        response["Content-Disposition"] = f'attachment; filename="price-cap-{cap.pk}.{fmt}"'
        return response
