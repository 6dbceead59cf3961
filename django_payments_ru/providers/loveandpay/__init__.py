"""Love&Pay (loveandpay.io): SBP and card invoices, signed v2 requests, list-based
reconciliation, CSV batch upload, signed webhooks, key blocking."""

from .provider import Provider

__all__ = ["Provider"]
