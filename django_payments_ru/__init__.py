"""Django payments for Russian providers: Life-Pay, PayConnect, QuantaPay, Love&Pay."""

__version__ = "0.1.0"
