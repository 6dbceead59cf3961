from decimal import Decimal

from django.db import migrations


def take_free_products_off_sale(apps, schema_editor):
    # Rows from before the constraints of 0004 (a price of 0 typed in the
    # admin) would make them fail. Such a product could never be paid for
    # (every provider refuses the amount): it goes off sale at the smallest
    # price, for the merchant to correct. Such an order is dropped: no invoice
    # can be made for it, so it has none.
    Product = apps.get_model("shop", "Product")
    Order = apps.get_model("shop", "Order")
    Order.objects.filter(amount__lte=0, attempts__isnull=True).delete()
    Product.objects.filter(price__lte=0).update(price=Decimal("0.01"), is_active=False)


class Migration(migrations.Migration):
    # Its own migration, so its own transaction: PostgreSQL refuses to alter a
    # table with deferred foreign-key checks pending from these deletes.
    dependencies = [
        ("shop", "0002_demo_products"),
    ]

    operations = [
        migrations.RunPython(take_free_products_off_sale, migrations.RunPython.noop),
    ]
