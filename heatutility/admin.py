"""Admin of third-party apps, held to the project's rule that every action names the
permission it needs (Django offers an action without one to anyone who may view the
list)."""

from axes import admin as axes_admin  # registers the login-attempt models first
from axes.models import AccessAttempt
from django.contrib import admin
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Q
from django.db.models.constants import LOOKUP_SEP
from django.utils.text import smart_split, unescape_string_literal
from django_celery_beat import admin as beat_admin  # registers the beat models first
from django_celery_beat.models import PeriodicTask


def refuse_dates_out_of_range(form, *fields: str) -> None:
    """Dates the product can work with (as the API's ``BoundedDateField``): a service
    steps a day back or a month on from them, which year 1 or 9999 cannot, and a journal
    export never reaches a payment dated in year 26."""
    from heatutility.timeutil import DATE_OUT_OF_RANGE, date_in_range

    for field in fields:
        day = form.cleaned_data.get(field)
        if day is not None and not date_in_range(day):
            form.add_error(field, DATE_OUT_OF_RANGE)


def _is_field_path(model, path: str) -> bool:
    """``path`` names a field through relations (no lookup of its own)."""
    opts = model._meta
    for part in path.split(LOOKUP_SEP):
        try:
            field = opts.get_field(part)
        except FieldDoesNotExist:
            return False
        if field.is_relation:
            opts = field.related_model._meta
    return not field.is_relation


def _search_lookup(field: str) -> str:
    """The ORM lookup of one ``search_fields`` entry, with Django's prefixes: ``^`` an
    identifier found from its start (``istartswith``), ``=`` one found whole (``iexact``),
    none a text found anywhere in it (``icontains``)."""
    if field.startswith("^"):
        return f"{field[1:]}__istartswith"
    if field.startswith("="):
        return f"{field[1:]}__iexact"
    return f"{field}__icontains"


# a trigram index finds a substring of three characters or more
SHORTEST_SUBSTRING = 3


def _search_condition(lookup: str, term: str) -> Q:
    """``lookup`` matching ``term``; a term too short for the trigram index ("17" of
    "Jagtvej 17") is looked for at the start of a word, which the index finds (and
    "17" no longer picks every 117, 2174 and kunde1717@ of the network)."""
    path, _, kind = lookup.rpartition(LOOKUP_SEP)
    if kind == "icontains" and len(term) < SHORTEST_SUBSTRING:
        return Q(**{f"{path}__istartswith": term}) | Q(**{lookup: f" {term}"})
    return Q(**{lookup: term})


def _search_branch(model, lookup: str, term: str):
    """The ids of ``model`` whose ``lookup`` matches ``term``.  Through a reverse key
    (an account's ``contracts__…``) the key column of the other table is the id: no join
    back to this table's every row."""
    first, _, rest = lookup.partition(LOOKUP_SEP)
    relation = model._meta.get_field(first) if LOOKUP_SEP in rest else None
    if relation is not None and relation.one_to_many and relation.field.target_field.primary_key:
        rows = relation.related_model._base_manager.filter(_search_condition(rest, term))
        return rows.order_by().values(relation.field.attname)
    return model._base_manager.filter(_search_condition(lookup, term)).order_by().values("pk")


class IndexedSearchMixin:
    """The admin's search (its list's ``?q=`` and the autocomplete boxes that use it) as
    one id subquery per searched column, not one ``OR`` across joins.

    Django's search filters the list by ``a ILIKE '%x%' OR joined.b ILIKE '%x%' …`` over
    every join of ``search_fields``, which no index can serve: 1–2.8 s per keystroke at
    100,000 accounts.  Here each term matches ``pk IN (SELECT pk … WHERE a … UNION ALL
    SELECT pk … JOIN … WHERE b …)``: each branch starts from its own column's index (a
    trigram index for a substring, or a word's start for a one- or two-character term;
    an ``upper(col) text_pattern_ops`` index for an identifier's prefix; made by the
    apps' migrations on PostgreSQL), and the rows come once each (no ``DISTINCT`` over
    the joins).  Terms are split and quoted as Django
    does and all must match (each in some field).  ``@`` (full-text) fields are left to
    Django's search; ``search_term_filters`` adds what a whole term matches that no
    field lookup says (an invoice's printed number)."""

    def search_term_filters(self, term: str) -> list[Q]:
        """Further filters on the model that a term matches, OR-ed with the fields'."""
        return []

    def get_search_results(self, request, queryset, search_term):
        fields = [str(field) for field in self.get_search_fields(request)]
        if (
            not search_term
            or not fields
            or not all(_is_field_path(queryset.model, field.lstrip("^=")) for field in fields)
        ):  # full-text (@) or an explicit lookup: Django's search
            return super().get_search_results(request, queryset, search_term)
        lookups = [_search_lookup(field) for field in fields]
        table = queryset.model._base_manager
        for bit in smart_split(search_term):
            if bit.startswith(('"', "'")) and bit[0] == bit[-1]:
                bit = unescape_string_literal(bit)
            branches = [_search_branch(queryset.model, lookup, bit) for lookup in lookups]
            branches += [
                table.filter(q).order_by().values("pk") for q in self.search_term_filters(bit)
            ]
            matched = (
                branches[0].union(*branches[1:], all=True) if len(branches) > 1 else branches[0]
            )
            queryset = queryset.filter(pk__in=matched)
        return queryset, False


class ViewOnlyAdmin(admin.ModelAdmin):
    """Records made by the services (an audit trail, an outcome): shown, never added,
    changed or deleted in the admin."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _guarded(name: str, permission: str, base: type = beat_admin.PeriodicTaskAdmin):
    inherited = getattr(base, name)

    def action(self, request, queryset):
        return inherited(self, request, queryset)

    action.__name__ = name
    return admin.action(description=inherited.short_description, permissions=[permission])(action)


class PeriodicTaskAdmin(beat_admin.PeriodicTaskAdmin):
    """Beat schedules: enabling, disabling and running tasks needs the change permission."""

    enable_tasks = _guarded("enable_tasks", "change")
    disable_tasks = _guarded("disable_tasks", "change")
    toggle_tasks = _guarded("toggle_tasks", "change")
    run_tasks = _guarded("run_tasks", "change")


admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, PeriodicTaskAdmin)


class AccessAttemptAdmin(axes_admin.AccessAttemptAdmin):
    """Failed logins (django-axes): clearing them unlocks a username, so it needs the
    delete permission."""

    cleanup_expired_attempts = _guarded(
        "cleanup_expired_attempts", "delete", axes_admin.AccessAttemptAdmin
    )


admin.site.unregister(AccessAttempt)
admin.site.register(AccessAttempt, AccessAttemptAdmin)
