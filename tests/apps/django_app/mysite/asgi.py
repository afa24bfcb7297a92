"""The site's ASGI application: ``riad run mysite.asgi:application``.

The database lives in memory: its tables and first notes are made here, at
start-up, and this module's connection keeps it alive.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
application = get_asgi_application()

from django.core.management import call_command  # noqa: E402  (after setup)

call_command("migrate", run_syncdb=True, verbosity=0)

from notes.models import Note  # noqa: E402

Note.objects.bulk_create(
    [Note(title="Welcome", body="A note from the start."), Note(title="Second", body="Another.")]
)
