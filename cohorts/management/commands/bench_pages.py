"""manage.py bench_pages: time the cohort pages and API against the current database.

Renders each page in-process with Django's test client (no network, no browser), as an
admin, several times, and prints the median, the slowest and the query count of each.
Used by `make bench` after `generate_bench_cohort`; not a test: it asserts nothing.
"""

from __future__ import annotations

import statistics
import time

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, reset_queries
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cohorts.models import Cohort


class Command(BaseCommand):
    help = "Time the cohort pages and API for one cohort (median of N renders)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--external-id", default="bench-500x400", help="The cohort to time.")
        parser.add_argument("--repeat", type=int, default=5)

    def handle(self, *args, **options) -> None:
        cohort = Cohort.objects.filter(external_id=options["external_id"]).first()
        if cohort is None:
            raise CommandError(
                f"No cohort {options['external_id']!r}: run generate_bench_cohort first."
            )
        student = cohort.students.order_by("id").first()
        admin, _ = User.objects.get_or_create(
            username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
        )
        client = Client(HTTP_HOST="localhost")
        client.force_login(admin)
        pk = cohort.pk
        targets = [
            ("cohort list", reverse("cohorts:list")),
            ("health page", reverse("cohorts:detail", args=[pk])),
            ("student page", reverse("cohorts:student", args=[pk, student.pk])),
            ("students CSV", reverse("cohorts:table_csv", args=[pk, "students"])),
            ("API student health", reverse("cohorts:api_metrics_student_health", args=[pk])),
            ("API blockers", reverse("cohorts:api_metrics_blockers", args=[pk])),
        ]
        progressions = cohort.progressions.count()
        self.stdout.write(
            f"{cohort.name}: {cohort.students.count()} students, "
            f"{cohort.assignments.count()} assignments, {progressions} progressions "
            f"({connection.vendor}); {options['repeat']} renders each, after one warm-up"
        )
        self.stdout.write(f"{'page':<20} {'median':>8} {'slowest':>8} {'queries':>8}")
        for label, url in targets:
            timings, queries = [], 0
            for attempt in range(options["repeat"] + 1):
                reset_queries()
                with CaptureQueriesContext(connection) as captured:
                    began = time.perf_counter()
                    response = client.get(url, secure=True)
                    if getattr(response, "streaming", False):
                        b"".join(response.streaming_content)
                    elapsed = time.perf_counter() - began
                if response.status_code != 200:
                    raise CommandError(f"{label}: HTTP {response.status_code} for {url}")
                if attempt:  # the first render warms caches and imports
                    timings.append(elapsed)
                    queries = len(captured)
            self.stdout.write(
                f"{label:<20} {statistics.median(timings):>7.3f}s {max(timings):>7.3f}s "
                f"{queries:>8}"
            )
