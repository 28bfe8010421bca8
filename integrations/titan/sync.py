"""The Titan HST sync job: a roster CSV's users and site roles into Titan (docs/titan.md).

Stages: read (Titan's sites, roles, users and memberships, every page; the roster is read
and validated against Titan's sites and roles meanwhile, while the pages come in on a
second thread) → validate (the roster's problems recorded) → plan
(integrations/titan/plan.py; stored under DATA_DIR/titan/plans by its content hash) →
guardrail → apply (creates and updates, then adds and role changes, then removals; each
outcome a run item holding the state it replaced) → report.

Nothing is sent before the plan exists and passes: a dry run stops after planning, a run
whose plan trips the guardrail is held (status held, exit 3), and a run applying a plan
someone previewed stops, held, when the plan it computes is not that one (Titan changed
meanwhile), so the new plan is shown again instead of applied stale.

Resuming (a killed worker, re-queued by the reaper): the run applies the rest of its
stored plan, skipping every operation it recorded as done. An operation sent but not
recorded is safe to send again: PUT and PATCH set absolute values, a repeated DELETE
answers 404 (already gone), and a repeated create answers 409 duplicate_external_id,
reconciled by external id, so no user is ever created twice.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import os
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from integrations.http import AuthError, ConfigError, TransientError, VendorError, redact
from integrations.jobs import HeldByGuardrail, InvalidInput
from integrations.models import RosterUpload, TitanSiteLimit
from integrations.rosters import roster_store_path, roster_stored
from integrations.titan.client import DuplicateExternalId, TitanClient
from integrations.titan.gcpause import gc_paused
from integrations.titan.plan import (
    ADD,
    CREATE,
    REMOVE,
    ROLES,
    UPDATE,
    Limits,
    guardrail_check,
    plan_compute,
    undo_plan,
)
from integrations.titan.records import TitanState
from integrations.titan.roster import (
    DUPLICATE,
    TitanRoster,
    titan_header_changes,
    titan_roster_read,
)
from integrations.titan.store import plan_load, plan_save
from reports.constants import ErrorClass
from reports.models import Run, RunKind, RunStatus
from reports.services import (
    RunLeaseLost,
    RunTracker,
    approval_for,
    approval_record,
    run_create,
    run_get_or_create,
    run_lock_key,
)

logger = logging.getLogger(__name__)

KIND = RunKind.TITAN_SYNC
OUTCOMES = {
    CREATE: "created",
    UPDATE: "updated",
    ADD: "added",
    ROLES: "roles_changed",
    REMOVE: "removed",
}
DONE_OUTCOMES = tuple(OUTCOMES.values())
PLANNED = {
    CREATE: "to_create",
    UPDATE: "to_update",
    ADD: "to_add",
    ROLES: "to_change_roles",
    REMOVE: "to_remove",
}
INVALID_OUTCOME = "invalid"
SKIPPED = "skipped"
PHASES = (
    ("apply users", (CREATE, UPDATE)),
    ("apply memberships", (ADD, ROLES)),
    ("apply removals", (REMOVE,)),
)
FINISHED_APPLIED = (RunStatus.SUCCEEDED, RunStatus.PARTIAL)
# While Titan's pages come in, the run's progress and heartbeat are written this often.
READ_HEARTBEAT_SECONDS = 2.0


# --- creating runs ---------------------------------------------------------------------
def titan_run_create(
    *,
    upload: RosterUpload | None,
    dry_run: bool,
    triggered_by: str,
    user=None,
    extra: dict[str, Any] | None = None,
    subject: str = "",
) -> Run:
    params: dict[str, Any] = {}
    if upload is not None:
        params = {
            "roster_id": upload.pk,
            "file_name": upload.original_name,
            "sha256": upload.sha256,
            "size": upload.size,
        }
    params.update(extra or {})
    fields = {
        "kind": KIND,
        "triggered_by": triggered_by,
        "user": user,
        "dry_run": dry_run,
        "subject": subject or (upload.original_name if upload else ""),
        "params": params,
    }
    if dry_run:
        # A preview sends nothing: any number may plan at once.
        return run_create(**fields)
    run, created = run_get_or_create(**fields, lock_key=TITAN_APPLY_LOCK)
    if not created:
        raise TitanBusy(
            f"Titan sync run #{run.pk} ({run.subject or 'a sync'}) is "
            f"{run.get_status_display().lower()} and changes Titan now; this one was not "
            "started. Apply it again when that run has finished."
        )
    return run


# One sync that changes Titan at a time: two applies of different files would interleave
# their creates and removals. A held run waits outside the lock; approving it takes it.
TITAN_APPLY_LOCK = run_lock_key(KIND, "apply")


class TitanBusy(InvalidInput):
    """Another Titan sync that changes Titan is queued or running; nothing was started."""


def titan_run_from_path(
    path: str | os.PathLike, *, dry_run: bool, triggered_by: str, approve_reason: str = ""
) -> Run:
    """A queued run for a local file (the command). `approve_reason`: the command's
    `--approve --reason`, which lets this run's plan through its guardrail, once."""
    path = Path(path)
    extra: dict[str, Any] = {}
    if approve_reason:
        extra["approve"] = {"by": triggered_by, "reason": approve_reason}
    upload, refusal = roster_store_path(path)
    if upload is not None:
        return titan_run_create(
            upload=upload, dry_run=dry_run, triggered_by=triggered_by, extra=extra
        )
    return titan_run_create(
        upload=None,
        dry_run=dry_run,
        triggered_by=triggered_by,
        subject=path.name,
        extra={**extra, "file_name": path.name, "refused": refusal},
    )


