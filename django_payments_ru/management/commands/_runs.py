"""What ``payments_reconcile`` and ``payments_expire`` share: the options of
a run over invoices (``--alias``, ``--limit``, ``--dry-run``), its checks and
its progress, and the summary lines of its report."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.management.base import CommandParser
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from ... import jobs
from ...jobs import RunReport
from ...status import InvoiceStatus
from ..base import JobCommand


class InvoiceJobCommand(JobCommand):
    """A command that runs a job over invoices, one alias or all."""

    label = gettext_lazy("Invoices")
    #: The help of ``--limit`` (it names the setting of the default).
    limit_help: Any = ""

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--alias", default=None, help=_("Only this provider alias's invoices.")
        )
        parser.add_argument("--limit", type=int, default=None, help=self.limit_help)
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help=_("List the invoices that would be asked; ask nobody."),
        )

    def run_job(
        self, job: Callable[..., RunReport], options: dict[str, Any], **params: Any
    ) -> None:
        """Check the shared ``options``, run ``job`` with them, ``params`` and a
        progress line, and report."""
        alias, limit, dry_run = options["alias"], options["limit"], options["dry_run"]
        as_json, verbosity = options["as_json"], options["verbosity"]
        if limit is not None and limit < 1:
            raise self.usage(_("--limit must be at least 1."))
        if alias and alias not in jobs.registry.aliases():
            raise self.usage(
                _("Unknown provider alias %(alias)s.") % {"alias": repr(alias)}
            )
        progress = None if dry_run else self.progress(as_json, verbosity)
        try:
            report = job(
                alias=alias,
                limit=limit,
                dry_run=dry_run,
                progress=progress or jobs.no_progress,
                **params,
            )
        finally:
            if progress:
                progress.close()
        self.finish(report.to_json(), as_json, report_lines(report))


def _name(alias: str) -> str:
    """The provider of ``alias`` by its display name, with the alias only when
    another configured alias has the same name ("Life-Pay (shop_b)"); the
    alias once it is gone from the settings."""
    from django.core.exceptions import ImproperlyConfigured

    from ... import registry

    def name_of(other: str) -> str:
        return str(registry.get_provider(other).display_name or other)

    try:
        name = name_of(alias)
    except ImproperlyConfigured:
        return alias
    for other in registry.aliases():
        try:
            shared = other != alias and name_of(other) == name
        except ImproperlyConfigured:
            continue
        if shared:
            return f"{name} ({alias})"
    return name


def _status(value: str) -> str:
    try:
        return str(InvoiceStatus(value).label)
    except ValueError:
        return value


def report_lines(report: RunReport) -> list[str]:
    if report.dry_run:
        count = len(report.asked)
        lines = [
            ngettext(
                "Dry run: %(count)s invoice would be asked; nothing changed.",
                "Dry run: %(count)s invoices would be asked; nothing changed.",
                count,
            )
            % {"count": count}
        ]
        lines += [_("Invoice %(pk)s") % {"pk": pk} for pk in report.asked]
    else:
        asked, changed, errors = (
            len(report.asked),
            len(report.changes),
            len(report.errors),
        )
        lines = [
            _("%(asked)s, %(changed)s, %(errors)s.")
            % {
                "asked": ngettext(
                    "%(count)s invoice asked", "%(count)s invoices asked", asked
                )
                % {"count": asked},
                "changed": ngettext("%(count)s changed", "%(count)s changed", changed)
                % {"count": changed},
                "errors": ngettext("%(count)s error", "%(count)s errors", errors)
                % {"count": errors},
            }
        ]
    lines += [
        _("Invoice %(invoice)s (%(provider)s): %(old)s → %(new)s")
        % {
            "invoice": c.invoice,
            "provider": _name(c.alias),
            "old": _status(c.old),
            "new": _status(c.new),
        }
        for c in report.changes
    ]
    lines += [
        _("Invoice %(invoice)s (%(provider)s) could not be asked: %(error)s")
        % {**error, "provider": _name(str(error.get("alias", "")))}
        for error in report.errors
    ]
    lines += [
        _("%(provider)s is unreachable, its invoices are unchanged: %(error)s")
        % {"provider": _name(alias), "error": error}
        for alias, error in sorted(report.unreachable.items())
    ]
    if report.cursor is not None:
        lines.append(
            _("Stopped at the limit; continue with --after %(cursor)s (or --resume).")
            % {"cursor": report.cursor}
        )
    return lines
