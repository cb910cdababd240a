"""Vendor API: JSON reading batches, CSV files, batch status (see docs/vendor-api.md).

Views are thin: the JSON body is read raw and validated by ``metering.ingest.rows`` (one
fast pass with itemised errors) instead of a DRF serializer per row; the serializers
below describe the shapes for the OpenAPI schema and answer bodies.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import generics, parsers, serializers, status
from rest_framework.generics import get_object_or_404  # a non-integer id is a 404 too
from rest_framework.response import Response
from rest_framework.views import APIView

from heatutility.errors import DomainError, ErrorItem
from heatutility.uploads import upload_read
from metering import selectors
from metering.ingest import batches
from metering.ingest import rows as row_rules
from metering.models import HeatMeter, IngestBatch, MeterVendor
from metering.vendors import IsVendor, VendorKeyAuthentication, VendorRateThrottle

MAX_JSON_BYTES = 8 * 1024 * 1024


class PayloadTooLarge(DomainError):
    status_code = 413
    code = "too_large"


class UnsupportedMediaType(DomainError):
    status_code = 415
    code = "unsupported_media_type"


class VendorKeyScheme(OpenApiAuthenticationExtension):
    target_class = "metering.vendors.VendorKeyAuthentication"
    name = "VendorApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key hu_…` — the key a utility's staff issued to your head-end system.",
        }


def _integers_below(limit: int) -> str:
    """A regular expression for the whole numbers 0 ≤ n < ``limit``, without leading
    zeros (200: ``0|[1-9]\\d?|1\\d{2}``; 10¹³: ``0|[1-9]\\d{0,12}``)."""
    digits = str(limit)

    def any_digits(count: int) -> str:
        return "" if count == 0 else "\\d" if count == 1 else f"\\d{{{count}}}"

    shorter = {1: "0", 2: "0|[1-9]", 3: "0|[1-9]\\d?"}.get(
        len(digits), f"0|[1-9]\\d{{0,{len(digits) - 2}}}"
    )
    alternatives = [shorter]
    for i, digit in enumerate(digits):  # as long as limit: lower at digit i, the rest any
        lowest, highest = (1 if i == 0 else 0), int(digit) - 1
        if highest >= lowest:
            choice = str(lowest) if highest == lowest else f"[{lowest}-{highest}]"
            alternatives.append(digits[:i] + choice + any_digits(len(digits) - i - 1))
    return "|".join(alternatives)


def reading_number_schema(rule: str) -> dict:
    """The schema of a reading's number ``rule``, from the intake's own limits
    (``metering.ingest.rows``): the pattern matches exactly the plain values it takes
    and stores as sent (no sign unless negative values are taken, no exponent, no more
    decimals than the column holds), and the description says the rest."""
    low, high = row_rules.NUMERIC_LIMITS[rule]
    places = row_rules.DECIMAL_PLACES[rule]
    assert low == int(low) <= 0 < high == int(high), rule  # whole bounds, 0 inside
    low, high = int(low), int(high)
    fraction = f"(?:\\.\\d{{1,{places}}})?"
    pattern = f"(?:{_integers_below(high)}){fraction}"
    longest = len(str(high - 1))
    shown = f"0 ≤ {rule} < {_power(high)}"
    if low < 0:
        zeros = f"(?:\\.0{{1,{places}}})?"
        pattern += f"|-(?:{-low}{zeros}|(?:{_integers_below(-low)}){fraction})"
        longest = max(longest, len(str(-low)) + 1)
        shown = f"{low} ≤ {rule} < {_power(high)}"
    description = (
        f"A decimal {shown}, at most {places} decimal places, as a string in the pattern's "
        "plain form (stored as sent) or a JSON number. The API also takes an exponent "
        f"(1.5e3) and more decimal places, rounded half up to {places}; a value outside "
        "the range (after rounding) is refused: 422, code out_of_range or negative, with row "
        "and field."
    )
    if rule == "energy":
        limits = ", ".join(
            f"{unit} below {_power(limit)}"
            for unit, limit in row_rules.ENERGY_LIMIT_BY_UNIT.items()
        )
        description += f" In {limits}."
    return {
        "type": "string",
        "format": "decimal",
        "pattern": f"^(?:{pattern})$",
        "maxLength": longest + 1 + places,
        "description": description,
    }


_SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def _power(value: float) -> str:
    """200 → '200', 1e13 → '10¹³', 3.6e11 → '3.6·10¹¹'."""
    mantissa, exponent = f"{value:e}".split("e")
    exponent, mantissa = int(exponent), mantissa.rstrip("0").rstrip(".")
    if exponent < 4:
        return f"{value:g}"
    head = "" if mantissa == "1" else f"{mantissa}·"
    return f"{head}10{str(exponent).translate(_SUPERSCRIPT)}"


class ReadingNumberField(serializers.Field):
    """A reading's number in the schema (``reading_number_schema``); the views validate
    rows with ``metering.ingest.rows``, not with this serializer."""

    def __init__(self, *, rule: str, what: str, **kwargs) -> None:
        self.rule, self.what = rule, what  # not help_text: the schema's meta would win
        super().__init__(**kwargs)


class ReadingNumberFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "metering.api.readings.ReadingNumberField"

    def map_serializer_field(self, auto_schema, direction):
        schema = reading_number_schema(self.target.rule)
        schema["description"] = f"{self.target.what} {schema['description']}"
        return schema


class ReadingInSerializer(serializers.Serializer):
    meter = serializers.CharField(max_length=60, help_text="Meter serial as printed on the meter.")
    read_at = serializers.DateTimeField(
        help_text="ISO 8601 with UTC offset, e.g. 2026-11-01T00:00:00+01:00."
    )
    energy = ReadingNumberField(rule="energy", what="Energy register.")
    energy_unit = serializers.ChoiceField(choices=["Wh", "kWh", "MWh", "GJ"])
    volume_m3 = ReadingNumberField(rule="volume_m3", what="Volume register, m³.")
    flow_temp_c = ReadingNumberField(
        rule="flow_temp_c", required=False, allow_null=True, what="Flow temperature, °C."
    )
    return_temp_c = ReadingNumberField(
        rule="return_temp_c", required=False, allow_null=True, what="Return temperature, °C."
    )
    power_kw = ReadingNumberField(
        rule="power_kw", required=False, allow_null=True, what="Power, kW."
    )
    flow_m3h = ReadingNumberField(
        rule="flow_m3h", required=False, allow_null=True, what="Flow, m³/h."
    )
    status_code = serializers.IntegerField(
        min_value=0, required=False, allow_null=True, help_text="Meter info code; 0 = no fault."
    )
    flow_temp_m3c = ReadingNumberField(
        rule="flow_temp_m3c",
        required=False,
        allow_null=True,
        what="Volume-weighted flow temperature register, m³·°C.",
    )
    return_temp_m3c = ReadingNumberField(
        rule="return_temp_m3c",
        required=False,
        allow_null=True,
        what="Volume-weighted return temperature register, m³·°C.",
    )


@extend_schema_serializer(many=False)
class ReadingsInSerializer(serializers.ListSerializer):
    """The request body: an array of readings.  ``many=False`` tells drf-spectacular that
    the request example below is the whole body already (it would wrap it in a list once
    more: ``[[{…}, {…}]]``, which the API refuses)."""

    child = ReadingInSerializer()


class BatchAcceptedSerializer(serializers.Serializer):
    batch = serializers.IntegerField()
    state = serializers.CharField()
    rows = serializers.IntegerField()
    status_url = serializers.CharField()


class ErrorItemSerializer(serializers.Serializer):
    row = serializers.IntegerField(
        required=False, help_text="0-based index of the reading (data row of a file)."
    )
    field = serializers.CharField(required=False)
    code = serializers.CharField()
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    message = serializers.CharField()
    code = serializers.CharField()
    errors = ErrorItemSerializer(many=True)


class BatchStatusSerializer(serializers.ModelSerializer):
    class Meta:
        model = IngestBatch
        fields = [
            "id",
            "source",
            "state",
            "file_name",
            "row_count",
            "progress",
            "accepted",
            "duplicate",
            "conflicting",
            "rejected",
            "error_count",
            "errors",
            "received_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Malformed JSON or CSV."),
    401: OpenApiResponse(ErrorSerializer, description="Missing, invalid or revoked API key."),
    413: OpenApiResponse(
        ErrorSerializer, description="Body larger than allowed / more than 10,000 readings."
    ),
    415: OpenApiResponse(ErrorSerializer, description="Wrong Content-Type."),
    422: OpenApiResponse(
        ErrorSerializer,
        description="Invalid rows, each listed with row, field and code; nothing stored.",
    ),
}
IDEMPOTENCY = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="Any unique string per batch; a retried request with the same key returns the first answer.",
)


def _accepted(batch: IngestBatch, created: bool) -> Response:
    response = Response(
        batch.response or batches.batch_answer(batch), status=status.HTTP_202_ACCEPTED
    )
    if not created:
        response["Idempotent-Replayed"] = "true"
    response["Location"] = f"/api/v1/readings/batches/{batch.pk}/"
    return response


class ReadingBatchView(APIView):
    authentication_classes = [VendorKeyAuthentication]
    permission_classes = [IsVendor]
    throttle_classes = [VendorRateThrottle]
    parser_classes = [parsers.JSONParser]

    @extend_schema(
        operation_id="readings_batch_create",
        summary="Deliver up to 10,000 readings",
        request=ReadingsInSerializer(),
        parameters=[IDEMPOTENCY],
        responses={202: BatchAcceptedSerializer, **ERRORS},
        examples=[
            OpenApiExample(
                "Two hourly readings",
                request_only=True,
                value=[
                    {
                        "meter": "67001234",
                        "read_at": "2026-11-01T00:00:00+01:00",
                        "energy": "12345.678",
                        "energy_unit": "kWh",
                        "volume_m3": "456.789",
                        "flow_temp_c": "72.5",
                        "return_temp_c": "38.1",
                        "power_kw": "4.2",
                        "flow_m3h": "0.105",
                        "status_code": 0,
                        "flow_temp_m3c": "33120.4",
                        "return_temp_m3c": "17402.6",
                    },
                    {
                        "meter": "67001234",
                        "read_at": "2026-11-01T01:00:00+01:00",
                        "energy": "12349.9",
                        "energy_unit": "kWh",
                        "volume_m3": "456.894",
                    },
                ],
            ),
        ],
        tags=["vendor"],
    )
    def post(self, request):
        vendor: MeterVendor = request.auth
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > MAX_JSON_BYTES:
            raise PayloadTooLarge(
                f"The body has {length} bytes; at most {MAX_JSON_BYTES} are accepted per request.",
                errors=[
                    ErrorItem(
                        code="too_large",
                        message="Split the delivery into batches of at most 10,000 readings.",
                    )
                ],
            )
        if not (request.content_type or "").startswith("application/json"):
            raise UnsupportedMediaType(
                "Send readings as application/json (files go to /api/v1/readings/files/).",
                errors=[
                    ErrorItem(
                        code="unsupported_media_type",
                        message=f"Content-Type {request.content_type!r}.",
                    )
                ],
            )
        try:
            batch, created = batches.readings_batch_submit(
                vendor=vendor,
                body=request.body,
                idempotency_key=request.headers.get("Idempotency-Key", ""),
                received_at=timezone.now(),
            )
        except batches.InvalidDelivery as exc:
            if any(e.code == "too_many_rows" for e in exc.errors):
                raise PayloadTooLarge(exc.message, errors=exc.errors) from exc
            raise
        return _accepted(batch, created)


class ReadingFileView(APIView):
    authentication_classes = [VendorKeyAuthentication]
    permission_classes = [IsVendor]
    throttle_classes = [VendorRateThrottle]
    parser_classes = [parsers.MultiPartParser]

    @extend_schema(
        operation_id="readings_file_create",
        summary="Deliver a CSV export (processed in the background)",
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        },
        parameters=[IDEMPOTENCY],
        responses={202: BatchAcceptedSerializer, **ERRORS},
        tags=["vendor"],
    )
    def post(self, request):
        upload = request.FILES.get("file")
        if upload is None:
            raise batches.MalformedBody(
                "Attach the CSV file as the multipart field 'file'.",
                errors=[ErrorItem(code="required", field="file", message="file is required.")],
            )
        batch, created = batches.readings_file_submit(
            vendor=request.auth,
            content=upload_read(upload),
            file_name=upload.name or "upload.csv",
            received_at=timezone.now(),
            idempotency_key=request.headers.get("Idempotency-Key", ""),
        )
        return _accepted(batch, created)


class BatchStatusView(APIView):
    authentication_classes = [VendorKeyAuthentication]
    permission_classes = [IsVendor]
    throttle_classes = [VendorRateThrottle]

    @extend_schema(
        operation_id="readings_batch_status",
        summary="State, counts and per-row errors of a batch",
        responses={
            200: BatchStatusSerializer,
            401: ERRORS[401],
            404: OpenApiResponse(ErrorSerializer),
        },
        tags=["vendor"],
    )
    def get(self, request, pk: int):
        batch = get_object_or_404(IngestBatch, pk=pk, vendor=request.auth)
        return Response(BatchStatusSerializer(batch).data)


class VendorMeterSerializer(serializers.ModelSerializer):
    installed = serializers.BooleanField(read_only=True, help_text="Installed in a building now.")
    last_read_at = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="Time of the latest reading you delivered for the meter.",
    )
    last_received_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="When that reading arrived."
    )

    class Meta:
        model = HeatMeter
        fields = [
            "serial",
            "maker",
            "model",
            "register_unit",
            "resolution",
            "register_max",
            "volume_register_max",
            "installed",
            "last_read_at",
            "last_received_at",
        ]
        read_only_fields = fields


class VendorMeterQuerySerializer(serializers.Serializer):
    # DRF's CharField refuses NUL (PostgreSQL text cannot hold it): a 400, not a 500
    serial = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)


class VendorMeterListView(generics.ListAPIView):
    """Your meters: the ones the utility expects readings for from your head-end."""

    authentication_classes = [VendorKeyAuthentication]
    permission_classes = [IsVendor]
    throttle_classes = [VendorRateThrottle]
    serializer_class = VendorMeterSerializer
    filter_backends: list = []  # ?serial= below; the staff filters do not apply

    def get_queryset(self):
        meters = selectors.vendor_meters(vendor=self.request.auth, now=timezone.now())
        query = VendorMeterQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        serial = query.validated_data.get("serial")
        return meters.filter(serial=serial) if serial else meters

    @extend_schema(
        operation_id="readings_vendor_meters",
        summary="Your meters, installed or not, with their latest reading",
        parameters=[OpenApiParameter("serial", str, description="Only this serial number.")],
        responses={200: VendorMeterSerializer(many=True), 401: ERRORS[401]},
        tags=["vendor"],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
