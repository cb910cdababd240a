"""Staff API for heat meters and installations (install, remove, exchange, correct)."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404  # a non-integer id is a 404 too
from rest_framework.response import Response

from customers.models import BuildingInterfaceUnit
from heatutility.api import BoundedDateTimeField, ModelValidationMixin
from heatutility.permissions import HasPermission, RequirePermissionMixin
from metering import installations, meters, models


class HeatMeterSerializer(ModelValidationMixin, serializers.ModelSerializer):
    class Meta:
        model = models.HeatMeter
        fields = [
            "id",
            "maker",
            "model",
            "serial",
            "register_unit",
            "resolution",
            "register_max",
            "volume_register_max",
            "volume_resolution",
            "accuracy_class",
            "flow_sensor_position",
            "nominal_flow_m3h",
            "verification_due_on",
        ]
        extra_kwargs = {
            "register_unit": {
                "help_text": "The unit the energy register counts in; fixed once the meter "
                "has readings."
            }
        }


class MeterInstallationSerializer(serializers.ModelSerializer):
    class Meta:
        model = models.MeterInstallation
        fields = [
            "id",
            "meter",
            "unit",
            "installed_at",
            "removed_at",
            "initial_energy_kwh",
            "initial_volume_m3",
            "final_energy_kwh",
            "final_volume_m3",
            "initial_flow_temp_m3c",
            "initial_return_temp_m3c",
            "final_flow_temp_m3c",
            "final_return_temp_m3c",
            "reason",
        ]
        read_only_fields = fields


def _register_unit(register: str, meter: str) -> serializers.ChoiceField:
    """The unit ``meter``'s energy ``register`` in the request is read in; optional (kWh,
    as the API took registers before it took a unit).  Converted by the service
    (``metering.installations``)."""
    return serializers.ChoiceField(
        choices=models.EnergyUnit.choices,
        required=False,
        help_text=f"The unit `{register}` is given in, as {meter}'s display shows it. It "
        f"must be {meter}'s `register_unit` (else 422 `unit_mismatch` on this field, and "
        "nothing is stored); the register is stored in kWh (× 1,000 for MWh, ÷ 1,000 for "
        "Wh, × 1,000/3.6 for GJ, rounded half up to 6 decimals, as ingestion converts "
        "readings). Optional: without it the register is in kWh.",
    )


def _temperature_register(help_text: str) -> serializers.DecimalField:
    """An optional volume-weighted temperature register, m³·°C."""
    return serializers.DecimalField(
        max_digits=20,
        decimal_places=4,
        min_value=0,
        required=False,
        allow_null=True,
        default=None,
        help_text=help_text,
    )


class InstallSerializer(serializers.Serializer):
    meter = serializers.PrimaryKeyRelatedField(queryset=models.HeatMeter.objects.all())
    unit = serializers.PrimaryKeyRelatedField(queryset=BuildingInterfaceUnit.objects.all())
    installed_at = BoundedDateTimeField(help_text="With offset, e.g. 2026-03-01T10:00:00+01:00.")
    register_unit = _register_unit("initial_energy_kwh", "the meter")
    initial_energy_kwh = serializers.DecimalField(
        max_digits=20,
        decimal_places=6,
        min_value=0,
        default=0,
        help_text="The energy register at installation: kWh, or in `register_unit`.",
    )
    initial_volume_m3 = serializers.DecimalField(
        max_digits=16, decimal_places=4, min_value=0, default=0
    )
    initial_flow_temp_m3c = _temperature_register(
        "Flow temperature register (m³·°C) at installation; optional."
    )
    initial_return_temp_m3c = _temperature_register(
        "Return temperature register (m³·°C) at installation; optional."
    )
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class RemoveSerializer(serializers.Serializer):
    removed_at = BoundedDateTimeField()
    register_unit = _register_unit("final_energy_kwh", "the meter")
    final_energy_kwh = serializers.DecimalField(
        max_digits=20,
        decimal_places=6,
        min_value=0,
        help_text="The energy register at removal: kWh, or in `register_unit`.",
    )
    final_volume_m3 = serializers.DecimalField(max_digits=16, decimal_places=4, min_value=0)
    final_flow_temp_m3c = _temperature_register(
        "Flow temperature register (m³·°C) at removal; optional (without it the meter's "
        "volume-weighted temperatures end at its last reading)."
    )
    final_return_temp_m3c = _temperature_register(
        "Return temperature register (m³·°C) at removal; optional."
    )
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class ExchangeSerializer(serializers.Serializer):
    unit = serializers.PrimaryKeyRelatedField(queryset=BuildingInterfaceUnit.objects.all())
    # The installation's id, not the old meter's serial: the other references here are
    # ids, a serial is unique only per maker, and an id stays exact when the same meter
    # comes back to the unit later (a stale request must not close that installation).
    old_installation = serializers.PrimaryKeyRelatedField(
        queryset=models.MeterInstallation.objects.all(),
        required=False,
        allow_null=True,
        default=None,
        help_text="Id of the unit's installation whose meter is being replaced (the open one "
        "in `GET meter-installations/?unit=…`), and whose final registers these are. "
        "Optional; given, the exchange is refused with 409 `installation_changed` and "
        "nothing changes if another exchange or a removal has ended that installation "
        "since. Without it the unit's current meter is replaced, whichever it is.",
    )
    new_meter = serializers.PrimaryKeyRelatedField(queryset=models.HeatMeter.objects.all())
    exchanged_at = BoundedDateTimeField()
    # each meter's energy register in its own unit: the two meters may count in two
    old_register_unit = _register_unit("old_final_energy_kwh", "the old meter")
    new_register_unit = _register_unit("new_initial_energy_kwh", "the new meter")
    old_final_energy_kwh = serializers.DecimalField(
        max_digits=20,
        decimal_places=6,
        min_value=0,
        help_text="The old meter's energy register at removal: kWh, or in `old_register_unit`.",
    )
    old_final_volume_m3 = serializers.DecimalField(max_digits=16, decimal_places=4, min_value=0)
    new_initial_energy_kwh = serializers.DecimalField(
        max_digits=20,
        decimal_places=6,
        min_value=0,
        default=0,
        help_text="The new meter's energy register at installation: kWh, or in "
        "`new_register_unit`.",
    )
    new_initial_volume_m3 = serializers.DecimalField(
        max_digits=16, decimal_places=4, min_value=0, default=0
    )
    old_final_flow_temp_m3c = _temperature_register(
        "The old meter's flow temperature register (m³·°C) at removal; optional."
    )
    old_final_return_temp_m3c = _temperature_register(
        "The old meter's return temperature register (m³·°C) at removal; optional."
    )
    new_initial_flow_temp_m3c = _temperature_register(
        "The new meter's flow temperature register (m³·°C) at installation; optional."
    )
    new_initial_return_temp_m3c = _temperature_register(
        "The new meter's return temperature register (m³·°C) at installation; optional."
    )
    reason = serializers.CharField(required=False, allow_blank=True, default="exchange")


def _correction(help_text: str, *, max_digits: int, decimal_places: int):
    """A register to correct; optional: a register not sent stays as recorded."""
    return serializers.DecimalField(
        max_digits=max_digits,
        decimal_places=decimal_places,
        min_value=0,
        required=False,
        help_text=help_text,
    )


class CorrectSerializer(serializers.Serializer):
    """The registers of ``metering.installations.meter_installation_correct``: each
    optional, the final ones only for a removed installation; the reason required."""

    register_unit = _register_unit("initial_energy_kwh`/`final_energy_kwh", "the meter")
    initial_energy_kwh = _correction(
        "The energy register at installation: kWh, or in `register_unit`.",
        max_digits=20,
        decimal_places=6,
    )
    initial_volume_m3 = _correction(
        "The volume register at installation, m³.", max_digits=16, decimal_places=4
    )
    initial_flow_temp_m3c = _correction(
        "Flow temperature register (m³·°C) at installation.", max_digits=20, decimal_places=4
    )
    initial_return_temp_m3c = _correction(
        "Return temperature register (m³·°C) at installation.", max_digits=20, decimal_places=4
    )
    final_energy_kwh = _correction(
        "The energy register at removal: kWh, or in `register_unit`. Removed "
        "installations only (else 422 `not_removed`).",
        max_digits=20,
        decimal_places=6,
    )
    final_volume_m3 = _correction(
        "The volume register at removal, m³; removed installations only.",
        max_digits=16,
        decimal_places=4,
    )
    final_flow_temp_m3c = _correction(
        "Flow temperature register (m³·°C) at removal; removed installations only.",
        max_digits=20,
        decimal_places=4,
    )
    final_return_temp_m3c = _correction(
        "Return temperature register (m³·°C) at removal; removed installations only.",
        max_digits=20,
        decimal_places=4,
    )
    clear = serializers.ListField(
        child=serializers.ChoiceField(choices=installations.CLEARABLE),
        required=False,
        help_text="Optional registers recorded by mistake, emptied (the m³·°C registers: a "
        "meter without them, or one reset); the final ones only on a removed installation.",
    )
    installed_at = BoundedDateTimeField(
        required=False,
        help_text="The installation time. An exchange moves as one: the removal of the "
        "meter it replaced at that instant moves with it.",
    )
    removed_at = BoundedDateTimeField(
        required=False,
        help_text="The removal time; removed installations only (else 422 `not_removed`). "
        "An exchange moves as one: the installation of the meter that replaced it at that "
        "instant moves with it.",
    )
    reason = serializers.CharField(
        max_length=200, help_text="Why the installation is corrected; kept in the history."
    )


_METER_CHANGE = extend_schema(
    description="A change goes through `metering.meters.meter_update`: the register unit "
    "is fixed once the meter has readings (422 `register_unit_fixed`; correct the maximum "
    "and resolution in that unit), a register maximum cannot be set below a register the "
    "meter has stored, in a reading or an installation's initial or final registers "
    "(422 `register_max_below_stored` on `register_max` / `volume_register_max`), and a "
    "change of `register_unit`, `resolution`, "
    "`register_max`, `volume_resolution`, `volume_register_max` or `nominal_flow_m3h` "
    "revalidates the meter's readings and the boundary registers they feed from its "
    "first installation (in the background, after the answer)."
)


_METER_DELETE = extend_schema(
    description="Deletes a meter entered by mistake, through `metering.meters.meter_delete`. "
    "A meter with readings, installations, VEE findings, reading edits or reading "
    "conflicts is kept: 409 `unable_to_delete_meter`, each reason itemised (`has_readings`, "
    "`has_installations`, `has_findings`, `has_edits`, `has_reading_conflicts`). A meter "
    "taken out of service is removed from its unit instead (`meter-installations/{id}/remove/`)."
)


@extend_schema_view(update=_METER_CHANGE, partial_update=_METER_CHANGE, destroy=_METER_DELETE)
class HeatMeterViewSet(viewsets.ModelViewSet):
    queryset = models.HeatMeter.objects.all()
    serializer_class = HeatMeterSerializer
    search_fields = ["serial", "maker", "model"]
    filterset_fields = ["maker", "register_unit", "accuracy_class"]
    ordering_fields = ["serial", "verification_due_on"]

    def perform_update(self, serializer):
        serializer.instance = meters.meter_update(
            meter=serializer.instance, values=serializer.validated_data, actor=self.request.user
        )

    def perform_destroy(self, instance):
        meters.meter_delete(meter=instance, actor=self.request.user)


CHANGE_INSTALLATION = HasPermission.of("metering.change_meterinstallation")


class MeterInstallationViewSet(
    RequirePermissionMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    queryset = models.MeterInstallation.objects.select_related("meter", "unit")
    serializer_class = MeterInstallationSerializer
    filterset_fields = ["meter", "unit", "unit__connection"]
    ordering_fields = ["installed_at"]

    @extend_schema(
        request=InstallSerializer,
        responses={201: MeterInstallationSerializer},
        description="Install `meter` in `unit` at `installed_at` with its initial registers "
        "(energy in kWh, or in the meter's own `register_unit`). Registers the meter's "
        "display cannot show are refused (422, an item per field: `above_register_max`, "
        "`off_resolution` for a value between two steps of its `resolution` or "
        "`volume_resolution`), as are initial registers above a reading already stored "
        "since `installed_at` (`initial_above_first_read`), and an installation overlapping "
        "one in another unit of the same connection, which has one meter at a time "
        "(`connection_has_meter` on `unit`, naming that meter and unit); nothing is stored "
        "on a refusal. "
        "The meter's readings are revalidated from `installed_at` after the answer.",
    )
    @action(detail=False, methods=["post"])
    def install(self, request):
        self.require("metering.add_meterinstallation")
        body = InstallSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        installation = installations.meter_install(actor=request.user, **body.validated_data)
        return Response(
            MeterInstallationSerializer(installation).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(request=RemoveSerializer, responses=MeterInstallationSerializer)
    # a change of the installation, not an addition: the change permission alone (the
    # default's POST → add would ask for both)
    @action(detail=True, methods=["post"], permission_classes=[CHANGE_INSTALLATION])
    def remove(self, request, pk=None):
        body = RemoveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        installation = installations.meter_remove(
            installation=get_object_or_404(self.get_queryset(), pk=pk),
            actor=request.user,
            **body.validated_data,
        )
        return Response(MeterInstallationSerializer(installation).data)

    @extend_schema(
        request=CorrectSerializer,
        responses=MeterInstallationSerializer,
        description="Correct registers or times typed wrong at the installation or the "
        "removal (12,345 kWh for 1,234; the 1st for the 15th): only the fields sent change; "
        "the final registers and `removed_at` only on a removed installation (422 "
        "`not_removed`); `clear` empties optional m³·°C registers recorded by mistake "
        "(`not_clearable`, `given_and_cleared`). A moved time moves an exchange as one (the "
        "other meter's removal or installation at that instant moves with it). `reason` is "
        "required and kept with "
        "the user in the installation's history. The corrected values are checked as at the "
        "installation and the removal, a moved time with the registers against the readings "
        "on its new side (422, an item per field: `above_register_max`, `off_resolution`, "
        "`initial_above_first_read`, `final_below_last_read`, `final_below_initial`, "
        "`removed_before_installed`, `exchange_out_of_order`, `unit_mismatch`, "
        "`connection_has_meter` for a time moved into another unit's installation on the "
        "same connection; an overlap with another installation is refused too), and "
        "nothing changes on a refusal. The "
        "readings of every meter concerned are revalidated from the earliest time involved "
        "after the answer: VEE findings and boundary registers follow, and billing re-rates "
        "the periods whose registers changed.",
    )
    @action(detail=True, methods=["post"], permission_classes=[CHANGE_INSTALLATION])
    def correct(self, request, pk=None):
        body = CorrectSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        installation = installations.meter_installation_correct(
            installation=get_object_or_404(self.get_queryset(), pk=pk),
            actor=request.user,
            **body.validated_data,
        )
        return Response(MeterInstallationSerializer(installation).data)

    @extend_schema(
        request=ExchangeSerializer,
        responses={201: MeterInstallationSerializer(many=True)},
        description="Replace the meter of `unit` at `exchanged_at`: closes its installation "
        "with the old meter's final registers and opens the new meter's; answers both "
        "(old, new). Name the installation being replaced in `old_installation` so that "
        "an exchange someone else recorded meanwhile is not undone with these registers "
        "(409 `installation_changed`). Energy registers are in kWh, or each in its meter's "
        "own register unit: `old_register_unit` for `old_final_energy_kwh`, "
        "`new_register_unit` for `new_initial_energy_kwh`. The new meter is refused while "
        "another unit of the same connection holds a meter (422 `connection_has_meter`).",
    )
    # the two installations as a plain list, not a page of the installation list
    @action(detail=False, methods=["post"], pagination_class=None, filter_backends=[])
    def exchange(self, request):
        self.require("metering.change_meterinstallation")
        self.require("metering.add_meterinstallation")
        body = ExchangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        old, new = installations.meter_exchange(actor=request.user, **body.validated_data)
        return Response(
            MeterInstallationSerializer([old, new], many=True).data, status=status.HTTP_201_CREATED
        )
