from decimal import Decimal

from django.db import migrations

PRODUCTS = [
    ("Чай «Иван-чай», 100 г", "Ферментированный кипрей из Карелии.", "990.00"),
    ("Самовар электрический", "Латунь, 3 литра.", "2490.50"),
    ("Павловопосадский платок", "Шерсть, 148 × 148 см.", "14990.00"),
]


def create_products(apps, schema_editor):
    Product = apps.get_model("shop", "Product")
    for name, description, price in PRODUCTS:
        Product.objects.get_or_create(
            name=name,
            defaults={
                "description": description,
                "price": Decimal(price),
                "currency": "RUB",
            },
        )


def delete_products(apps, schema_editor):
    Product = apps.get_model("shop", "Product")
    Product.objects.filter(name__in=[name for name, _, _ in PRODUCTS]).delete()


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]

    operations = [migrations.RunPython(create_products, delete_products)]
