"""Background jobs: the sweeper, reconciliation, expiry and the status summary.

Each job is a plain function (callable from a shell, a test, a management
command) returning a report; the Celery tasks at the end are thin wrappers, run
by the beat schedule :data:`BEAT_SCHEDULE` (defined in
:mod:`django_payments_ru.beat`, which the settings can import):

* :func:`sweep_events`: processes the webhook events left ``received`` (the
  broker was down, the worker died) or ``failed``, with exponential backoff
  between attempts and a bounded number of attempts, after which the event
  and its invoice are flagged for the merchant
  (``manage.py payments_process_events``);
* :func:`reconcile`: asks the providers about the invoices still waiting for
  them after a delay, oldest first, resumable, in each provider's batch where
  it has one (``manage.py payments_reconcile``);
* :func:`expire`: moves to ``expired`` the invoices whose provider session is
  over, once a status query has confirmed that nothing was paid
  (``manage.py payments_expire``);
* :func:`status_summary`: what needs the merchant (``manage.py
  payments_status`` and the admin's status page).

Every status change goes through :mod:`django_payments_ru.services`; the jobs
only choose what to ask and when. Their settings are ``PAYMENTS_RU`` keys
(:data:`DEFAULTS`; docs/operations.rst).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from celery import shared_task
from django.core.cache import caches
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from . import conf, registry, services
from .beat import BEAT_SCHEDULE
from .conf import payments_settings
from .events import EventType, PaymentEvent
from .exceptions import (
    ConfigurationError,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from .models import Invoice, WebhookEvent
from .providers.base import BaseProvider, Capability
from .results import msg
from .status import InvoiceStatus

logger = logging.getLogger("django_payments_ru.jobs")

__all__ = [
    "BEAT_SCHEDULE",
    "DEFAULTS",
    "expire",
    "expire_task",
    "reconcile",
    "reconcile_task",
    "status_summary",
    "sweep_events",
    "sweep_events_task",
]

#: The jobs' ``PAYMENTS_RU`` keys and their defaults (durations in seconds, or
#: ``timedelta``), documented in docs/configuration.rst.
DEFAULTS: dict[str, Any] = {
    name: value
    for name, value in conf.DEFAULTS.items()
    if name.startswith(("SWEEP_", "RECONCILE_", "EXPIRY_"))
}

#: Where the jobs keep their last runs and the reconciliation's cursor.
CACHE_PREFIX = "django_payments_ru:jobs:"
#: What an unreachable provider raises: its other invoices are not asked.
UNREACHABLE = (ProviderUnavailable, ProviderRateLimited, ProviderAuthError)

Progress = Callable[[int, int], None]


def setting(name: str) -> Any:
    """A job's ``PAYMENTS_RU`` key, or its default (:data:`DEFAULTS`)."""
    return getattr(payments_settings, name)


def seconds(value: Any) -> float:
    """A duration setting (seconds or a ``timedelta``) in seconds."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


def _cache() -> Any:
    return caches[payments_settings.CACHE]


def no_progress(done: int, total: int) -> None:
    pass


def _provider(alias: str) -> BaseProvider | None:
    try:
        return registry.get_provider(alias)
    except ConfigurationError:  # the system checks report it
        return None


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def remember(job: str, outcome: dict[str, Any]) -> None:
    """Keep a job's last run (its time and outcome) for the status summary."""
    record = {"at": timezone.now().isoformat(), **outcome}
    try:
        _cache().set(f"{CACHE_PREFIX}last:{job}", record, timeout=None)
    except Exception:  # a cache outage must not fail the job that ran
        logger.warning("The outcome of %s cannot be stored", job, exc_info=True)


def last_run(job: str) -> dict[str, Any] | None:
    """A job's last run as :func:`remember` kept it, or None."""
    try:
        found = _cache().get(f"{CACHE_PREFIX}last:{job}")
    except Exception:
        logger.warning("The last run of %s cannot be read", job, exc_info=True)
        return None
    return found if isinstance(found, dict) else None


# --- the sweeper ------------------------------------------------------------------


