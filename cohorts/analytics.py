"""Cohort health metrics: pure functions from pandas frames to pandas frames.

No request, no ORM: `cohorts.selectors.cohort_frames` loads the three input frames and the
pages, CSV downloads and the JSON API all call these. Every function takes `now` (and a
time zone where days matter) so the same input always gives the same answer. Definitions,
thresholds and the pace are described for people in docs/cohort-health.md.

Input frames (build them with `students_frame`, `assignments_frame`, `progressions_frame`):

- students: student_id, external_id, first_name, last_name, email
- assignments: assignment_id, external_id, name, kind, unit, unit_position, position
- progressions: student_id, assignment_id, grade (0..1 or NaN), started_at, completed_at,
  reviewed_at (UTC timestamps or NaT); and, from sources that flag work (Canvas), missing
  and late (booleans). Rows with only a flag (missing work has no timestamp) count for the
  flags alone.
- students may also carry vendor_last_activity (the source's own last activity, UTC or NaT)
  and current_score (percent), from sources that give them.

Sources differ in what they tell (`SourceSignals`, `signals_for`): OpenClass gives start
times, Canvas does not but flags missing and late work. Where starts are missing, "stuck"
counts students whose work on the assignment is missing, and "slow" the share handed in
late; the pages say so in words.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

STUDENT_COLUMNS = ("student_id", "external_id", "first_name", "last_name", "email")
ASSIGNMENT_COLUMNS = (
    "assignment_id",
    "external_id",
    "name",
    "kind",
    "unit",
    "unit_position",
    "position",
)
PROGRESSION_COLUMNS = (
    "student_id",
    "assignment_id",
    "grade",
    "started_at",
    "completed_at",
    "reviewed_at",
)
STAMPS = ("started_at", "completed_at", "reviewed_at")
FLAGS = ("missing", "late")
DAY = pd.Timedelta(days=1)

ON_TRACK, WATCH, AT_RISK = "on_track", "watch", "at_risk"
STATUS_LABELS = {ON_TRACK: "On track", WATCH: "Watch", AT_RISK: "At risk"}
_SEVERITY = {ON_TRACK: 0, WATCH: 1, AT_RISK: 2}

QUIZ_KIND = "quiz"
# A quiz average this close above the cohort's low-grade threshold earns a "watch".
GRADE_WATCH_MARGIN = 0.10

# Blocker score: each part is scaled to 0..1, capped, then weighted to a 0..100 score.
BLOCKER_WEIGHTS = {"stuck": 40.0, "slow": 25.0, "grade": 20.0, "review": 15.0}
STUCK_FULL_SHARE = 0.25  # a quarter of the cohort stuck on it is as bad as it gets
SLOW_FULL_DAYS = 14.0  # two weeks from start to completion (median)
REVIEW_FULL_DAYS = 7.0  # a week waiting for review (median)

# Dates a filter may name: the cohort's lifetime (course dates, first and last activity,
# today) widened by this margin on either side, and never outside EARLIEST..LATEST_DATE
# (docs/cohort-health.md). Beyond that there is nothing to see, and a range of centuries
# would make the progress chart and its CSV enormous.
DATE_MARGIN = timedelta(days=366)
EARLIEST_DATE, LATEST_DATE = date(1970, 1, 1), date(2199, 12, 31)
# The progress chart never has more points than this: a daily chart over a longer range
# is drawn by week, and a weekly one shows the latest MAX_CHART_PERIODS weeks.
MAX_CHART_PERIODS = 400

UNIT_WEEKS_DEFAULT = 1  # without an end date, each unit of the curriculum takes a week
STALE_GRACE = timedelta(minutes=30)  # a scheduled pull may queue this long before it is late
# Flags (sources that give them): missing work puts a student on watch, then at risk; late
# work on watch. A blocker's "slow" part, without start times, is its share of late hand-ins.
MISSING_WATCH = 1
MISSING_AT_RISK = 3
LATE_WATCH = 3
LATE_FULL_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class SourceSignals:
    """What a cohort's source tells, so the metrics use what exists and say what does not."""

    label: str
    starts: bool  # start times: "stuck" = started and not completed
    flags: bool  # missing and late flags on work
    vendor_activity: bool  # the source's own "last activity" per student
    scores: bool  # a current score per student

    @property
    def words(self) -> str:
        has = ["completion times", "grades"]
        if self.starts:
            has.insert(0, "start times")
        if self.flags:
            has.append("missing and late flags")
        if self.vendor_activity:
            has.append("each student's last activity")
        if self.scores:
            has.append("current scores")
        text = f"{self.label} gives {', '.join(has[:-1])} and {has[-1]}."
        if not self.starts:
            text += (
                f' {self.label} gives no start times: a blocker\'s "stuck" counts students '
                'whose work on it is missing (past due, not handed in), and "slow" the '
                "share of hand-ins that were late."
            )
        if not self.flags:
            text += f" {self.label} flags no missing or late work, so those signals are not used."
        return text


SOURCE_SIGNALS = {
    "openclass": SourceSignals("OpenClass", True, False, False, False),
    "canvas": SourceSignals("Canvas", False, True, True, True),
}


def signals_for(source: str) -> SourceSignals:
    return SOURCE_SIGNALS.get(source) or SourceSignals(
        source or "The source", True, False, False, False
    )


# Run statuses of a pull that refreshed nothing: it failed, or its configuration refused it.
FAILED_PULL_STATUSES = frozenset({"failed", "invalid"})


# --- Input frames ----------------------------------------------------------------------


def _utc(values: Any) -> pd.Series:
    """Aware datetimes, or the ISO text SQLite returns (always UTC there), as UTC stamps."""
    series = pd.Series(values, dtype=object)
    return pd.to_datetime(series, utc=True, format="ISO8601").astype("datetime64[us, UTC]")


def utc_column(values: Sequence[Any]) -> pd.Series:
    """A column of UTC stamps (NaT for None) from aware datetimes or SQLite's ISO text."""
    return _utc(list(values))


