from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from django_payments_ru.models import Invoice
from django_payments_ru.status import InvoiceStatus

from .checkout import payment_options
from .forms import BuyForm
from .models import MIN_PRICE, Order, Product


def product_list(request: HttpRequest) -> HttpResponse:
    # Nothing is sold for free: the constraints keep such prices out, this
    # keeps out a row written around them.
    products = Product.objects.filter(is_active=True, price__gte=MIN_PRICE)
    return render(request, "shop/product_list.html", {"products": products})


@require_http_methods(["GET", "POST"])
def buy(request: HttpRequest, pk: int) -> HttpResponse:
    product = get_object_or_404(Product, pk=pk, is_active=True, price__gte=MIN_PRICE)
    form = BuyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        order = Order.objects.create(
            product=product,
            amount=product.price,
            currency=product.currency,
            email=form.cleaned_data["email"],
        )
        return redirect(order)
    return render(request, "shop/buy.html", {"product": product, "form": form})


# The order page calls no provider (the pay links start the payments), but it
# creates the order's invoices under a row lock: one transaction of its own.
@transaction.non_atomic_requests
def order_detail(request: HttpRequest, ref: str) -> HttpResponse:
    order = get_object_or_404(Order.objects.select_related("product"), uuid=ref)
    # An order paid once (even if refunded since), or whose amount is held,
    # offers no more pay buttons.
    settled = order.paid_invoice or _held(order)
    options = [] if settled else payment_options(order, request)
    # Read after the invoices were created: the page shows the stored state.
    order = (
        Order.objects.select_related("product")
        .prefetch_related("attempts__invoice")
        .get(pk=order.pk)
    )
    return render(
        request,
        "shop/order.html",
        {
            "order": order,
            "options": options,
            "held_invoice": _held(order),
            "ended_invoice": _last_ended(order),
        },
    )


def _held(order: Order) -> Invoice | None:
    """The invoice whose amount is held (charged when the order ships)."""
    return next(
        (i for i in order.invoices() if i.status == InvoiceStatus.ON_HOLD), None
    )


#: The ends of an attempt the order page tells the customer about: declined,
#: out of time, or cancelled (by the customer on the provider's page, or by the
#: merchant) while the order is still open.
_TOLD_ENDS = (InvoiceStatus.FAILED, InvoiceStatus.EXPIRED, InvoiceStatus.CANCELLED)


def _last_ended(order: Order) -> Invoice | None:
    """The last attempt that was declined, ran out of time or was cancelled,
    to say so."""
    ended = [i for i in order.invoices() if i.status in _TOLD_ENDS]
    return max(
        ended, key=lambda i: (i.status_changed_at or i.created_at, i.pk), default=None
    )