def titan_limits() -> Limits:
    """The guardrail limits: the settings, and each site's override from the admin."""
    count, percent = settings.TITAN_MAX_REMOVALS, settings.TITAN_MAX_REMOVAL_PERCENT
    if not isinstance(count, int) or count < 0:
        raise ConfigError(f"TITAN_MAX_REMOVALS must be a whole number of 0 or more, got {count}")
    if not 0 <= float(percent) <= 100:
        raise ConfigError(f"TITAN_MAX_REMOVAL_PERCENT must be between 0 and 100, got {percent}")
    sites = {
        limit.site_name: (
            limit.max_removals,
            None if limit.max_removal_percent is None else float(limit.max_removal_percent),
        )
        for limit in TitanSiteLimit.objects.all()
    }
    return Limits(max_removals=count, max_percent=float(percent), sites=sites)


# --- the job ---------------------------------------------------------------------------
def titan_sync_job(tracker: RunTracker) -> None:
    run = tracker.run
    params = run.params
    if params.get("refused"):
        raise InvalidInput(params["refused"])
    original = _original(params)
    upload = None if original is not None else roster_stored(params.get("roster_id"))
    client = TitanClient.from_settings()  # a missing setting stops here: nothing sent
    try:
        plan = plan_load(params.get("plan_hash")) if params.get("applying") else None
        if params.get("applying") and plan is None:
            raise InvalidInput(
                "The stored plan of this run is missing or was altered; it cannot be resumed. "
                "Start a new sync."
            )
        if plan is None:
            plan = _plan(tracker, client, upload, original)
            if run.dry_run:
                _record_preview(tracker, plan)
                run.message = _summary(run, plan, dry_run=True)
                return
            _params_write(tracker, applying=True)
        _apply(tracker, client, plan)
        with tracker.stage("report"):
            run.message = _summary(run, plan, dry_run=False)
    finally:
        client.close()


def _original(params: dict[str, Any]) -> Run | None:
    if not params.get("undo_of"):
        return None
    original = Run.objects.filter(pk=params["undo_of"], kind=KIND).first()
    if original is None:
        raise InvalidInput(f"Run {params['undo_of']} to undo does not exist any more.")
    return original


def run_params_update(run: Run, **values: Any) -> None:
    """Write params of a run no worker holds (a finished preview) now."""
    run.params = {**run.params, **values}
    Run.objects.filter(pk=run.pk).update(params=run.params)


def _params_write(tracker: RunTracker, **values: Any) -> None:
    """Write the running run's params now (the run page and a resume read them), as long
    as this worker still holds the run's lease."""
    run = tracker.run
    run.params = {**run.params, **values}
    owned = Run.objects.filter(pk=run.pk, lease=tracker.lease, status=RunStatus.RUNNING)
    if owned.update(params=run.params) != 1:
        raise RunLeaseLost(run.pk, tracker.lease)


