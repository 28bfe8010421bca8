import os

from django.core.wsgi import get_wsgi_application

from config.private_files import restrict_umask

restrict_umask()  # files the service writes are its own (docs/operations.md)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()
