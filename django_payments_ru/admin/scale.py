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

from django.contrib import admin, messages
from django.contrib.admin.views.main import ORDER_VAR, ChangeList
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.core.paginator import Page, Paginator
from django.db import connections, transaction
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
#: The most rows a GIN index scan returns while a filtered list is counted
#: on PostgreSQL (``gin_fuzzy_search_limit``): far above the count's cap.
FUZZY_LIMIT = 5 * 1001
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
    #: How far from either end of a list a page may start (rows): a page is
    #: read with an ``OFFSET`` from the nearer end, which an index walks
    #: row by row. A page further in is not read: the nearest page at this
    #: depth is shown instead (:attr:`clamped_from` says which was asked).
    max_depth = 10_000
    #: The page number asked, when a page deeper than :attr:`max_depth` was
    #: replaced by the nearest one that is served.
    clamped_from: int | None = None
    #: The page shown instead.
    clamped_to = 0

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
        number = self._served(self.validate_number(number))
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
        if number == 1:
            return Page(rows[bottom:top], number, self)
        # A later page: its ids first, from the nearer end of the list (an
        # index-only scan of the list's order, read backwards for the second
        # half), then only those rows.
        if bottom <= count - top:
            ids = list(rows.values_list("pk", flat=True)[bottom:top])
        else:
            backwards = rows.reverse().values_list("pk", flat=True)
            ids = list(backwards[count - top : count - bottom])
        return Page(rows.filter(pk__in=ids), number, self)

    def _served(self, number: int) -> int:
        """``number``, or the nearest page within :attr:`max_depth` rows of
        either end of the list."""
        depth = max(1, self.max_depth // self.per_page)
        last = self.num_pages
        if number <= depth + 1 or number >= last - depth:
            return number
        self.clamped_from = number
        nearer_start = number - depth - 1 <= last - depth - number
        self.clamped_to = depth + 1 if nearer_start else last - depth
        return self.clamped_to

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
            # A full-text match of a common word would have the GIN index
            # list every matching row before the LIMIT applies (143,000 of a
            # million for "lamp", most of the request): the index is asked
            # for about FUZZY_LIMIT of them, far more than the cap, so the
            # count and the ids are exact whenever they can be shown.
            ids = rows.order_by().values_list("pk", flat=True)[: self.cap + 1]
            with transaction.atomic(using=rows.db), connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL gin_fuzzy_search_limit = {FUZZY_LIMIT}")
                found = list(ids)
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


# --- sorting ----------------------------------------------------------------------


def index_orders(model: Any) -> dict[str, tuple[str, ...]]:
    """The orders that the model's indexes serve whole, by their first field:
    ``{"amount": ("amount", "-created_at", "-id")}`` for an index on those
    fields (one without a condition that ends with the primary key, so that
    a page's ids are read from the index alone)."""
    pk = model._meta.pk.attname
    found: dict[str, tuple[str, ...]] = {}
    for index in model._meta.indexes:
        fields = tuple(index.fields)
        if index.condition is not None or index.opclasses or len(fields) < 2:
            continue
        if fields[-1].lstrip("-") not in (pk, "pk"):
            continue
        found.setdefault(fields[0].lstrip("-"), fields)
    return found


def _reversed(term: str) -> str:
    return term[1:] if term.startswith("-") else f"-{term}"


class IndexedChangeList(ChangeList):
    """A change list whose sorted pages an index reads in either direction.

    A click on a column sorts by it and breaks ties as the column's index
    orders them (:func:`index_orders`); the other direction is the same
    order reversed, the index read backwards. Django's own tie-breaker (the
    primary key, descending, whatever the direction) would make the database
    sort the whole table for a page of 50. A page deeper than the
    paginator's ``max_depth`` is replaced by the nearest one, with a message
    that says how to reach the rows in between."""

    def get_ordering(self, request: HttpRequest, queryset: QuerySet[Any]) -> list[Any]:
        ordering = super().get_ordering(request, queryset)
        asked = str(self.params.get(ORDER_VAR, ""))
        if asked and not self._sortable(asked):
            # A column the list does not offer to sort by, asked in the URL:
            # the list's own order.
            self.params = {k: v for k, v in self.params.items() if k != ORDER_VAR}
            return super().get_ordering(request, queryset)
        if not asked or "." in asked or not ordering:
            return ordering
        primary = ordering[0]
        if not isinstance(primary, str):
            return ordering
        name = primary.lstrip("-")
        try:
            found = self.lookup_opts.get_field(name)
        except FieldDoesNotExist:
            return ordering
        name = getattr(found, "attname", name)
        order = index_orders(self.model).get(name)
        if order is None:
            return ordering
        if primary.startswith("-") == order[0].startswith("-"):
            return list(order)
        return [_reversed(term) for term in order]

    def _sortable(self, asked: str) -> bool:
        """Whether every column of the ``o`` parameter may be sorted by."""
        for part in asked.split("."):
            _none, _pfx, idx = part.rpartition("-")
            try:
                name = self.list_display[int(idx)]
            except (IndexError, ValueError):
                return False
            if self.sortable_by is not None and name not in self.sortable_by:
                return False
        return True

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        asked = getattr(self.paginator, "clamped_from", None)
        if asked is None:
            return
        depth = number_format(self.paginator.max_depth, force_grouping=True)
        self.page_num = self.paginator.clamped_to
        messages.info(
            request,
            _(
                "Page %(page)s is not shown: pages more than %(depth)s rows from "
                "either end of the list are not read. Filter the list (by date, "
                "status or provider) or search to reach those rows."
            )
            % {"page": number_format(asked, force_grouping=True), "depth": depth},
        )


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
    ``to_tsvector('simple', description)``); elsewhere ``icontains``. A term
    with a piece that is not a word (``1-1``, ``A-10``, an e-mail) is an id,
    not words: the description is not searched (``1-1`` would find every
    description with a "1")."""
    words = term.lower().split()
    if not words or not all(WORDS.fullmatch(word) for word in words):
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