def _plan(
    tracker: RunTracker,
    client: TitanClient,
    upload: RosterUpload | None,
    original: Run | None,
) -> dict[str, Any]:
    """Read, validate, plan, store the plan, and decide whether it may be applied."""
    run = tracker.run
    # Nothing was applied yet (a held or approved run plans again): start clean.
    tracker.flush_items()
    run.items.all().delete()
    run.counts = {}
    limits = titan_limits()
    header: dict[str, Any] | None = None
    rows_read, last_row = 0, 1
    # Nothing read or planned here forms a cycle: the collector's walks are pure cost.
    with gc_paused():
        with tracker.stage("read", unit="pages"):
            state, roster = _read_state_and_roster(tracker, client, upload)
        if roster is None:
            assert original is not None
            with tracker.stage("plan"):
                plan = undo_plan(_applied_items(original), state)
        else:
            with tracker.stage("validate", unit="rows"):
                header = roster.header.as_dict()
                protected = _record_problems(tracker, roster)
                rows_read = roster.counts["rows"]
                last_row = max(
                    [1, *(r.row for r in roster.rows), *(p.row for p in roster.problems)]
                )
            with tracker.stage("plan"):
                plan = plan_compute(state, roster.rows, protected=protected)
    verdict = guardrail_check(plan, limits)
    plan_save(plan)
    for kind, key in PLANNED.items():
        tracker.set_count(key, plan["counts"][kind])
    tracker.set_count("rows", rows_read)
    tracker.set_count("unchanged", plan["unchanged"])
    tracker.set_count("fetched", len(state.users))
    _params_write(
        tracker,
        plan_hash=plan["hash"],
        verdict=verdict,
        header=header,
        since_last=_since_last(run, header),
        memberships=state.membership_count,
        # Items of operations come after every row number of the file (problems use those).
        seq_base=last_row + 1,
    )
    tracker.advance(0)
    if run.dry_run or approval_for(run=run, plan_hash=plan["hash"]):
        return plan
    expected = run.params.get("expected_hash")
    if expected and expected != plan["hash"]:
        raise HeldByGuardrail(
            "Titan changed since this plan was previewed, so the plan was computed again "
            "and differs; nothing was sent. Review the new plan, then approve it with a "
            "reason or discard it."
        )
    if verdict["held"]:
        intent = run.params.get("approve")
        if intent:
            approval_record(
                run=run,
                plan_hash=plan["hash"],
                decided_by=intent["by"],
                reason=intent["reason"],
                user=run.user,
            )
        else:
            raise HeldByGuardrail(
                "Held by the guardrail; nothing was sent. "
                + " ".join(verdict["reasons"])
                + " Review the removals, then approve this plan once with a reason, "
                "or discard it."
            )
    return plan


class _ReadStopped(Exception):
    """The roster was refused: the pages still to read are not needed."""


def _read_state_and_roster(
    tracker: RunTracker, client: TitanClient, upload: RosterUpload | None
) -> tuple[TitanState, TitanRoster | None]:
    """Titan's state, and the roster (if any) read and validated against it.

    Validating needs only Titan's sites and roles (two calls), so the roster is read and
    validated here while a second thread reads the users and every site's members (nearly
    all the pages): the CPU work of validation fills the time spent waiting for Titan.
    That thread only talks HTTP; progress (pages) and the database stay on this one.
    """
    sites, roles = client.sites(), client.roles()
    pages = [0, 0]  # [read by the reading thread, reported by this one]
    stop = threading.Event()

    def on_page() -> None:  # the reading thread
        if stop.is_set():
            raise _ReadStopped
        pages[0] += 1

    def report(_rows: int = 0) -> None:  # this thread
        done = pages[0]
        tracker.advance(done - pages[1])
        pages[1] = done

    tracker.advance(2)
    read = functools.partial(client.read_state, on_page=on_page, sites=sites, roles=roles)
    roster = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="titan-read") as pool:
        # copy_context: the reading thread's log lines carry the run (integrations.logs).
        future = pool.submit(contextvars.copy_context().run, read)
        try:
            if upload is not None:
                roster = titan_roster_read(
                    upload.path,
                    sites=[site.name for site in sites],
                    roles=list(roles),
                    aliases=None,  # TITAN_HEADER_ALIASES
                    on_progress=report,
                )
            while True:
                try:
                    state = future.result(timeout=READ_HEARTBEAT_SECONDS)
                    break
                except FutureTimeout:
                    report()
        except BaseException:
            stop.set()  # the pool's exit waits for the reading thread: end it soon
            raise
    report()
    return state, roster


