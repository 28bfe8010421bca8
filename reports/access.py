"""Who may open admin-only pages (runs, uploads, sync actions).

Anonymous users are sent to the sign-in page; signed-in users who are not admins get a
404, as for a cohort they do not mentor: the page's existence is not confirmed.
"""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import Http404


def staff_required(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not (user.is_active and user.is_staff):
            raise Http404("No such page.")
        return view(request, *args, **kwargs)

    return wrapper
