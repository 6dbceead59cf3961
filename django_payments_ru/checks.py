"""Django system checks for PAYMENTS_RU (filled in below)."""