def _record_problems(tracker: RunTracker, roster: TitanRoster) -> set[str]:
    """Each problem row is an item; a user with an invalid row is protected from removals
    (their row was meant, but is broken: a missing membership is not a removal)."""
    invalid = skipped = 0
    for problem in roster.problems:
        duplicate = problem.kind == DUPLICATE
        invalid += not duplicate
        skipped += duplicate
        tracker.item(
            outcome=SKIPPED if duplicate else INVALID_OUTCOME,
            key=problem.external_id,
            label=f"Row {problem.row}" if problem.row else "File",
            group=problem.site_name,
            seq=problem.row,
            error_class="" if duplicate else ErrorClass.INVALID_DATA,
            message=problem.message,
            data={"row": problem.row, "column": problem.column},
        )
    with transaction.atomic():
        tracker.flush_items()
    tracker.set_count(INVALID_OUTCOME, invalid)
    tracker.set_count(SKIPPED, skipped)
    # An invalid row did not go through: it counts as failed (exit status 1).
    tracker.set_count("failed", invalid)
    return set(roster.users_with_problems)


def _since_last(run: Run, header: dict[str, Any] | None) -> dict[str, Any] | None:
    """The last applied sync, and how this file's columns differ from its file's."""
    last = (
        Run.objects.filter(kind=KIND, dry_run=False, status__in=FINISHED_APPLIED)
        .exclude(pk=run.pk)
        .exclude(params__undo_of__isnull=False)
        .order_by("-finished_at", "-pk")
        .first()
    )
    if last is None:
        return None
    before = last.params.get("header")
    return {
        "run": last.pk,
        "finished_at": last.finished_at.isoformat() if last.finished_at else "",
        "file": last.subject,
        "counts": {k: v for k, v in last.counts.items() if k in DONE_OUTCOMES},
        "column_changes": (
            titan_header_changes(before, header) if header is not None and before else []
        ),
    }


def _label(op: dict[str, Any]) -> str:
    kind = op["op"]
    if kind == CREATE:
        f = op["fields"]
        return f"create {f['first_name']} {f['last_name']} <{f['email']}>"
    if kind == UPDATE:
        return "update " + ", ".join(f"{k} {v[0]!r} → {v[1]!r}" for k, v in op["changes"].items())
    if kind == ADD:
        return f"add as {', '.join(op['roles'])}"
    if kind == ROLES:
        return f"roles {', '.join(op['before'])} → {', '.join(op['roles'])}"
    return f"remove (was {', '.join(op['before'])})"


def _seq(run: Run, index: int) -> int:
    return int(run.params.get("seq_base", 2)) + index


def _record_preview(tracker: RunTracker, plan: dict[str, Any]) -> None:
    with tracker.stage("report", total=len(plan["ops"]), unit="changes"):
        for index, op in enumerate(plan["ops"]):
            tracker.item(
                outcome=PLANNED[op["op"]],
                key=op["external_id"],
                label=_label(op)[:300],
                group=op.get("site", ""),
                seq=_seq(tracker.run, index),
                message="Dry run: planned, not sent.",
                data={"op": op["id"], "kind": op["op"], "dry_run": True},
            )
            tracker.advance()
        tracker.flush_items()


# --- applying --------------------------------------------------------------------------
def _apply(tracker: RunTracker, client: TitanClient, plan: dict[str, Any]) -> None:
    run = tracker.run
    tracker.flush_items()
    # Resumed: keep what went through, forget failed attempts (they are tried again).
    run.items.filter(data__has_key="op").exclude(outcome__in=DONE_OUTCOMES).delete()
    done: dict[str, dict[str, Any]] = {
        data["op"]: data
        for data in run.items.filter(data__has_key="op", outcome__in=DONE_OUTCOMES).values_list(
            "data", flat=True
        )
    }
    kept = Counter(run.items.values_list("outcome", flat=True))
    for outcome in DONE_OUTCOMES:
        tracker.set_count(outcome, kept.get(outcome, 0))
    tracker.set_count("failed", kept.get(INVALID_OUTCOME, 0))
    ids: dict[str, int] = {
        op["external_id"]: op["user_id"] for op in plan["ops"] if op.get("user_id") is not None
    }
    ids.update({d["external_id"]: d["user_id"] for d in done.values() if d.get("user_id")})
    for stage, kinds in PHASES:
        ops = [(i, op) for i, op in enumerate(plan["ops"]) if op["op"] in kinds]
        with tracker.stage(stage, total=len(ops), unit="changes"):
            for index, op in ops:
                if op["id"] not in done:
                    _apply_one(tracker, client, op, ids, seq=_seq(run, index))
                tracker.advance()


