"""The admin pages of a Love&Pay alias (``BaseProvider.admin_views``).

* **API key**: whether Love&Pay has blocked the key (2.1, the seed), what to do
  about it, and the button "The key was re-indexed", which makes one probe
  call and forgets the block only when it succeeds.
* **Batch upload**: a CSV of up to 1000 invoices sent through the batch upload
  (4.6, :func:`~.batch.upload_batch`); the refused rows are listed by number.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.translation import gettext_lazy as _

from ...exceptions import PaymentsError
from ..base import ProviderAdminView

if TYPE_CHECKING:
    from ..base import BaseProvider
    from .provider import Provider


class BatchForm(forms.Form):
    file = forms.FileField(
        label=_("CSV file"),
        help_text=_(
            "Columns: amount (required, rubles), description, email, phone, "
            "order_id; at most 1000 rows."
        ),
    )
    send_emails = forms.BooleanField(
        label=_("Let Love&Pay e-mail the payment links"), required=False
    )


def key_view(
    request: HttpRequest, provider: BaseProvider
) -> HttpResponse | dict[str, Any]:
    """GET: the key's state. POST: "the key was re-indexed"."""
    lp: Provider = provider  # type: ignore[assignment]
    if request.method == "POST":
        try:
            lp.confirm_reindexed()
        except PaymentsError as exc:
            messages.error(
                request,
                _(
                    "The probe call failed, the key is still treated as blocked: "
                    "%(error)s"
                )
                % {"error": exc},
            )
        else:
            messages.success(
                request,
                _("The probe call succeeded: Love&Pay accepts the key again."),
            )
        return HttpResponseRedirect(request.get_full_path())
    block = lp.keyblock.get()
    since = datetime.fromtimestamp(block.since, tz=UTC) if block else None
    return {"key_block": block, "blocked_since": since, "problems": lp.health()}


def batch_view(
    request: HttpRequest, provider: BaseProvider
) -> HttpResponse | dict[str, Any]:
    """GET: the upload form. POST: upload, then show what was created."""
    from .batch import upload_batch

    result = None
    if request.method == "POST":
        form = BatchForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                result = upload_batch(
                    provider.alias,
                    form.cleaned_data["file"].read(),
                    send_emails=form.cleaned_data["send_emails"],
                )
            except PaymentsError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(
                    request,
                    _("%(created)d invoices created, %(refused)d rows refused.")
                    % {"created": result.created, "refused": len(result.errors)},
                )
    else:
        form = BatchForm()
    return {"form": form, "result": result}


def admin_views(provider: Provider) -> list[Any]:
    return [
        ProviderAdminView(
            slug="api-key",
            title=_("Love&Pay API key"),
            view=key_view,
            template="admin/django_payments_ru/loveandpay/api_key.html",
        ),
        ProviderAdminView(
            slug="batch",
            title=_("Love&Pay batch upload"),
            view=batch_view,
            template="admin/django_payments_ru/loveandpay/batch.html",
            permission="django_payments_ru.add_invoice",
        ),
    ]
