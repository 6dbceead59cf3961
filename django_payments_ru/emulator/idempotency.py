"""Idempotency keys of the emulated APIs.

A request carrying a key is run once: its answer (any status below 500) is
stored with a hash of the request, the same key with the same request gets the
stored answer again (header ``Idempotent-Replayed: true``), the same key with a
different request gets a conflict. The work and the stored answer commit in one
transaction, so two concurrent requests with one key never both do the work:
the loser's work is rolled back and it answers with the winner's answer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse

from . import clock
from .models import EmulatedIdempotencyKey


def request_hash(request: HttpRequest) -> str:
    """SHA-256 of the method, path and body; a JSON body is canonicalised, so
    the same fields in another order or spacing are the same request."""
    body = request.body
    with contextlib.suppress(ValueError):  # not JSON: hash the bytes as they are
        body = json.dumps(
            json.loads(body), sort_keys=True, separators=(",", ":")
        ).encode()
    digest = hashlib.sha256()
    for part in (request.method or "", request.path):
        digest.update(part.encode() + b"\0")
    digest.update(body)
    return digest.hexdigest()


def replay(stored: EmulatedIdempotencyKey) -> HttpResponse:
    response = HttpResponse(
        stored.response_body,
        status=stored.response_status,
        content_type=stored.response_content_type or "application/json",
    )
    response["Idempotent-Replayed"] = "true"
    return response


def run_once(
    request: HttpRequest,
    *,
    slug: str,
    key: str,
    handler: Callable[[], HttpResponse],
    conflict: Callable[[], HttpResponse],
    ttl: float,
) -> HttpResponse:
    """Answer ``request`` (which carries ``key``) with ``handler`` at most once."""
    digest = request_hash(request)
    cutoff = clock.now() - timedelta(seconds=ttl)
    EmulatedIdempotencyKey.objects.filter(
        slug=slug, key=key, created_at__lt=cutoff
    ).delete()

    def stored_answer() -> HttpResponse | None:
        stored = EmulatedIdempotencyKey.objects.filter(slug=slug, key=key).first()
        if stored is None:
            return None
        return replay(stored) if stored.request_hash == digest else conflict()

    answer = stored_answer()
    if answer is not None:
        return answer
    try:
        with transaction.atomic():
            response = handler()
            if response.status_code < 500 and not getattr(response, "streaming", False):
                EmulatedIdempotencyKey.objects.create(
                    slug=slug,
                    key=key,
                    request_hash=digest,
                    response_status=response.status_code,
                    response_body=response.content.decode("utf-8"),
                    response_content_type=response.get("Content-Type", ""),
                )
    except IntegrityError:
        # A concurrent request with the same key committed first.
        answer = stored_answer()
        if answer is None:
            raise
        return answer
    return response