def _apply_one(
    tracker: RunTracker,
    client: TitanClient,
    op: dict[str, Any],
    ids: dict[str, int],
    *,
    seq: int,
) -> None:
    kind, ext = op["op"], op["external_id"]
    data: dict[str, Any] = {
        "op": op["id"],
        "kind": kind,
        "external_id": ext,
        "user_id": op.get("user_id"),
    }
    if "site_id" in op:
        data.update(site_id=op["site_id"], site=op["site"])
    message = ""
    try:
        if kind == CREATE:
            message = _create(client, op, data, ids)
        elif kind == UPDATE:
            client.update_user(op["user_id"], {f: new for f, (_old, new) in op["changes"].items()})
            data["changes"] = op["changes"]
        elif kind in (ADD, ROLES):
            user_id = op.get("user_id") or ids.get(ext)
            if user_id is None:
                raise VendorError(
                    "Not sent: the user could not be created in Titan (see the create above).",
                    error_class=ErrorClass.INVALID_DATA,
                )
            data["user_id"] = user_id
            client.set_roles(op["site_id"], user_id, op["roles"])
            data.update(roles=op["roles"], before=op.get("before"))
        else:
            gone = not client.remove_member(op["site_id"], op["user_id"])
            data["before"] = op["before"]
            if gone:
                message = "Already gone from the site (a repeat, or removed meanwhile)."
    except (AuthError, TransientError):
        raise  # the run stops (exit 4); a resume goes on from here
    except VendorError as exc:
        tracker.item(
            outcome="failed",
            key=ext,
            label=_label(op)[:300],
            group=op.get("site", ""),
            seq=seq,
            error_class=exc.error_class,
            message=redact(exc.message),
            data=data,
        )
        tracker.count("failed")
    else:
        tracker.item(
            outcome=OUTCOMES[kind],
            key=ext,
            label=_label(op)[:300],
            group=op.get("site", ""),
            seq=seq,
            message=message,
            data=data,
        )
        tracker.count(OUTCOMES[kind])
    # Recorded at once: a worker killed after this line never sends the operation again.
    tracker.flush_items()


def _create(client: TitanClient, op: dict[str, Any], data: dict[str, Any], ids) -> str:
    ext, fields = op["external_id"], op["fields"]
    data["fields"] = fields
    try:
        user = client.create_user({"external_id": ext, **fields})
    except DuplicateExternalId:
        # The user exists (an earlier attempt went through before a crash or a lost
        # response, or someone created it meanwhile): match by external id, never twice.
        user = client.find_user(ext, refresh=True)
        if user is None:
            raise VendorError(
                f"Titan answered that external id {ext} exists, but no such user is listed.",
                error_class=ErrorClass.CONFLICT,
            ) from None
        changes = {
            f: new
            for f, new in fields.items()
            if (
                getattr(user, f).casefold() != new.casefold()
                if f == "email"
                else getattr(user, f) != new
            )
        }
        if changes:
            data["before_fields"] = {f: getattr(user, f) for f in changes}
            client.update_user(user.id, changes)
        ids[ext] = user.id
        data["user_id"] = user.id
        data["reconciled"] = True
        return "Already in Titan: matched by external id and reconciled, not created twice."
    ids[ext] = user.id
    data["user_id"] = user.id
    return ""


def _applied_items(run: Run) -> list[dict[str, Any]]:
    """What a finished run changed, in the order it changed it."""
    return list(
        run.items.filter(data__has_key="op", outcome__in=DONE_OUTCOMES)
        .order_by("seq", "id")
        .values_list("data", flat=True)
    )


def _summary(run: Run, plan: dict[str, Any], *, dry_run: bool) -> str:
    c = plan["counts"]
    verdict = run.params.get("verdict") or {}
    parts = []
    if run.params.get("undo_of"):
        parts.append(f"Undo of run #{run.params['undo_of']}")
    else:
        parts.append(f"{plan['rows']} rows, {plan['users_in_file']} users")
    parts.append(
        f"plan: {c[CREATE]} to create, {c[UPDATE]} to update, {c[ADD]} memberships to add, "
        f"{c[ROLES]} role sets to change, {c[REMOVE]} memberships to remove, "
        f"{plan['unchanged']} users unchanged"
    )
    if verdict.get("held"):
        parts.append("guardrail: " + " ".join(verdict["reasons"]))
    else:
        parts.append("guardrail: within limits")
    if dry_run:
        parts.append("dry run: nothing was sent")
    else:
        counts = run.counts
        parts.append(
            "applied: "
            + ", ".join(f"{counts.get(o, 0)} {o.replace('_', ' ')}" for o in DONE_OUTCOMES)
            + f", {counts.get('failed', 0)} failed"
        )
    return "; ".join(parts) + "."
