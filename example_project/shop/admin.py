from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from .models import Order, PaymentAttempt, Product


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "price", "currency", "is_active"]
    list_editable = ["is_active"]


class PaymentAttemptInline(admin.TabularInline):
    model = PaymentAttempt
    fields = ["invoice", "created_at"]
    readonly_fields = ["invoice", "created_at"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "product",
        "amount",
        "email",
        "status_display",
        "created_at",
        "paid_at",
    ]
    list_filter = ["paid_at", "created_at"]
    search_fields = ["email", "uuid"]
    readonly_fields = [
        "uuid",
        "product",
        "amount",
        "currency",
        "email",
        "created_at",
        "paid_at",
        "status_display",
    ]
    inlines = [PaymentAttemptInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("attempts__invoice")

    @admin.display(description=_("status"))
    def status_display(self, obj):
        return obj.get_status_display()
