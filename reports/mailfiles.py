"""A file email backend that writes every message to a file of its own.

Django's file backend names a file after the time (to the second) and the backend
object's id; ids are reused, so two reports sent in one second can land in one file.
Here each message gets a new file (`<time>-<uuid>.eml`), which a person can open on its
own. `filemail://` in EMAIL_URL selects it (config/settings.py).
"""

from __future__ import annotations

import datetime
import os
import uuid

from django.core.mail.backends.filebased import EmailBackend as FileEmailBackend


class EmailBackend(FileEmailBackend):
    def send_messages(self, email_messages):
        if not email_messages:
            return 0
        sent = 0
        with self._lock:
            for message in email_messages:
                stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%SZ")
                path = os.path.join(self.file_path, f"{stamp}-{uuid.uuid4().hex[:12]}.eml")
                try:
                    with open(path, "xb") as out:
                        out.write(message.message().as_bytes() + b"\n")
                except Exception:
                    if not self.fail_silently:
                        raise
                    continue
                sent += 1
        return sent
