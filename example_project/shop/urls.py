from django.urls import path

from . import views

app_name = "shop"

urlpatterns = [
    path("", views.product_list, name="products"),
    path("products/<int:pk>/buy/", views.buy, name="buy"),
    path("orders/<uuid:ref>/", views.order_detail, name="order"),
]
