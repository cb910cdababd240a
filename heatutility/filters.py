"""The API's query filters (django-filter), held to the same limits as request bodies.

A date-time filter value is normalised to UTC: Python accepts offsets up to ±23:59,
PostgreSQL only up to ±15:59, so ``?hour_start__gte=2026-01-01T00:00-22:59`` would
otherwise reach the database as an error.  Dates and instants outside what the product
works with (``heatutility.timeutil.date_in_range``) are a 400 on the parameter.
"""

from __future__ import annotations

import datetime as dt

from django import forms
from django.db import models
from django_filters import fields, filters
from django_filters.rest_framework import DjangoFilterBackend, FilterSet
from rest_framework import filters as rest_filters
from rest_framework.exceptions import ValidationError

from heatutility.timeutil import DATE_OUT_OF_RANGE as OUT_OF_RANGE
from heatutility.timeutil import date_in_range


class _UTCIsoDateTimeField(fields.IsoDateTimeField):
    def to_python(self, value):
        try:
            moment = super().to_python(value)
        except OverflowError as exc:  # a naive year-1 value made aware
            raise forms.ValidationError(OUT_OF_RANGE, code="out_of_range") from exc
        if moment is None:
            return None
        if not date_in_range(moment.date()):
            raise forms.ValidationError(OUT_OF_RANGE, code="out_of_range")
        return moment.astimezone(dt.UTC)


class UTCIsoDateTimeFilter(filters.IsoDateTimeFilter):
    field_class = _UTCIsoDateTimeField


class _BoundedDateField(forms.DateField):
    def to_python(self, value):
        day = super().to_python(value)
        if day is not None and not date_in_range(day):
            raise forms.ValidationError(OUT_OF_RANGE, code="out_of_range")
        return day


class BoundedDateFilter(filters.DateFilter):
    field_class = _BoundedDateField


class ApiFilterSet(FilterSet):
    FILTER_DEFAULTS = {
        **FilterSet.FILTER_DEFAULTS,
        models.DateTimeField: {"filter_class": UTCIsoDateTimeFilter},
        models.DateField: {"filter_class": BoundedDateFilter},
    }


class ApiFilterBackend(DjangoFilterBackend):
    """``filterset_fields`` build an :class:`ApiFilterSet`."""

    filterset_base = ApiFilterSet


class SearchFilter(rest_filters.SearchFilter):
    """DRF's ``?search=``, its refusals (a null character) a 400 on ``search``."""

    def get_search_terms(self, request):
        try:
            return super().get_search_terms(request)
        except ValidationError as exc:
            raise ValidationError({self.search_param: exc.detail}) from exc