def students_frame(rows: Iterable[Sequence[Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=list(STUDENT_COLUMNS))
    frame["student_id"] = frame["student_id"].astype("int64")
    for col in STUDENT_COLUMNS[1:]:
        frame[col] = frame[col].fillna("").astype("str")
    return frame


def assignments_frame(rows: Iterable[Sequence[Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=list(ASSIGNMENT_COLUMNS))
    for col in ("assignment_id", "unit_position", "position"):
        frame[col] = frame[col].fillna(0).astype("int64")
    for col in ("external_id", "name", "kind", "unit"):
        frame[col] = frame[col].fillna("").astype("str")
    return frame


def progressions_frame(rows: Iterable[Sequence[Any]]) -> pd.DataFrame:
    rows = list(rows)
    if not rows:
        frame = pd.DataFrame(
            {
                "student_id": pd.Series(dtype="int64"),
                "assignment_id": pd.Series(dtype="int64"),
                "grade": pd.Series(dtype="float64"),
            }
        )
        for col in STAMPS:
            frame[col] = pd.Series(dtype="datetime64[us, UTC]")
        return frame
    columns = list(zip(*rows, strict=True))
    frame = pd.DataFrame(
        {
            "student_id": np.asarray(columns[0], dtype="int64"),
            "assignment_id": np.asarray(columns[1], dtype="int64"),
            "grade": pd.to_numeric(pd.Series(columns[2], dtype=object)).astype("float64"),
        }
    )
    for index, col in enumerate(STAMPS, start=3):
        frame[col] = _utc(columns[index])
    if len(columns) > len(PROGRESSION_COLUMNS):  # the source's flags: missing, late
        for index, col in enumerate(FLAGS, start=len(PROGRESSION_COLUMNS)):
            frame[col] = np.asarray(columns[index], dtype="bool")
    return frame


def flag_rows(
    students: pd.DataFrame, assignments: pd.DataFrame, progressions: pd.DataFrame
) -> pd.DataFrame | None:
    """(student_id, assignment_id, missing, late) of flagged work by enrolled students on the
    given assignments; None when the source flags nothing (no flag columns)."""
    if not set(FLAGS) <= set(progressions.columns):
        return None
    frame = progressions.loc[
        progressions["student_id"].isin(students["student_id"])
        & progressions["assignment_id"].isin(assignments["assignment_id"])
        & (progressions["missing"] | progressions["late"]),
        ["student_id", "assignment_id", *FLAGS],
    ]
    return frame.drop_duplicates(["student_id", "assignment_id"]).reset_index(drop=True)


def plain(value: Any) -> Any:
    """A frame cell as Python: None for NaN/NaT/NA, datetimes for Timestamps, no numpy."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as dicts of plain Python values (templates, JSON, CSV)."""
    columns = list(frame.columns)
    return [
        {col: plain(v) for col, v in zip(columns, row, strict=True)}
        for row in frame.itertuples(index=False, name=None)
    ]


# --- Shared steps ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Thresholds:
    inactive_days: int = 7
    behind_fraction: float = 0.2
    low_grade: float = 0.6

    @classmethod
    def of(cls, cohort: Any) -> Thresholds:
        """From anything with the three Cohort threshold attributes."""
        return cls(
            inactive_days=int(cohort.inactive_days),
            behind_fraction=float(cohort.behind_fraction),
            low_grade=float(cohort.low_grade),
        )


def _ts(value: datetime | pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def student_names(students: pd.DataFrame) -> pd.Series:
    """Full name, else email, else the vendor id: what a mentor recognises."""
    full = (students["first_name"] + " " + students["last_name"]).str.strip()
    full = full.where(full != "", students["email"])
    return full.where(full != "", students["external_id"])


def curriculum(assignments: pd.DataFrame) -> pd.DataFrame:
    """Assignments in curriculum order (unit, position, id) with `order` 1..n."""
    ordered = assignments.sort_values(
        ["unit_position", "position", "assignment_id"], kind="stable"
    ).reset_index(drop=True)
    ordered["order"] = np.arange(1, len(ordered) + 1, dtype="int64")
    return ordered


def unit_names(assignments: pd.DataFrame) -> list[str]:
    """The curriculum's units, in the order their first assignment comes."""
    return list(dict.fromkeys(curriculum(assignments)["unit"]))


def scoped(
    students: pd.DataFrame, assignments: pd.DataFrame, progressions: pd.DataFrame
) -> pd.DataFrame:
    """The progressions of enrolled students on the given assignments, one row per pair.

    A pair seen twice (two vendor records) counts once: started at the earliest start,
    completed at the earliest completion, reviewed at the latest review, best grade.
    A completion without a start counts as started when it was completed. A row with no
    timestamp at all (not started; its grade, if any, is ignored) is left out.
    """
    frame = progressions[
        progressions["student_id"].isin(students["student_id"])
        & progressions["assignment_id"].isin(assignments["assignment_id"])
        & progressions[list(STAMPS)].notna().any(axis=1)
    ]
    if frame.duplicated(["student_id", "assignment_id"]).any():
        frame = frame.groupby(["student_id", "assignment_id"], as_index=False, sort=True).agg(
            grade=("grade", "max"),
            started_at=("started_at", "min"),
            completed_at=("completed_at", "min"),
            reviewed_at=("reviewed_at", "max"),
        )
    started = frame["started_at"].fillna(frame["completed_at"])
    return frame.assign(started_at=started)


def progressions_as_of(progressions: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """The progressions as they stood at `as_of`: later timestamps (and grades) unseen."""
    cut = _ts(as_of)
    frame = progressions.copy()
    for col in STAMPS:
        frame[col] = frame[col].where(frame[col] <= cut)
    graded_later = frame["completed_at"].isna() & progressions["completed_at"].notna()
    frame["grade"] = frame["grade"].where(~graded_later)
    # Nothing seen yet; a record with only a review (before the cut) is still activity.
    untouched = frame[list(STAMPS)].isna().all(axis=1)
    return frame[~untouched]


# --- Completion ------------------------------------------------------------------------


def completion_by_assignment(
    students: pd.DataFrame, assignments: pd.DataFrame, progressions: pd.DataFrame
) -> pd.DataFrame:
    """Per assignment, in curriculum order: how many students started and completed it.

    Columns: order, assignment_id, external_id, name, kind, unit, unit_position, position,
    students, started, in_progress, completed, completion (completed / students, 0..1).
    """
    plan = curriculum(assignments)
    pairs = scoped(students, assignments, progressions)
    n_students = len(students)
    counts = pairs.groupby("assignment_id").agg(
        started=("started_at", "count"), completed=("completed_at", "count")
    )
    frame = plan.join(counts, on="assignment_id")
    frame["started"] = frame["started"].fillna(0).astype("int64")
    frame["completed"] = frame["completed"].fillna(0).astype("int64")
    frame["in_progress"] = frame["started"] - frame["completed"]
    frame["students"] = n_students
    frame["completion"] = (frame["completed"] / n_students) if n_students else 0.0
    frame["completion"] = frame["completion"].astype("float64")
    return frame[
        [
            "order",
            "assignment_id",
            "external_id",
            "name",
            "kind",
            "unit",
            "unit_position",
            "position",
            "students",
            "started",
            "in_progress",
            "completed",
            "completion",
        ]
    ]


def completion_by_unit(by_assignment: pd.DataFrame) -> pd.DataFrame:
    """Per unit, in the order its first assignment comes in the curriculum.

    completion = completions / (assignments x students). Blank units group together.
    """
    if by_assignment.empty:
        return pd.DataFrame(
            {
                "unit": pd.Series(dtype="str"),
                "first_order": pd.Series(dtype="int64"),
                "assignments": pd.Series(dtype="int64"),
                "students": pd.Series(dtype="int64"),
                "completed": pd.Series(dtype="int64"),
                "possible": pd.Series(dtype="int64"),
                "completion": pd.Series(dtype="float64"),
            }
        )
    units = (
        by_assignment.groupby("unit", sort=False)
        .agg(
            first_order=("order", "min"),
            assignments=("assignment_id", "count"),
            students=("students", "first"),
            completed=("completed", "sum"),
        )
        .reset_index()
        .sort_values("first_order", kind="stable")
        .reset_index(drop=True)
    )
    units["possible"] = units["assignments"] * units["students"]
    units["completion"] = (
        units["completed"] / units["possible"].where(units["possible"] > 0)
    ).fillna(0.0)
    return units


def completion_overall(
    students: pd.DataFrame, assignments: pd.DataFrame, progressions: pd.DataFrame
) -> dict[str, Any]:
    """The cohort's completion: completions over (students x assignments), and how many
    students have finished every assignment."""
    pairs = scoped(students, assignments, progressions)
    n_students, n_assignments = len(students), len(assignments)
    completed = int(pairs["completed_at"].notna().sum())
    possible = n_students * n_assignments
    per_student = pairs.loc[pairs["completed_at"].notna()].groupby("student_id").size()
    finished = int((per_student >= n_assignments).sum()) if n_assignments else 0
    return {
        "students": n_students,
        "assignments": n_assignments,
        "completed": completed,
        "possible": possible,
        "completion": (completed / possible) if possible else 0.0,
        "students_finished": finished,
    }


# --- Student health --------------------------------------------------------------------


def student_summary(
    students: pd.DataFrame, assignments: pd.DataFrame, progressions: pd.DataFrame
) -> pd.DataFrame:
    """One row per student: student_id, name, email, external_id, started, completed,
    in_progress, last_activity (latest of any start, completion or review; NaT if none),
    quiz_average (mean of graded quizzes, 0..1; NaN if none), quizzes_graded."""
    pairs = scoped(students, assignments, progressions)
    quiz_ids = assignments.loc[assignments["kind"].str.lower() == QUIZ_KIND, "assignment_id"]
    quiz_grades = pairs.loc[pairs["assignment_id"].isin(quiz_ids), ["student_id", "grade"]]
    pairs = pairs.assign(
        last=pairs[list(STAMPS)].max(axis=1),
    )
    per = pairs.groupby("student_id").agg(
        started=("started_at", "count"),
        completed=("completed_at", "count"),
        last_activity=("last", "max"),
    )
    quizzes = quiz_grades.groupby("student_id")["grade"].agg(["mean", "count"])
    quizzes.columns = ["quiz_average", "quizzes_graded"]
    frame = students[["student_id", "external_id", "email"]].assign(name=student_names(students))
    frame = frame.join(per, on="student_id").join(quizzes, on="student_id")
    flags = flag_rows(students, assignments, progressions)
    if flags is not None:
        counts = flags.groupby("student_id")[list(FLAGS)].sum()
        frame = frame.join(counts, on="student_id")
    if "vendor_last_activity" in students.columns:
        frame = _with_vendor_activity(frame, students["vendor_last_activity"])
    return _summary_types(frame)


def _with_vendor_activity(frame: pd.DataFrame, vendor: pd.Series) -> pd.DataFrame:
    """Activity = the later of the work's timestamps and the source's own last activity."""
    vendor = pd.Series(vendor.to_numpy(), index=frame.index).astype("datetime64[us, UTC]")
    own = frame["last_activity"].astype("datetime64[us, UTC]")
    frame["last_activity"] = own.where(own.notna() & (vendor.isna() | (own >= vendor)), vendor)
    return frame


def summary_frame(rows: Iterable[Sequence[Any]], *, flags: bool = False) -> pd.DataFrame:
    """A student summary from aggregates the database computed (cohort list page):
    rows of (student_id, completed, last_activity, quiz_average, quizzes_graded), plus
    (missing, late) with `flags`."""
    columns = ["student_id", "completed", "last_activity", "quiz_average", "quizzes_graded"]
    frame = pd.DataFrame(list(rows), columns=columns + (list(FLAGS) if flags else []))
    frame["last_activity"] = _utc(frame["last_activity"].tolist())
    frame["started"] = frame["completed"]
    for col in ("external_id", "email", "name"):
        frame[col] = ""
    return _summary_types(frame)


def _summary_types(frame: pd.DataFrame) -> pd.DataFrame:
    frame["student_id"] = frame["student_id"].astype("int64")
    for col in ("started", "completed", "quizzes_graded", *FLAGS):
        if col in frame.columns:
            frame[col] = frame[col].fillna(0).astype("int64")
    frame["in_progress"] = frame["started"] - frame["completed"]
    frame["quiz_average"] = frame["quiz_average"].astype("float64")
    frame["last_activity"] = frame["last_activity"].astype("datetime64[us, UTC]")
    return frame.reset_index(drop=True)


def _plural(n: float, word: str) -> str:
    text = f"{n:g}"
    return f"{text} {word}" if n == 1 else f"{text} {word}s"


def _percent_under(value: float, limit: float) -> str:
    """`value` (0..1) as a percentage that reads as under `limit`: whole points unless
    rounding would reach the limit (0.598 under 0.6 reads "59.8", not "60")."""
    for digits in (0, 1, 2):
        text = f"{value * 100:.{digits}f}"
        if float(text) < round(limit * 100, 6):
            return text
    return f"{math.floor(value * 10000) / 100:.2f}"


def student_health(
    summary: pd.DataFrame,
    *,
    assignment_count: int,
    thresholds: Thresholds,
    now: datetime,
) -> pd.DataFrame:
    """Classify each student on track, watch or at risk, with the reasons in words.

    - activity: none recorded → at risk; inactive for `inactive_days` → watch, twice that
      → at risk.
    - pace against peers: `behind` = cohort median completions - the student's. At
      `behind_fraction` of the curriculum → at risk, half of that → watch.
    - quizzes: average below `low_grade` → at risk, within 10 points above it → watch.
    - missing work (sources that flag it): 1 → watch, 3 or more → at risk; late work: 3 or
      more → watch.
    The worst signal sets the status. Adds columns median_completed, behind, days_inactive,
    status, status_label, severity (0..2), reasons (list of str), reason (joined).
    """
    now_ts = _ts(now)
    frame = summary.copy()
    median = float(frame["completed"].median()) if len(frame) else 0.0
    frame["median_completed"] = median
    frame["behind"] = median - frame["completed"].astype("float64")
    inactive = (now_ts - frame["last_activity"]) / DAY
    frame["days_inactive"] = np.floor(inactive.clip(lower=0)).astype("Int64")

    at_risk_gap = thresholds.behind_fraction * assignment_count
    watch_gap = at_risk_gap / 2
    statuses, reasons_col = [], []
    zeros = np.zeros(len(frame), dtype="int64")
    missing_col = frame["missing"].to_numpy() if "missing" in frame.columns else zeros
    late_col = frame["late"].to_numpy() if "late" in frame.columns else zeros
    for days, has_activity, behind, quiz, missing, late in zip(
        frame["days_inactive"].to_numpy(dtype="float64", na_value=np.nan),
        frame["last_activity"].notna().to_numpy(),
        frame["behind"].to_numpy(),
        frame["quiz_average"].to_numpy(),
        missing_col,
        late_col,
        strict=True,
    ):
        found: list[tuple[int, str]] = []
        if not has_activity:
            found.append((2, "no activity recorded"))
        elif days >= 2 * thresholds.inactive_days:
            found.append((2, f"no activity for {_plural(int(days), 'day')}"))
        elif days >= thresholds.inactive_days:
            found.append((1, f"no activity for {_plural(int(days), 'day')}"))
        if behind > 0 and at_risk_gap > 0:
            words = f"{_plural(behind, 'assignment')} behind the cohort median"
            if behind >= at_risk_gap:
                found.append((2, words))
            elif behind >= watch_gap:
                found.append((1, words))
        if not math.isnan(quiz):
            if quiz < thresholds.low_grade:
                found.append((2, f"quiz average {_percent_under(quiz, thresholds.low_grade)}%"))
            elif quiz < (watch_grade := thresholds.low_grade + GRADE_WATCH_MARGIN):
                found.append((1, f"quiz average {_percent_under(quiz, watch_grade)}%"))
        if missing >= MISSING_AT_RISK:
            found.append((2, f"{_plural(int(missing), 'missing submission')}"))
        elif missing >= MISSING_WATCH:
            found.append((1, f"{_plural(int(missing), 'missing submission')}"))
        if late >= LATE_WATCH:
            found.append((1, f"{_plural(int(late), 'late submission')}"))
        severity = max((level for level, _ in found), default=0)
        statuses.append((ON_TRACK, WATCH, AT_RISK)[severity])
        # Worst first; equal severities keep the fixed order activity, peers, quizzes.
        reasons_col.append([text for _, text in sorted(found, key=lambda f: -f[0])])
    frame["status"] = pd.Series(statuses, index=frame.index, dtype="str")
    frame["status_label"] = frame["status"].map(STATUS_LABELS)
    frame["severity"] = frame["status"].map(_SEVERITY).astype("int64")
    frame["reasons"] = pd.Series(reasons_col, index=frame.index, dtype=object)
    frame["reason"] = frame["reasons"].map("; ".join)
    return frame


def health_counts(health: pd.DataFrame) -> dict[str, int]:
    counts = health["status"].value_counts()
    return {status: int(counts.get(status, 0)) for status in (ON_TRACK, WATCH, AT_RISK)}


def student_standing(health: pd.DataFrame, student_id: int) -> dict[str, Any]:
    """Where one student stands against the rest of the cohort."""
    row = health.loc[health["student_id"] == student_id].iloc[0]
    others = health.loc[health["student_id"] != student_id]
    fewer = int((health["completed"] < row["completed"]).sum())
    cohort_quiz = health["quiz_average"].mean()
    days = row["days_inactive"]
    cohort_days = health["days_inactive"].astype("float64").median()
    return {
        "completed": int(row["completed"]),
        "median_completed": float(row["median_completed"]),
        "behind": float(row["behind"]),
        # Share of the cohort with fewer completions: 0 is last, near 1 is first.
        "percentile": fewer / len(health) if len(health) else 0.0,
        "rank": int((health["completed"] > row["completed"]).sum()) + 1,
        "students": len(health),
        "quiz_average": None if pd.isna(row["quiz_average"]) else float(row["quiz_average"]),
        "cohort_quiz_average": None if pd.isna(cohort_quiz) else float(cohort_quiz),
        "days_inactive": None if pd.isna(days) else int(days),
        "cohort_days_inactive": None if pd.isna(cohort_days) else float(cohort_days),
        "peers": len(others),
    }


# --- Blockers --------------------------------------------------------------------------


def blockers(
    students: pd.DataFrame,
    assignments: pd.DataFrame,
    progressions: pd.DataFrame,
    *,
    now: datetime,
    at_risk_ids: Iterable[int] = (),
    reviewed_kinds: Iterable[str] | None = None,
    flags: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Assignments ranked by how much they hold students back, with the score's parts.

    Parts (each 0..1): stuck = students started but not completed, as a share of the
    cohort, full at 25%; slow = median days from start to completion, full at 14; grade =
    1 - median quiz grade (quizzes only); review = median days completed work of a kind
    that gets reviewed has waited unreviewed, full at 7. score = 40·stuck + 25·slow +
    20·grade + 15·review (0..100). Rank 1 is the worst; equal scores share a rank.
    `stuck_at_risk` lists the at-risk students (ids, by name) stuck on each.
    `reviewed_kinds` (lower case) are the kinds the cohort has ever had reviewed; by default
    those seen in `progressions` (pass the whole cohort's when `assignments` is one unit).
    `flags` (from `flag_rows`, for a source without start times): "stuck" then counts the
    students whose work is missing, and "slow" is the share of hand-ins that were late
    (full at 50%); column `basis` says which ("started" or "missing").
    """
    now_ts = _ts(now)
    plan = curriculum(assignments)
    pairs = scoped(students, assignments, progressions)
    n_students = len(students)
    done = pairs["completed_at"].notna()
    stuck_mask = pairs["started_at"].notna() & ~done

    stuck_pairs_all = pairs.loc[stuck_mask, ["student_id", "assignment_id"]]
    durations = ((pairs["completed_at"] - pairs["started_at"]) / DAY).clip(lower=0)
    slow = durations[done].groupby(pairs.loc[done, "assignment_id"]).median()
    slow = slow.rename("median_days_to_complete")
    late_share = None
    if flags is not None:
        stuck_pairs_all = flags.loc[flags["missing"], ["student_id", "assignment_id"]]
        slow = pd.Series(np.nan, index=slow.index[:0], name="median_days_to_complete")
        hand_ins = pairs.loc[done].groupby("assignment_id").size()
        late = flags.loc[flags["late"]].groupby("assignment_id").size()
        late_share = (late.reindex(hand_ins.index).fillna(0) / hand_ins).rename("late_share")
    stuck = stuck_pairs_all.groupby("assignment_id").size().rename("stuck")

    kinds = plan.set_index("assignment_id")["kind"].str.lower()
    pair_kinds = pairs["assignment_id"].map(kinds)
    is_quiz = pair_kinds == QUIZ_KIND
    graded = pairs.loc[is_quiz & pairs["grade"].notna()]
    grade = graded.groupby("assignment_id")["grade"].median().rename("median_quiz_grade")

    # Only kinds the cohort has ever had reviewed wait for review (lessons never do).
    if reviewed_kinds is None:
        reviewed_kinds = set(pair_kinds[pairs["reviewed_at"].notna()].unique())
    waiting_mask = done & pairs["reviewed_at"].isna() & pair_kinds.isin(reviewed_kinds)
    waited = ((now_ts - pairs.loc[waiting_mask, "completed_at"]) / DAY).clip(lower=0)
    waiting = waited.groupby(pairs.loc[waiting_mask, "assignment_id"]).agg(["size", "median"])
    waiting.columns = ["waiting_review", "median_waiting_days"]

    frame = (
        plan[["order", "assignment_id", "external_id", "name", "kind", "unit"]]
        .join(stuck, on="assignment_id")
        .join(slow, on="assignment_id")
        .join(grade, on="assignment_id")
        .join(waiting, on="assignment_id")
    )
    frame["stuck"] = frame["stuck"].fillna(0).astype("int64")
    frame["waiting_review"] = frame["waiting_review"].fillna(0).astype("int64")
    frame["stuck_share"] = (frame["stuck"] / n_students) if n_students else 0.0
    frame["part_stuck"] = (frame["stuck_share"] / STUCK_FULL_SHARE).clip(upper=1.0)
    if late_share is not None:
        frame = frame.join(late_share, on="assignment_id")
        frame["part_slow"] = (frame["late_share"] / LATE_FULL_SHARE).clip(upper=1.0)
        frame["basis"] = "missing"
    else:
        frame["part_slow"] = (frame["median_days_to_complete"] / SLOW_FULL_DAYS).clip(upper=1.0)
        frame["basis"] = "started"
    frame["part_grade"] = (1.0 - frame["median_quiz_grade"]).clip(lower=0.0, upper=1.0)
    frame["part_review"] = (frame["median_waiting_days"] / REVIEW_FULL_DAYS).clip(upper=1.0)
    parts = ["part_stuck", "part_slow", "part_grade", "part_review"]
    frame[parts] = frame[parts].fillna(0.0).astype("float64")
    frame["score"] = (
        BLOCKER_WEIGHTS["stuck"] * frame["part_stuck"]
        + BLOCKER_WEIGHTS["slow"] * frame["part_slow"]
        + BLOCKER_WEIGHTS["grade"] * frame["part_grade"]
        + BLOCKER_WEIGHTS["review"] * frame["part_review"]
    ).round(1)
    frame["rank"] = frame["score"].rank(method="min", ascending=False).astype("int64")

    risky = set(int(i) for i in at_risk_ids)
    names = dict(zip(students["student_id"], student_names(students), strict=True))
    stuck_pairs = stuck_pairs_all.loc[stuck_pairs_all["student_id"].isin(risky)]
    by_assignment: dict[int, list[int]] = {}
    for assignment_id, group in stuck_pairs.groupby("assignment_id")["student_id"]:
        by_assignment[int(assignment_id)] = sorted(
            (int(s) for s in group), key=lambda s: (names.get(s, ""), s)
        )
    frame["stuck_at_risk"] = frame["assignment_id"].map(lambda a: by_assignment.get(int(a), []))
    frame["stuck_at_risk_names"] = frame["stuck_at_risk"].map(lambda ids: [names[i] for i in ids])
    return frame.sort_values(
        ["score", "stuck", "order"], ascending=[False, False, True], kind="stable"
    ).reset_index(drop=True)


def blocker_reason(row: Any) -> str:
    """The part that weighs most in a blocker's score, in words."""
    points = {part: BLOCKER_WEIGHTS[part] * row[f"part_{part}"] for part in BLOCKER_WEIGHTS}
    part = max(points, key=lambda p: (points[p], -list(BLOCKER_WEIGHTS).index(p)))
    missing_basis = row.get("basis") == "missing"
    if part == "stuck":
        if missing_basis:
            return f"{_plural(int(row['stuck']), 'student')} missing it (past due)"
        return f"{_plural(int(row['stuck']), 'student')} stuck on it"
    if part == "slow":
        if missing_basis:
            return f"{row['late_share'] * 100:.0f}% of hand-ins late"
        return f"a median of {row['median_days_to_complete']:.1f} days to complete"
    if part == "grade":
        return f"a median quiz grade of {row['median_quiz_grade'] * 100:.0f}%"
    return (
        f"{_plural(int(row['waiting_review']), 'submission')} waiting for review, "
        f"{row['median_waiting_days']:.0f} days on the median"
    )


# --- Progress over time ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pace:
    """The pace the curriculum implies: its units spread evenly from `start` to `end`,
    each unit's assignments completed at a steady rate within its share of the time."""

    start: pd.Timestamp | None
    end: pd.Timestamp | None
    units: tuple[tuple[str, int], ...] = ()  # (unit, assignments) in curriculum order
    # Without course dates the start is the first activity and the end one week per unit
    # after it: an assumption, which every page that shows the pace must say.
    start_assumed: bool = False
    end_assumed: bool = False

    @property
    def assumed(self) -> bool:
        return self.defined and (self.start_assumed or self.end_assumed)

    def assumption(self, tz: str = "UTC") -> str:
        """How the pace was assumed, in words; empty when the course dates set it."""
        if not self.assumed:
            return ""
        assert self.start is not None and self.end is not None
        start = self.start.tz_convert(tz).strftime("%-d %b %Y")
        last = (self.end - DAY).tz_convert(tz).strftime("%-d %b %Y")
        parts = []
        if self.start_assumed:
            parts.append(f"it starts on the day of the first activity ({start})")
        if self.end_assumed:
            n = len(self.units)
            parts.append(
                f"it allows {UNIT_WEEKS_DEFAULT} week{'s' if UNIT_WEEKS_DEFAULT != 1 else ''} "
                f"per unit ({n} unit{'s' if n != 1 else ''}, to {last})"
            )
        missing = (
            "no course dates are set"
            if self.start_assumed and self.end_assumed
            else ("no course start date is set" if self.start_assumed else "no end date is set")
        )
        return f"The pace is assumed, because {missing}: {' and '.join(parts)}."

    @property
    def defined(self) -> bool:
        return self.start is not None and self.end is not None and self.total > 0

    @property
    def total(self) -> int:
        return sum(n for _, n in self.units)

    def expected(self, at: Any, *, unit: str | None = None) -> np.ndarray:
        """Assignments a student on pace has completed at each time in `at`; with `unit`,
        only that unit's assignments count (it is due in its own slice of the time)."""
        stamps = pd.DatetimeIndex(pd.to_datetime(pd.Series(np.atleast_1d(at)), utc=True))
        if not self.defined:
            return np.full(len(stamps), np.nan)
        sizes = [n if unit is None or name == unit else 0 for name, n in self.units]
        edges = pd.date_range(self.start, self.end, periods=len(self.units) + 1)
        cumulative = np.concatenate([[0.0], np.cumsum(sizes, dtype="float64")])
        x = stamps.as_unit("us").asi8.astype("float64")
        xp = edges.as_unit("us").asi8.astype("float64")
        return np.interp(x, xp, cumulative)


def _local_midnight(day: date, tz: str) -> pd.Timestamp:
    """When `day` starts in `tz`, in UTC. Where the clocks skip midnight (DST in Chile,
    Cuba, ...) the day starts at the first instant after the gap; where midnight comes
    twice, at the first of them (as Django's make_aware does)."""
    local = pd.Timestamp(day).tz_localize(tz, nonexistent="shift_forward", ambiguous=True)
    return local.tz_convert("UTC")


def pace_for(
    assignments: pd.DataFrame,
    progressions: pd.DataFrame,
    *,
    starts_on: date | None = None,
    ends_on: date | None = None,
    tz: str = "UTC",
) -> Pace:
    """Start: `starts_on` (local midnight), else the day of the cohort's first activity.
    End: the end of `ends_on`, else one week per unit after the start."""
    plan = curriculum(assignments)
    sizes = plan.groupby("unit", sort=False)["assignment_id"].count()
    units = tuple((str(name), int(n)) for name, n in sizes.items())
    if starts_on is not None:
        start = _local_midnight(starts_on, tz)
    else:
        first = progressions[["started_at", "completed_at"]].min().min()
        if pd.isna(first):
            return Pace(None, None, units)
        start = _local_midnight(first.tz_convert(tz).date(), tz)
    if ends_on is not None:
        end = _local_midnight(ends_on + timedelta(days=1), tz)
    else:
        end = start + pd.Timedelta(weeks=UNIT_WEEKS_DEFAULT * max(len(units), 1))
    if end <= start:
        end = start + DAY
    return Pace(start, end, units, start_assumed=starts_on is None, end_assumed=ends_on is None)


def _period_ends(first: date, last: date, freq: str) -> list[date]:
    days = pd.date_range(first, last, freq="D")
    if freq == "D":
        return [d.date() for d in days]
    ends = [d.date() for d in days if d.weekday() == 6]  # weeks end on Sunday
    if not ends or ends[-1] != last:
        ends.append(last)
    return ends


def stamp_range(progressions: pd.DataFrame) -> tuple[Any, Any]:
    """The earliest and latest start, completion or review (NaT when none)."""
    if not len(progressions):
        return pd.NaT, pd.NaT
    stamps = progressions[list(STAMPS)]
    return stamps.min().min(), stamps.max().max()


def date_bounds(
    progressions: pd.DataFrame | None,
    *,
    today: date,
    starts_on: date | None = None,
    ends_on: date | None = None,
    tz: str = "UTC",
    stamps: tuple[Any, Any] | None = None,
) -> tuple[date, date]:
    """The first and last day a date filter may name: the cohort's lifetime (its course
    dates, its first and last activity, today) widened by DATE_MARGIN each side, within
    EARLIEST_DATE..LATEST_DATE. `stamps` (from `stamp_range`) stands for the progressions
    when they were not read (a stored health)."""
    days = [today, *(d for d in (starts_on, ends_on) if d is not None)]
    for stamp in stamps if stamps is not None else stamp_range(progressions):
        if not pd.isna(stamp):
            days.append(stamp.tz_convert(tz).date())
    first = max(min(days), EARLIEST_DATE + DATE_MARGIN) - DATE_MARGIN
    last = min(max(days), LATEST_DATE - DATE_MARGIN) + DATE_MARGIN
    return max(first, EARLIEST_DATE), max(min(last, LATEST_DATE), EARLIEST_DATE)


def choose_freq(first: date, last: date) -> str:
    """Days for up to ten weeks, weeks beyond: a readable number of points either way."""
    return "D" if (last - first).days <= 70 else "W"


def progress_window(
    progressions: pd.DataFrame, *, pace: Pace, now: datetime, tz: str = "UTC"
) -> tuple[date, date] | None:
    """The default dates to chart: from the pace start or first completion to today."""
    today = _ts(now).tz_convert(tz).date()
    candidates = []
    if pace.start is not None:
        candidates.append(pace.start.tz_convert(tz).date())
    first_done = progressions["completed_at"].min()
    if not pd.isna(first_done):
        candidates.append(first_done.tz_convert(tz).date())
    if not candidates:
        return None
    return min(min(candidates), today), today


def progress_over_time(
    students: pd.DataFrame,
    assignments: pd.DataFrame,
    progressions: pd.DataFrame,
    *,
    pace: Pace,
    first: date,
    last: date,
    freq: str = "D",
    tz: str = "UTC",
    unit: str | None = None,
) -> pd.DataFrame:
    """Cumulative completions at the end of each day (freq "D") or week ("W", ending
    Sunday, plus `last`), against the pace (of `unit` alone when given: pass the unit's
    assignments too).

    Columns: period_end (date), completions (in the period), cumulative, per_student
    (cumulative / students), expected_per_student (pace), share and expected_share (of the
    curriculum, 0..1). Completions before `first` count in the first cumulative value.
    """
    pairs = scoped(students, assignments, progressions)
    ends = _period_ends(first, last, freq)
    n_students, n_assignments = len(students), len(assignments)
    done = pairs["completed_at"].dropna()
    local_days = done.dt.tz_convert(tz).dt.date
    boundaries = [_local_midnight(d + timedelta(days=1), tz) for d in ends]
    # Searching the sorted completion times counts the completions before each boundary.
    sorted_done = pd.DatetimeIndex(done.sort_values())
    cumulative = sorted_done.searchsorted(pd.DatetimeIndex(boundaries), side="left")
    before_first = int((local_days < first).sum())
    frame = pd.DataFrame({"period_end": ends, "cumulative": cumulative.astype("int64")})
    previous = frame["cumulative"].shift(1, fill_value=before_first)
    frame["completions"] = (frame["cumulative"] - previous).astype("int64")
    frame["per_student"] = (frame["cumulative"] / n_students) if n_students else 0.0
    expected = pace.expected(boundaries, unit=unit) if boundaries else np.array([])
    frame["expected_per_student"] = expected
    frame["share"] = (frame["per_student"] / n_assignments) if n_assignments else 0.0
    frame["expected_share"] = (expected / n_assignments) if n_assignments else np.nan
    frame[["per_student", "share"]] = frame[["per_student", "share"]].astype("float64")
    return frame[
        [
            "period_end",
            "completions",
            "cumulative",
            "per_student",
            "expected_per_student",
            "share",
            "expected_share",
        ]
    ]


def progress_by_student(
    students: pd.DataFrame,
    assignments: pd.DataFrame,
    progressions: pd.DataFrame,
    *,
    first: date,
    last: date,
    freq: str = "D",
    tz: str = "UTC",
    student_ids: Iterable[int] | None = None,
) -> pd.DataFrame:
    """Long frame of (student_id, period_end, cumulative): each student's completions,
    those before `first` included in the first period (as in `progress_over_time`)."""
    if student_ids is not None:
        wanted = set(int(i) for i in student_ids)
        students = students.loc[students["student_id"].isin(wanted)]
    pairs = scoped(students, assignments, progressions)
    ends = _period_ends(first, last, freq)
    done = pairs.loc[pairs["completed_at"].notna(), ["student_id", "completed_at"]]
    day = done["completed_at"].dt.tz_convert(tz).dt.date
    # Map each completion to the first period end on or after its day.
    ends_arr = np.array(ends, dtype="datetime64[D]")
    slot = np.searchsorted(ends_arr, np.array(day.tolist(), dtype="datetime64[D]"), side="left")
    counts = np.zeros((len(students), len(ends)), dtype="int64")
    row_of = {int(s): i for i, s in enumerate(students["student_id"])}
    rows = done["student_id"].map(row_of).to_numpy()
    inside = slot < len(ends)
    np.add.at(counts, (rows[inside], slot[inside]), 1)
    cumulative = counts.cumsum(axis=1)
    return pd.DataFrame(
        {
            "student_id": np.repeat(students["student_id"].to_numpy(), len(ends)),
            "period_end": ends * len(students),
            "cumulative": cumulative.reshape(-1),
        }
    )


def weekly_trend(
    students: pd.DataFrame,
    assignments: pd.DataFrame,
    progressions: pd.DataFrame,
    *,
    now: datetime,
) -> pd.DataFrame:
    """Per student: completions in the last 7 days against the 7 before.

    trend: "improving" (more), "worsening" (fewer) or "steady" (the same, zero included).
    """
    now_ts = _ts(now)
    pairs = scoped(students, assignments, progressions)
    done = pairs["completed_at"]
    this_week = pairs.loc[(done > now_ts - 7 * DAY) & (done <= now_ts)]
    last_week = pairs.loc[(done > now_ts - 14 * DAY) & (done <= now_ts - 7 * DAY)]
    frame = students[["student_id"]].copy()
    frame["this_week"] = (
        frame["student_id"].map(this_week.groupby("student_id").size()).fillna(0).astype("int64")
    )
    frame["last_week"] = (
        frame["student_id"].map(last_week.groupby("student_id").size()).fillna(0).astype("int64")
    )
    diff = frame["this_week"] - frame["last_week"]
    frame["trend"] = np.where(diff > 0, "improving", np.where(diff < 0, "worsening", "steady"))
    frame["trend"] = frame["trend"].astype("str")
    return frame.reset_index(drop=True)


# --- Freshness -------------------------------------------------------------------------


def freshness(
    *,
    last_synced_at: datetime | None,
    last_sync_status: str,
    sync_interval_hours: int | None,
    now: datetime,
) -> dict[str, Any]:
    """When the cohort was last pulled and whether that is a problem.

    state: "failing" (the last pull failed), "stale" (a scheduled pull is overdue: no
    successful pull within the interval plus 30 minutes, or never), "never" (never pulled,
    no schedule), else "fresh". `stale` is true for failing and stale.
    """
    now_dt = _ts(now).to_pydatetime()
    age = (now_dt - last_synced_at) if last_synced_at else None
    overdue = False
    if sync_interval_hours:
        limit = timedelta(hours=sync_interval_hours) + STALE_GRACE
        overdue = age is None or age > limit
    if last_sync_status in FAILED_PULL_STATUSES:
        state, label = "failing", "last pull failed"
    elif overdue:
        state = "stale"
        label = "never pulled" if age is None else "scheduled pull overdue"
    elif last_synced_at is None:
        state, label = "never", "never pulled"
    else:
        state, label = "fresh", "up to date"
    return {
        "state": state,
        "stale": state in ("failing", "stale"),
        "label": label,
        "last_synced_at": last_synced_at,
        "age_hours": None if age is None else round(age.total_seconds() / 3600, 1),
        "sync_interval_hours": sync_interval_hours,
        "last_sync_status": last_sync_status,
    }


# --- Everything a cohort page shows ----------------------------------------------------


class CohortHealth:
    """The metrics of one cohort under the page's filters, each computed on first use.

    - `unit` narrows completion, blockers and progress to that unit's assignments.
      Student health always covers the whole curriculum: a filter does not change who
      is at risk.
    - `date_to` shows the cohort as it stood at the end of that day (later activity is
      unseen, and inactivity counts to that moment); `date_from` (and `date_to`) bound the
      progress chart and the "completions in range" figure.
    """

    def __init__(
        self,
        students: pd.DataFrame,
        assignments: pd.DataFrame,
        progressions: pd.DataFrame,
        *,
        thresholds: Thresholds,
        now: datetime,
        tz: str = "UTC",
        starts_on: date | None = None,
        ends_on: date | None = None,
        unit: str | None = None,
        date_from: date | None = None,
        date_to: date | None = None,
        freq: str | None = None,
        source: str = "",
        signals: SourceSignals | None = None,
    ) -> None:
        self.tz = tz
        self.signals = signals or signals_for(source)
        self.raw_progressions = progressions
        self.thresholds = thresholds
        self.date_from, self.date_to = date_from, date_to
        self.now = _ts(now)
        if date_to is not None and date_to < self.now.tz_convert(tz).date():
            # (Today or later is now: and date.max + a day would overflow.)
            end_of_day = _local_midnight(date_to + timedelta(days=1), tz) - pd.Timedelta(
                microseconds=1
            )
            self.now = end_of_day
        self.students = students
        self.all_assignments = assignments
        self.all_progressions = scoped(students, assignments, progressions)
        if date_to is not None:
            self.all_progressions = progressions_as_of(self.all_progressions, self.now)
        self.units = unit_names(assignments)
        self.unit = unit if unit in self.units else None
        if self.unit is None:
            self.assignments = assignments
            self.progressions = self.all_progressions
        else:
            self.assignments = assignments.loc[assignments["unit"] == self.unit]
            self.progressions = self.all_progressions.loc[
                self.all_progressions["assignment_id"].isin(self.assignments["assignment_id"])
            ]
        self.starts_on, self.ends_on = starts_on, ends_on
        self._freq = freq

    # completion
    @cached_property
    def completion(self) -> pd.DataFrame:
        return completion_by_assignment(self.students, self.assignments, self.progressions)

    @cached_property
    def completion_units(self) -> pd.DataFrame:
        return completion_by_unit(self.completion)

    @cached_property
    def overall(self) -> dict[str, Any]:
        return completion_overall(self.students, self.assignments, self.progressions)

    # health
    @cached_property
    def summary(self) -> pd.DataFrame:
        students = self.students
        if self.date_to is not None:
            # As of a past day: the source's flags and "last activity" are today's, not then.
            students = students.drop(columns=["vendor_last_activity"], errors="ignore")
        summary = student_summary(students, self.all_assignments, self.all_progressions)
        summary = summary.drop(columns=[c for c in FLAGS if c in summary.columns])
        flags = flag_rows(self.students, self.all_assignments, self.raw_progressions)
        if flags is not None and self.date_to is None:
            # Missing work has no timestamp, so `scoped` left it out: count flags here.
            counts = flags.groupby("student_id")[list(FLAGS)].sum()
            summary = summary.join(counts, on="student_id")
            for col in FLAGS:
                summary[col] = summary[col].fillna(0).astype("int64")
        return summary

    @cached_property
    def trend(self) -> pd.DataFrame:
        return weekly_trend(
            self.students, self.all_assignments, self.all_progressions, now=self.now
        )

    @cached_property
    def health(self) -> pd.DataFrame:
        frame = student_health(
            self.summary,
            assignment_count=len(self.all_assignments),
            thresholds=self.thresholds,
            now=self.now,
        )
        frame = frame.merge(self.trend, on="student_id", how="left")
        expected = self.pace.expected([self.now])[0]
        frame["expected_now"] = expected
        frame["vs_pace"] = frame["completed"] - expected
        return frame

    @cached_property
    def health_counts(self) -> dict[str, int]:
        return health_counts(self.health)

    @cached_property
    def at_risk_ids(self) -> list[int]:
        return [int(i) for i in self.health.loc[self.health["status"] == AT_RISK, "student_id"]]

    # blockers
    @cached_property
    def review_kinds(self) -> set[str]:
        """Kinds (lower case) the whole cohort has ever had reviewed: what waits for review
        is the whole cohort's call, not one unit's."""
        everything = self.all_progressions
        kinds = everything["assignment_id"].map(
            self.all_assignments.set_index("assignment_id")["kind"].str.lower()
        )
        return set(kinds[everything["reviewed_at"].notna()].unique())

    @cached_property
    def blockers(self) -> pd.DataFrame:
        return blockers(
            self.students,
            self.assignments,
            self.progressions,
            now=self.now,
            at_risk_ids=self.at_risk_ids,
            reviewed_kinds=self.review_kinds,
            flags=None
            if self.signals.starts
            else flag_rows(self.students, self.assignments, self.raw_progressions),
        )

    # progress
    @cached_property
    def pace(self) -> Pace:
        return pace_for(
            self.all_assignments,
            self.all_progressions,
            starts_on=self.starts_on,
            ends_on=self.ends_on,
            tz=self.tz,
        )

    @cached_property
    def window(self) -> tuple[date, date] | None:
        default = progress_window(self.progressions, pace=self.pace, now=self.now, tz=self.tz)
        first = self.date_from or (default[0] if default else None)
        last = self.now.tz_convert(self.tz).date()
        if first is None:
            return None
        # At most MAX_CHART_PERIODS weeks, whatever the data or the filter says.
        earliest = last - timedelta(weeks=MAX_CHART_PERIODS - 1)
        return max(min(first, last), earliest), last

    @property
    def freq(self) -> str:
        """ "D" or "W": as asked, else days up to ten weeks; never more than
        MAX_CHART_PERIODS days (longer daily charts are drawn by week)."""
        if self.window is None:
            return self._freq if self._freq in ("D", "W") else "D"
        if self._freq == "W" or self.freq_capped:
            return "W"
        return "D" if self._freq == "D" else choose_freq(*self.window)

    @property
    def freq_capped(self) -> bool:
        """A daily chart was asked for a range longer than MAX_CHART_PERIODS days."""
        if self.window is None or self._freq != "D":
            return False
        return (self.window[1] - self.window[0]).days + 1 > MAX_CHART_PERIODS

    @cached_property
    def progress(self) -> pd.DataFrame:
        if self.window is None:
            return progress_over_time(
                self.students,
                self.assignments,
                self.progressions.iloc[0:0],
                pace=self.pace,
                first=self.now.date(),
                last=self.now.date(),
                tz=self.tz,
            ).iloc[0:0]
        return progress_over_time(
            self.students,
            self.assignments,
            self.progressions,
            pace=self.pace,
            first=self.window[0],
            last=self.window[1],
            freq=self.freq,
            tz=self.tz,
            unit=self.unit,
        )

    def student_progress(
        self, student_id: int, progressions: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """One student's cumulative completions beside the cohort average and the pace.
        `progressions`: the student's own rows, for a health restored from storage (which
        keeps no rows)."""
        cohort = self.progress
        if cohort.empty:
            return cohort.assign(student=pd.Series(dtype="int64"))
        mine = progress_by_student(
            self.students,
            self.assignments,
            self.progressions if progressions is None else progressions,
            first=self.window[0],
            last=self.window[1],
            freq=self.freq,
            tz=self.tz,
            student_ids=[student_id],
        )
        return cohort.assign(student=mine["cumulative"].to_numpy())

    # headline
    @cached_property
    def headline(self) -> dict[str, Any]:
        n_students = len(self.students)
        expected = float(self.pace.expected([self.now], unit=self.unit)[0])
        average = self.overall["completed"] / n_students if n_students else 0.0
        top = self.blockers.iloc[0] if len(self.blockers) else None
        window_start = self.date_from or (self.now - 7 * DAY).tz_convert(self.tz).date()
        done = self.progressions["completed_at"]
        in_range = int((done >= _local_midnight(window_start, self.tz)).sum())
        return {
            "students": n_students,
            "assignments": len(self.assignments),
            "completion": self.overall["completion"],
            "completed": self.overall["completed"],
            "possible": self.overall["possible"],
            **self.health_counts,
            "average_completed": average,
            "expected_completed": None if math.isnan(expected) else expected,
            "pace_gap": None if math.isnan(expected) else average - expected,
            "pace_assumed": self.pace.assumption(self.tz),
            "top_blocker": None
            if top is None or top["score"] <= 0
            else {
                "name": top["name"],
                "stuck": int(top["stuck"]),
                "score": float(top["score"]),
                "reason": blocker_reason(top),
            },
            "completions_since": window_start,
            "completions_in_range": in_range,
        }

    # --- storing ----------------------------------------------------------------------
    # A stored health (cohorts/health_store.py) keeps every figure the pages read and none
    # of the rows: a restored one has no `progressions`, `all_progressions` or
    # `raw_progressions` (reading them is an AttributeError, never a silent recompute).

    _ROWS = ("raw_progressions", "all_progressions", "progressions")
    _FIGURES = (
        "completion",
        "completion_units",
        "overall",
        "summary",
        "trend",
        "health",
        "health_counts",
        "at_risk_ids",
        "blockers",
        "pace",
        "window",
        "progress",
        "headline",
    )

    @property
    def has_rows(self) -> bool:
        """False for a health restored from storage (it keeps no rows)."""
        return "progressions" in self.__dict__

    @cached_property
    def stamps(self) -> tuple[Any, Any]:
        """The earliest and latest activity of the rows read (for `date_bounds`)."""
        return stamp_range(self.raw_progressions)

    @cached_property
    def progressions_count(self) -> int:
        """Progressions counted (one per student and assignment, under the filters)."""
        return len(self.progressions)

    @cached_property
    def last_activity(self) -> Any:
        """The latest start, completion or review of the cohort (NaT when none)."""
        return self.all_progressions[list(STAMPS)].max().max()

    @cached_property
    def reviewed_kinds(self) -> set[str]:
        """Kinds of work the cohort has ever had reviewed (as spelled by the source)."""
        kinds = self.all_progressions["assignment_id"].map(
            self.all_assignments.set_index("assignment_id")["kind"]
        )
        return set(kinds[self.all_progressions["reviewed_at"].notna()].unique())

    # What the whole curriculum decides, whatever a unit or a date_from filter narrows:
    # who is at risk and why, the pace, what gets reviewed, the cohort's activity.
    _WHOLE = (
        "summary",
        "trend",
        "health",
        "health_counts",
        "at_risk_ids",
        "pace",
        "review_kinds",
        "reviewed_kinds",
        "stamps",
        "last_activity",
    )
    # ...and without a unit, what only the data decides (not the chart's dates).
    _UNFILTERED = ("completion", "completion_units", "overall", "blockers", "progressions_count")

    def state(self) -> dict[str, Any]:
        """Every figure computed, without the rows: what `restored` rebuilds it from."""
        for name in {*self._FIGURES, *self._WHOLE, "progressions_count"}:
            getattr(self, name)
        return {k: v for k, v in self.__dict__.items() if k not in self._ROWS}

    def narrowed(self, progressions: pd.DataFrame, **filters: Any) -> CohortHealth:
        """This default view narrowed by `unit`, `date_from` and `freq` (never `date_to`,
        which moves "now"), as of the same moment, computing only what they change.

        `progressions`: the rows the filter needs (with a unit, that unit's; without,
        at least every completed one). Student health, the pace and the rest of `_WHOLE`
        are this view's (a filter never changes who is at risk), and so, without a unit, are
        completion and blockers; the figures equal a live computation over every row.
        """
        narrowed = CohortHealth(
            self.students,
            self.all_assignments,
            progressions,
            thresholds=self.thresholds,
            now=self.now,
            tz=self.tz,
            starts_on=self.starts_on,
            ends_on=self.ends_on,
            signals=self.signals,
            **filters,
        )
        keep = self._WHOLE if narrowed.unit is not None else (*self._WHOLE, *self._UNFILTERED)
        for name in keep:
            narrowed.__dict__[name] = getattr(self, name)
        return narrowed

    @classmethod
    def restored(cls, state: dict[str, Any]) -> CohortHealth:
        health = cls.__new__(cls)
        health.__dict__.update(state)
        return health
