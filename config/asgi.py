import os

from django.core.asgi import get_asgi_application

from config.private_files import restrict_umask

restrict_umask()  # files the service writes are its own (docs/operations.md)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_asgi_application()