def backoff(attempts: int) -> timedelta:
    """The wait after the attempt number ``attempts`` (1-based): the first
    backoff, doubled at each attempt, capped."""
    if attempts <= 0:
        return timedelta(0)
    base = seconds(setting("SWEEP_BACKOFF"))
    cap = seconds(setting("SWEEP_BACKOFF_MAX"))
    return timedelta(seconds=min(cap, base * 2 ** min(attempts - 1, 32)))


def next_attempt_at(event: WebhookEvent) -> datetime:
    """When ``event`` is due again: ``SWEEP_DELAY`` after its arrival while
    it was never tried (its own task may be queued), else :func:`backoff`
    after its last attempt."""
    if not event.attempts:
        return event.received_at + _delay()
    last = event.last_attempt_at or event.received_at
    return last + backoff(event.attempts)


def _delay() -> timedelta:
    return timedelta(seconds=seconds(setting("SWEEP_DELAY")))


_RETRIABLE = (WebhookEvent.Status.RECEIVED, WebhookEvent.Status.FAILED)


def _due(now: datetime, max_attempts: int) -> Q:
    """Events whose next attempt is due at ``now`` (:func:`next_attempt_at`):
    one condition per attempt count, so the database compares."""
    due = Q(attempts=0, received_at__lte=now - _delay())
    for attempts in range(1, max_attempts):
        cutoff = now - backoff(attempts)
        due |= Q(attempts=attempts) & (
            Q(last_attempt_at__lte=cutoff)
            | Q(last_attempt_at__isnull=True, received_at__lte=cutoff)
        )
    return due


@dataclass
class SweepReport:
    """What a sweep did, by event primary key."""

    processed: list[int] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    #: Out of attempts: flagged for the merchant, no longer retried.
    gave_up: list[int] = field(default_factory=list)

    @property
    def needs_attention(self) -> bool:
        return bool(self.failed or self.gave_up)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "needs_attention": self.needs_attention}


