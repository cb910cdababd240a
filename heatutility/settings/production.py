"""Production hardening on top of the environment-driven base settings.

``DJANGO_SETTINGS_MODULE=heatutility.settings.production``; ``manage.py check --deploy``
passes with no warnings when ``DJANGO_SECRET_KEY`` is a real secret.
"""

from heatutility.settings import *  # noqa: F403
from heatutility.settings import env

DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Documents are e-mailed to customers: a console or in-memory backend here would mark
# them delivered while nobody received them.
EMAIL_BACKEND = env.str(
    "DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend"
)
