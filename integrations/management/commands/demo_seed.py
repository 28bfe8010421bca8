"""manage.py demo_seed: demo users, cohorts, schedules and a first pull of each demo class.

Idempotent; run by `manage.py demo` against the running simulators (OPENCLASS_* point at
them). Passwords here are demo-only and printed on purpose.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand

from cohorts.models import Cohort, Source
from integrations.apex.enroll import apex_run_from_path
from integrations.demo import DEMO_ROSTER, DEMO_USERS, TITAN_DEMO_ROSTER
from integrations.jobs import job_execute
from integrations.openclass.pull import openclass_run_create
from integrations.openclass.simulator import DEMO_CLASSES
from integrations.schedules import schedules_sync
from integrations.titan.sync import titan_run_from_path
from reports.models import Run, RunKind


class Command(BaseCommand):
    help = "Create the demo users and cohorts and pull every demo class once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-pull", action="store_true", help="Skip the first pulls.")

    def handle(self, *args, **options) -> None:
        admin = self._user("admin", staff=True)
        mentor = self._user("mentor", staff=False)
        Group.objects.get_or_create(name=settings.MENTOR_GROUP)[0].user_set.add(mentor)
        cohorts = []
        for index, (class_id, name) in enumerate(DEMO_CLASSES):
            cohort, _ = Cohort.objects.get_or_create(
                source=Source.OPENCLASS,
                external_id=class_id,
                defaults={"name": name, "sync_interval_hours": 6},
            )
            cohorts.append(cohort)
            if index < 2:
                cohort.mentors.add(mentor)
        self.stderr.write(
            f"  {len(cohorts)} cohorts; mentor '{mentor.username}' mentors "
            f"{', '.join(c.name for c in cohorts[:2])}"
        )
        if options["no_pull"]:
            self._schedules()
            return
        for cohort in cohorts:
            run = openclass_run_create(
                class_id=cohort.external_id,
                cohort_name=cohort.name,
                triggered_by="system:demo",
                user=admin,
            )
            run = job_execute(run.pk)
            counts = " ".join(f"{k}={v}" for k, v in run.counts.items())
            self.stderr.write(f"  pulled {cohort.name}: {run.status} {counts}")
        if settings.CANVAS_BASE_URL and settings.CANVAS_TOKEN:
            self._canvas(admin, mentor)
        # After the first pulls, so each schedule's first run is one interval after its
        # pull, not a re-pull of every cohort a minute after the demo starts.
        self._schedules()
        if settings.APEX_CLIENT_ID and not Run.objects.filter(kind=RunKind.APEX_ENROLL).exists():
            # One enrollment of the demo roster, so the runs list shows every APEX outcome.
            run = apex_run_from_path(DEMO_ROSTER, dry_run=False, triggered_by="system:demo")
            run = job_execute(run.pk)
            counts = " ".join(f"{k}={v}" for k, v in run.counts.items())
            self.stderr.write(f"  enrolled the demo roster into APEX: {run.status} {counts}")
        if settings.TITAN_API_KEY and not Run.objects.filter(kind=RunKind.TITAN_SYNC).exists():
            # One sync of the small demo roster, so the runs list holds a Titan run.
            run = titan_run_from_path(TITAN_DEMO_ROSTER, dry_run=False, triggered_by="system:demo")
            run = job_execute(run.pk)
            counts = " ".join(f"{k}={v}" for k, v in run.counts.items())
            self.stderr.write(f"  synced the demo roster into Titan HST: {run.status} {counts}")

    def _schedules(self) -> None:
        changes = schedules_sync()
        self.stderr.write(
            f"  schedules: {changes.created} created, {changes.updated} updated, "
            f"{changes.unchanged} unchanged"
        )

    def _canvas(self, admin: User, mentor: User) -> None:
        """One bulk pull of the account's available courses, so Canvas cohorts sit beside
        the OpenClass ones (one course fails on permission: its retry is on the run page)."""
        from integrations.canvas.pull import canvas_params_for, canvas_run_create

        run = canvas_run_create(
            params=canvas_params_for(all_courses=True), triggered_by="system:demo", user=admin
        )
        run = job_execute(run.pk)
        counts = " ".join(f"{k}={v}" for k, v in run.counts.items())
        self.stderr.write(f"  pulled Canvas courses: {run.status} {counts}")
        canvas = Cohort.objects.filter(source=Source.CANVAS)
        canvas.filter(sync_interval_hours=None).update(sync_interval_hours=6)
        first = canvas.order_by("external_id").first()
        if first is not None:
            first.mentors.add(mentor)
        schedules_sync()

    def _user(self, key: str, *, staff: bool) -> User:
        username, password, full_name = DEMO_USERS[key]
        first, last = full_name.split(" ", 1)
        user, created = User.objects.get_or_create(
            username=username,
            defaults={
                "first_name": first,
                "last_name": last,
                "email": f"{username}@classbridge.test",
                "is_staff": staff,
                "is_superuser": staff,
            },
        )
        if created:
            user.set_password(password)
            user.save()
        return user
