"""What keeps the invoice and webhook lists fast at a million rows.

Measured on PostgreSQL with 1,000,000 invoices (docs/performance.rst): Django's
defaults count the whole table twice per page, read every row for the date
hierarchy, run ``SELECT DISTINCT provider`` for the provider filter, and search
with ``icontains`` over five columns, which only a sequential scan can serve.
Here instead:

* :class:`EstimatedCountPaginator`: on PostgreSQL the unfiltered list is
  counted from the planner's statistics (``pg_class.reltuples``) and a filtered
  one exactly up to :attr:`~EstimatedCountPaginator.cap` rows ("more than
  1000"); every page sends the same statements whatever the table holds.
  Exact elsewhere (SQLite).
* :class:`ProviderFilter`: the choices are the configured aliases
  (:func:`~django_payments_ru.registry.aliases`), never read from the table.
* :func:`search_invoices` and :func:`search_webhook_events`: lookups that an
  index serves (exact or the start of an id, a whole UUID, the words of the
  description by full-text search on PostgreSQL). Migration
  ``0005_admin_indexes`` creates the indexes.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from django.contrib import admin
from django.core.exceptions import ImproperlyConfigured
from django.core.paginator import Page, Paginator
from django.db import connections
from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.functions import Lower
from django.db.models.lookups import StartsWith
from django.http import HttpRequest
from django.utils.formats import number_format
from django.utils.functional import cached_property
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import registry
from ..models import Invoice
from .base import _provider_name

#: The words of a search term, for the full-text query (tsquery syntax never
#: reaches PostgreSQL from the term: only these words, each as a prefix).
WORDS = re.compile(r"\w+")
#: A phone number as typed: digits, an optional "+", spaces, dashes, brackets.
PHONE = re.compile(r"\+?[\d\s()-]{5,40}")
#: How many invoices a webhook search by invoice looks at (the ids are read
#: first, so the event list never joins the invoice table).
INVOICE_IDS_LIMIT = 200


# --- counting ---------------------------------------------------------------------


class EstimatedCountPaginator(Paginator):
    """A paginator whose count costs the same at ten rows and at a million.

    On PostgreSQL a filtered or searched list is counted exactly up to
    :attr:`cap` rows (its ids, ``LIMIT cap + 1``, which the page then reads
    by); past it
    the count is ``cap`` and the list says "more than 1000" (narrow the filter
    to go further). The unfiltered list is counted the same way, and past the
    cap takes the table's row estimate from the statistics
    (``pg_class.reltuples``, kept by autovacuum/ANALYZE): "about 1 000 000".
    On other databases (SQLite) every count is exact.
    """

    #: Counted exactly up to this many rows.
    cap = 1000

    #: ``"estimate"`` (the table's statistics), ``"capped"`` (more than
    #: :attr:`cap`) or ``""`` (exact), once :attr:`count` is read.
    approximate = ""
    #: The ids of every row of a filtered list of at most :attr:`cap` rows
    #: (PostgreSQL), once :attr:`count` is read.
    matches: list[Any] | None = None

    def page(self, number: Any) -> Any:
        """The page, read by primary key where that is what the planner
        needs on PostgreSQL: the few rows of a search are found by their ids
        (``ORDER BY created_at LIMIT 50`` over a rare match would walk the
        whole table in date order), and a later page of a list that joins
        (the webhook events' invoice) finds its ids first and joins only
        them (an ``OFFSET`` would join every row it skips)."""
        rows = self.object_list
        count = self.count
        if not isinstance(rows, QuerySet) or connections[rows.db].vendor != (
            "postgresql"
        ):
            return super().page(number)
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = min(bottom + self.per_page, count)
        if top + self.orphans >= count:
            top = count
        if self.matches is not None:
            rows = rows.filter(pk__in=self.matches)
        if number > 1 and rows.query.select_related:
            ids = list(rows.values_list("pk", flat=True)[bottom:top])
            return Page(rows.filter(pk__in=ids), number, self)
        return Page(rows[bottom:top], number, self)

    @cached_property
    def count(self) -> int:
        rows = self.object_list
        if not isinstance(rows, QuerySet):
            return super().count
        connection = connections[rows.db]
        if connection.vendor != "postgresql":
            return rows.count()
        if rows.query.where:
            # The matching ids, at most cap + 1, in the order an index finds
            # them: the count, and (when they are all) what the page reads.
            found = list(rows.order_by().values_list("pk", flat=True)[: self.cap + 1])
            if len(found) > self.cap:
                self.approximate = "capped"
                return self.cap
            self.matches = found
            return len(found)
        counted = rows.order_by()[: self.cap + 1].count()
        # Unfiltered: the statistics, read on every page so that the page
        # sends the same statements whatever the table holds.
        table = connection.ops.quote_name(rows.model._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                [table],
            )
            found = cursor.fetchone()
        if counted <= self.cap:
            return counted
        self.approximate = "estimate"
        return max(int(found[0]) if found else 0, self.cap + 1)

    @property
    def count_display(self) -> str:
        """The count for people: "about 1 000 000", "more than 1 000", "42"."""
        count = self.count
        if self.approximate == "capped":
            return _("more than %(count)s") % {
                "count": number_format(count, force_grouping=True)
            }
        if self.approximate == "estimate":
            return _("about %(count)s") % {
                "count": number_format(_rounded(count), force_grouping=True)
            }
        return number_format(count, force_grouping=True)


def _rounded(count: int) -> int:
    """Two significant digits: an estimate is not exact to the row."""
    digits = len(str(count))
    if digits <= 2:
        return count
    step = 10 ** (digits - 2)
    return round(count / step) * step


# --- filters ----------------------------------------------------------------------


class ProviderFilter(admin.SimpleListFilter):
    """The provider, with the configured aliases as choices (a ``SELECT
    DISTINCT provider`` reads the whole table). An alias removed from the
    settings stays selectable from the URL."""

    title = gettext_lazy("provider")
    parameter_name = "provider"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        aliases = registry.aliases()
        names = {alias: _display_name(alias) for alias in aliases}
        shared = {
            name for name in names.values() if list(names.values()).count(name) > 1
        }
        choices = [
            (alias, f"{name} ({alias})" if name in shared else name)
            for alias, name in names.items()
        ]
        value = self.value()
        if value and value not in names:
            choices.append((value, value))
        return choices

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
        value = self.value()
        return queryset.filter(provider=value) if value else queryset


def _display_name(alias: str) -> str:
    try:
        return _provider_name(registry.get_provider(alias))
    except ImproperlyConfigured:
        return alias  # no longer configured: all there is to show


# --- searching --------------------------------------------------------------------


def as_uuid(term: str) -> uuid.UUID | None:
    """``term`` as a UUID when it is a whole one (with or without dashes)."""
    try:
        return uuid.UUID(term)
    except ValueError:
        return None


def description_matches(term: str, vendor: str) -> Q | None:
    """The invoices whose description has every word of ``term``: on
    PostgreSQL words starting so, by full-text search (the GIN index on
    ``to_tsvector('simple', description)``); elsewhere ``icontains``."""
    words = WORDS.findall(term.lower())
    if not words:
        return None
    if vendor != "postgresql":
        every = Q()
        for word in words:
            every &= Q(description__icontains=word)
        return every
    table = Invoice._meta.db_table
    column = f'"{table}"."description"'
    query = " & ".join(f"{word}:*" for word in words)
    # The expression is the index's, word for word: the planner matches it.
    sql = f"to_tsvector('simple', {column}) @@ to_tsquery('simple', %s)"
    # The words go in as a parameter; the column is the model's own.
    return Q(RawSQL(sql, [query], output_field=BooleanField()))  # noqa: S611


def invoice_search(term: str, vendor: str) -> Q:
    """The invoices ``term`` finds: the start (or the whole) of the order id,
    the e-mail (any case), the provider's payment or transaction id; the whole
    order key; the reference when ``term`` is a whole UUID; a phone number
    when it is one; the words of the description."""
    found = (
        Q(order_id__startswith=term)
        | Q(StartsWith(Lower("customer_email"), term.lower()))
        | Q(provider_payment_id__startswith=term)
        | Q(provider_transaction_id__startswith=term)
        | (Q(order_key=term) & ~Q(order_key=""))
    )
    reference = as_uuid(term)
    if reference is not None:
        found |= Q(uuid=reference)
    if PHONE.fullmatch(term):
        digits = re.sub(r"\D", "", term)
        found |= Q(customer_phone__in=[digits, f"+{digits}"])
    words = description_matches(term, vendor)
    if words is not None:
        found |= words
    return found


def search_invoices(queryset: QuerySet[Any], search_term: str) -> QuerySet[Any]:
    term = search_term.strip()
    if not term:
        return queryset
    return queryset.filter(invoice_search(term, connections[queryset.db].vendor))


def search_webhook_events(queryset: QuerySet[Any], search_term: str) -> QuerySet[Any]:
    """The events ``term`` finds: the start (or the whole) of the event id, or
    those of the invoices whose order id starts so or whose reference it is.
    The invoice ids are read first (at most :data:`INVOICE_IDS_LIMIT`), so
    the event list never joins the invoice table."""
    term = search_term.strip()
    if not term:
        return queryset
    invoices = Q(order_id__startswith=term)
    reference = as_uuid(term)
    if reference is not None:
        invoices |= Q(uuid=reference)
    ids = list(
        Invoice.objects.using(queryset.db)
        .filter(invoices)
        .order_by()
        .values_list("pk", flat=True)[:INVOICE_IDS_LIMIT]
    )
    found = Q(dedupe_id__startswith=term)
    if ids:
        found |= Q(invoice_id__in=ids)
    return queryset.filter(found)
