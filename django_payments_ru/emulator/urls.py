app_name = "payments_ru_emulator"
urlpatterns: list = []
