"""The WSGI application gunicorn serves in the load test
(``gunicorn tests.fault_wsgi:application``), on ``tests.fault_settings``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.fault_settings")

application = get_wsgi_application()