def sweep_events(
    *,
    limit: int | None = None,
    alias: str | None = None,
    now: datetime | None = None,
    progress: Progress = no_progress,
) -> SweepReport:
    """Process the events left ``received`` or ``failed`` whose next attempt
    is due (:func:`next_attempt_at`), oldest first, through
    :func:`services.process_webhook_event
    <django_payments_ru.services.process_webhook_event>`; then flag, with
    their invoices, the events out of attempts (``SWEEP_MAX_ATTEMPTS``)."""
    now = now or timezone.now()
    limit = int(setting("SWEEP_LIMIT")) if limit is None else limit
    max_attempts = int(setting("SWEEP_MAX_ATTEMPTS"))
    report = SweepReport()
    retriable = WebhookEvent.objects.filter(
        status__in=_RETRIABLE, needs_attention=False
    )
    if alias:
        retriable = retriable.filter(provider=alias)
    due = list(
        retriable.filter(_due(now, max_attempts))
        .order_by("received_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    progress(0, len(due))
    for done, pk in enumerate(due, 1):
        try:
            row = services.process_webhook_event(pk)
        except Exception as exc:  # kept on the row by the services
            row = WebhookEvent.objects.get(pk=pk)
            report.failed.append(
                {"event": pk, "attempts": row.attempts, "error": _error(exc)}
            )
        else:
            if row.is_done:
                report.processed.append(pk)
        progress(done, len(due))
    spent = retriable.filter(attempts__gte=max_attempts).order_by("received_at", "pk")
    for row in spent[:limit]:
        if give_up(row):
            report.gave_up.append(row.pk)
    return report


def _invoice_of(row: WebhookEvent) -> Invoice | None:
    """The invoice ``row`` names (a failed event may not have been linked)."""
    if row.invoice_id:
        return Invoice.objects.filter(pk=row.invoice_id).first()
    event = row.to_event()
    invoices = Invoice.objects.filter(provider=row.provider)
    try:
        ref = uuid.UUID(str(event.invoice_ref)) if event.invoice_ref else None
    except ValueError:
        ref = None
    if ref is not None:
        found = invoices.filter(uuid=ref).first()
        if found is not None:
            return found
    if event.provider_payment_id:
        found = invoices.filter(provider_payment_id=event.provider_payment_id).first()
        if found is not None:
            return found
    if event.order_id:
        return invoices.filter(order_id=event.order_id).order_by("-pk").first()
    return None


def give_up(row: WebhookEvent) -> bool:
    """Stop retrying ``row``: it is marked ``needs_attention``, and its invoice
    is flagged for the merchant (under the invoice's row lock, once per
    event). False when the event was processed or given up meanwhile."""
    invoice = _invoice_of(row)
    with transaction.atomic():
        locked = (
            WebhookEvent.objects.select_for_update()
            .filter(pk=row.pk, status__in=_RETRIABLE)
            .first()
        )
        if locked is None or locked.needs_attention:
            return False
        error: Any
        if locked.result_code:
            error = {"code": locked.result_code, "params": locked.result_params}
        else:
            error = locked.result or msg("no_error")
        note = msg(
            "given_up",
            pk=locked.pk,
            event=locked.event_type,
            attempts=locked.attempts,
            error=error,
        )
        if invoice is not None:
            target = Invoice.objects.select_for_update().get(pk=invoice.pk)
            noted = any(
                n.get("code") == "given_up"
                and (n.get("params") or {}).get("pk") == locked.pk
                for n in target.attention_notes or []
            )
            if not (target.needs_attention and noted):
                target.needs_attention = True
                target.add_attention_note(note)
                target.save(
                    update_fields=["needs_attention", "attention_notes", "updated_at"]
                )
        WebhookEvent.objects.filter(pk=locked.pk).update(
            needs_attention=True,
            invoice=invoice.pk if invoice is not None else None,
        )
    logger.error("Webhook event %s given up after %s attempts", row.pk, row.attempts)
    return True


# --- reconciliation ---------------------------------------------------------------

#: The statuses reconciliation asks about (the provider has the last word).
RECONCILED = (InvoiceStatus.CREATED, InvoiceStatus.PENDING, InvoiceStatus.ON_HOLD)


@dataclass
class Change:
    invoice: int
    reference: str
    alias: str
    old: str
    new: str


@dataclass
class RunReport:
    """What a reconciliation or an expiry run did."""

    dry_run: bool = False
    #: The invoices asked about (in a dry run: that would be asked).
    asked: list[int] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    #: ``{"invoice", "alias", "error"}`` of an invoice that could not be asked.
    errors: list[dict[str, Any]] = field(default_factory=list)
    #: Aliases that could not be reached: their invoices were left as they were.
    unreachable: dict[str, str] = field(default_factory=dict)
    #: The last invoice primary key done: the next run continues after it
    #: (None: this run reached the end).
    cursor: int | None = None

    @property
    def complete(self) -> bool:
        return self.cursor is None

    @property
    def needs_attention(self) -> bool:
        return bool(self.errors or self.unreachable)

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "complete": self.complete,
            "needs_attention": self.needs_attention,
        }

    def outcome(self) -> dict[str, Any]:
        """The short form kept for the status summary."""
        return {
            "asked": len(self.asked),
            "changed": len(self.changes),
            "errors": len(self.errors),
            "unreachable": sorted(self.unreachable),
            "complete": self.complete,
        }


def _askable(provider: BaseProvider | None) -> bool:
    return provider is not None and (
        provider.supports(Capability.STATUS)
        or provider.supports(Capability.BATCH_STATUS)
    )


def _by_alias(invoices: Iterable[Invoice]) -> dict[str, list[Invoice]]:
    """The invoices grouped by alias, each group in the order given."""
    groups: dict[str, list[Invoice]] = {}
    for invoice in invoices:
        groups.setdefault(invoice.provider, []).append(invoice)
    return groups


class _Asker:
    """Asks the providers about invoices, alias by alias, and records in a
    :class:`RunReport` what changed, what failed and who was unreachable."""

    def __init__(self, report: RunReport, progress: Progress, total: int) -> None:
        self.report = report
        self.progress = progress
        self.total = total
        self.done = 0

    def _step(self, count: int) -> None:
        self.done += count
        self.progress(self.done, self.total)

    def _changed(self, before: Iterable[Invoice], after: Iterable[Invoice]) -> None:
        now = {invoice.pk: invoice for invoice in after}
        for old in before:
            new = now.get(old.pk)
            if new is not None and new.status != old.status:
                self.report.changes.append(
                    Change(old.pk, str(old.uuid), old.provider, old.status, new.status)
                )

    def ask(self, alias: str, group: list[Invoice]) -> list[Invoice]:
        """Refresh ``group`` (one alias's invoices); returns those asked, fresh."""
        provider = _provider(alias)
        if not _askable(provider):
            self._step(len(group))
            return []
        assert provider is not None
        if provider.supports(Capability.BATCH_STATUS):
            try:
                fresh = services.refresh_invoices(group)
            except ProviderError as exc:  # nothing was applied for the alias
                self._unreachable(alias, exc)
                self._step(len(group))
                return []
            self.report.asked += [invoice.pk for invoice in group]
            self._changed(group, fresh)
            self._step(len(group))
            return fresh
        asked: list[Invoice] = []
        for n, invoice in enumerate(group):
            try:
                [one] = services.refresh_invoices([invoice])
            except UNREACHABLE as exc:
                self._unreachable(alias, exc)
                self._step(len(group) - n)
                break
            except Exception as exc:  # this invoice only; the others go on
                logger.warning(
                    "Invoice %s cannot be refreshed", invoice.uuid, exc_info=True
                )
                self.report.errors.append(
                    {"invoice": invoice.pk, "alias": alias, "error": _error(exc)}
                )
            else:
                self.report.asked.append(invoice.pk)
                self._changed([invoice], [one])
                asked.append(one)
            self._step(1)
        return asked

    def _unreachable(self, alias: str, exc: BaseException) -> None:
        logger.warning("%s is unreachable: %s", alias, type(exc).__name__)
        self.report.unreachable[alias] = _error(exc)


def _duration(value: timedelta | float | None, name: str) -> timedelta:
    if value is None:
        value = setting(name)
    return timedelta(seconds=seconds(value))


def _cursor_key(alias: str | None) -> str:
    return f"{CACHE_PREFIX}cursor:{alias or '*'}"


def reconcile(
    *,
    alias: str | None = None,
    older_than: timedelta | float | None = None,
    limit: int | None = None,
    after: int | None = None,
    resume: bool = False,
    dry_run: bool = False,
    now: datetime | None = None,
    progress: Progress = no_progress,
) -> RunReport:
    """Ask the providers about the started invoices still waiting for them
    (created, pending, on hold) ``older_than`` (default ``RECONCILE_AFTER``),
    oldest first (by primary key), at most ``limit`` (default
    ``RECONCILE_LIMIT``), after the invoice ``after`` (``resume``: after
    where the last run stopped), and apply the answers through
    :func:`services.refresh_invoices
    <django_payments_ru.services.refresh_invoices>` (one call for an alias
    with ``BATCH_STATUS``, one per invoice otherwise; each provider paces its
    own calls). An unreachable provider's invoices are left as they were and
    the run goes on with the others. ``dry_run``: list the invoices that
    would be asked, ask nobody. The run's outcome is kept for
    :func:`status_summary` (not a dry run's)."""
    now = now or timezone.now()
    limit = int(setting("RECONCILE_LIMIT")) if limit is None else limit
    if resume and after is None:
        stored = _cache().get(_cursor_key(alias))
        after = stored if isinstance(stored, int) else None
    askable = [a for a in registry.aliases() if _askable(_provider(a))]
    if alias:
        askable = [a for a in askable if a == alias]
    candidates = (
        Invoice.objects.filter(
            provider__in=askable,
            status__in=RECONCILED,
            created_at__lte=now - _duration(older_than, "RECONCILE_AFTER"),
        )
        .exclude(checkout={})
        .order_by("pk")
    )
    if after is not None:
        candidates = candidates.filter(pk__gt=after)
    page = list(candidates[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    report = RunReport(dry_run=dry_run)
    report.cursor = page[-1].pk if more and page else None
    if dry_run:
        report.asked = [invoice.pk for invoice in page]
        return report
    asker = _Asker(report, progress, len(page))
    progress(0, len(page))
    for name, group in _by_alias(page).items():
        asker.ask(name, group)
    _cache().set(_cursor_key(alias), report.cursor, timeout=None)
    remember("reconcile", report.outcome())
    return report


# --- expiry -------------------------------------------------------------------------

#: The statuses an invoice is expired from once its session is over.
EXPIRABLE = (InvoiceStatus.CREATED, InvoiceStatus.PENDING)


def session_lifetime(provider: BaseProvider | None) -> timedelta | None:
    """How long the provider's payment session lasts, for invoices that
    carry no ``expires_at`` (a provider's optional ``session_lifetime``)."""
    value = getattr(provider, "session_lifetime", None)
    return value if isinstance(value, timedelta) else None


def _past_session(aliases: list[str], cutoff: datetime) -> Q:
    past = Q(expires_at__lte=cutoff)
    for alias in aliases:
        lifetime = session_lifetime(_provider(alias))
        if lifetime is not None:
            past |= Q(
                provider=alias,
                expires_at__isnull=True,
                created_at__lte=cutoff - lifetime,
            )
    return past


def expiry_event(invoice: Invoice, now: datetime) -> PaymentEvent:
    """The EXPIRED event of ``invoice``: one per invoice (a second run's is a
    repeat)."""
    return PaymentEvent(
        provider=invoice.provider,
        dedupe_id=f"expiry:{invoice.uuid}",
        type=EventType.EXPIRED,
        invoice_ref=str(invoice.uuid),
        occurred_at=now,
        reason=_("the provider's payment session is over"),
    )


def expire(
    *,
    alias: str | None = None,
    limit: int | None = None,
    grace: timedelta | float | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    progress: Progress = no_progress,
) -> RunReport:
    """Expire the invoices whose provider session ended (``expires_at``, or
    the provider's ``session_lifetime`` after creation) more than ``grace``
    ago (default ``EXPIRY_GRACE``). Each is asked about first: a payment the
    provider reports is applied instead (never expire what may have been
    paid), and an invoice whose provider cannot be asked is left. Oldest
    first, at most ``limit`` (default ``EXPIRY_LIMIT``)."""
    now = now or timezone.now()
    limit = int(setting("EXPIRY_LIMIT")) if limit is None else limit
    aliases = list(registry.aliases())
    if alias:
        aliases = [a for a in aliases if a == alias]
    cutoff = now - _duration(grace, "EXPIRY_GRACE")
    candidates = Invoice.objects.filter(
        provider__in=aliases, status__in=EXPIRABLE
    ).filter(_past_session(aliases, cutoff))
    page = list(candidates.order_by("pk")[: limit + 1])
    report = RunReport(dry_run=dry_run)
    report.cursor = page[limit - 1].pk if len(page) > limit else None
    page = page[:limit]
    if dry_run:
        report.asked = [invoice.pk for invoice in page]
        return report
    asker = _Asker(report, progress, len(page))
    progress(0, len(page))
    for name, group in _by_alias(page).items():
        provider = _provider(name)
        if not _askable(provider):
            report.unreachable[name] = _("cannot be asked for a payment's status")
            asker._step(len(group))
            continue
        for fresh in asker.ask(name, group):
            if fresh.status not in EXPIRABLE:
                continue  # the provider answered: paid, failed, expired...
            result = services.apply_event(expiry_event(fresh, now))
            if result.result is services.Result.APPLIED:
                report.changes.append(
                    Change(
                        fresh.pk, str(fresh.uuid), name, fresh.status, result.new_status
                    )
                )
    remember("expire", report.outcome())
    return report


# --- the status summary -------------------------------------------------------------


def status_summary(now: datetime | None = None) -> dict[str, Any]:
    """What needs the merchant, per provider alias: webhook events failed,
    waiting (``received``) and given up; invoices flagged; invoices waiting for
    the provider longer than ``RECONCILE_AFTER``; and the last run of each job
    (time and outcome). ``needs_attention``: an event failed or given up, an
    invoice flagged, or the last reconciliation or expiry could not ask
    someone."""
    now = now or timezone.now()
    events = (
        WebhookEvent.objects.filter(status__in=_RETRIABLE)
        .values("provider")
        .annotate(
            failed=Count("pk", filter=Q(status=WebhookEvent.Status.FAILED)),
            received=Count("pk", filter=Q(status=WebhookEvent.Status.RECEIVED)),
            gave_up=Count("pk", filter=Q(needs_attention=True)),
        )
        .order_by()
    )
    waiting_since = now - _duration(None, "RECONCILE_AFTER")
    invoices = (
        Invoice.objects.filter(
            Q(needs_attention=True)
            | Q(status__in=RECONCILED, created_at__lte=waiting_since)
        )
        .values("provider")
        .annotate(
            flagged=Count("pk", filter=Q(needs_attention=True)),
            waiting=Count(
                "pk",
                filter=Q(status__in=RECONCILED, created_at__lte=waiting_since)
                & ~Q(checkout={}),
            ),
        )
        .order_by()
    )
    blank = {"failed": 0, "received": 0, "gave_up": 0, "flagged": 0, "waiting": 0}
    providers: dict[str, dict[str, int]] = {
        alias: dict(blank) for alias in registry.aliases()
    }
    rows: list[dict[str, Any]] = [*map(dict, events), *map(dict, invoices)]
    for row in rows:
        counts = providers.setdefault(row["provider"], dict(blank))
        for key in blank:
            if key in row:
                counts[key] = row[key]
    totals = {key: sum(c[key] for c in providers.values()) for key in blank}
    runs = {job: last_run(job) for job in ("reconcile", "expire")}
    troubled = any(
        run and (run.get("errors") or run.get("unreachable")) for run in runs.values()
    )
    return {
        "providers": dict(sorted(providers.items())),
        "totals": totals,
        "last_runs": runs,
        "needs_attention": bool(
            totals["failed"] or totals["gave_up"] or totals["flagged"] or troubled
        ),
    }


def run_time(run: dict[str, Any] | None) -> datetime | None:
    """The time of a run :func:`last_run` returned."""
    return parse_datetime(run["at"]) if run and run.get("at") else None


# --- the Celery tasks ----------------------------------------------------------------


def _exclusive(job: str, timeout: float, call: Callable[[], Any]) -> Any:
    """Run ``call`` unless another run of ``job`` holds the cache lock (beat
    fired again while a long run goes on): that run is skipped."""
    cache = _cache()
    key = f"{CACHE_PREFIX}lock:{job}"
    token = uuid.uuid4().hex
    if not cache.add(key, token, timeout=timeout):
        return {"skipped": "another run is in progress"}
    started = time.monotonic()
    try:
        return call()
    finally:
        # A run longer than the lock's life may find another's token: leave it.
        if time.monotonic() - started < timeout and cache.get(key) == token:
            cache.delete(key)


@shared_task(name="django_payments_ru.sweep_events", acks_late=True)
def sweep_events_task(limit: int | None = None) -> dict[str, Any]:
    """:func:`sweep_events`; returns its report."""
    return _exclusive(  # type: ignore[no-any-return]
        "sweep", 300, lambda: sweep_events(limit=limit).to_json()
    )


@shared_task(name="django_payments_ru.reconcile", acks_late=True)
def reconcile_task(
    alias: str | None = None, limit: int | None = None
) -> dict[str, Any]:
    """:func:`reconcile`, continuing after the last run; returns its report."""
    return _exclusive(  # type: ignore[no-any-return]
        f"reconcile:{alias or '*'}",
        1800,
        lambda: reconcile(alias=alias, limit=limit, resume=True).to_json(),
    )


@shared_task(name="django_payments_ru.expire", acks_late=True)
def expire_task(alias: str | None = None, limit: int | None = None) -> dict[str, Any]:
    """:func:`expire`; returns its report."""
    return _exclusive(  # type: ignore[no-any-return]
        f"expire:{alias or '*'}",
        1800,
        lambda: expire(alias=alias, limit=limit).to_json(),
    )
