"""Chart builders: analytics frames in, plain JSON-safe plotly figure dicts out; plotly.js
from our own static files."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest
from django.core.management import call_command
from plotly.offline import get_plotlyjs

from cohorts import analytics, charts
from cohorts.analytics import Thresholds
from tests import health_cohort as hc


@pytest.fixture
def health():
    return analytics.CohortHealth(
        *hc.frames(),
        thresholds=Thresholds(),
        now=hc.NOW,
        starts_on=hc.STARTS_ON,
        ends_on=hc.ENDS_ON,
    )


def strict_json(figure: dict) -> dict:
    # JSON.parse in the browser rejects NaN: allow_nan=False fails the same way.
    return json.loads(json.dumps(figure, allow_nan=False))


def test_completion_chart_one_trace_per_unit_in_curriculum_order(health):
    figure = strict_json(charts.completion_figure(health.completion))
    u1, u2 = figure["data"]
    assert (u1["name"], u1["x"], u1["y"]) == ("U1", [1, 2], [80.0, 80.0])
    assert (u2["name"], u2["x"], u2["y"]) == ("U2", [3, 4, 5, 6], [60.0, 20.0, 0.0, 0.0])
    assert u2["customdata"][1] == ["Recursion quiz", 1, 5]
    # Few assignments: their names label the axis.
    assert figure["layout"]["xaxis"]["ticktext"][0] == "Intro"


def test_blockers_chart_stacks_the_score_parts(health):
    figure = strict_json(charts.blockers_figure(health.blockers))
    assert [t["name"] for t in figure["data"]] == [
        "Students stuck",
        "Slow to complete",
        "Low quiz grades",
        "Waiting for review",
    ]
    # Worst at the top: plotly draws the first category at the bottom.
    labels = figure["data"][0]["y"]
    assert labels[-1] == "#1 Recursion quiz"
    assert "Capstone" not in " ".join(labels)  # a zero score is no blocker
    points = [sum(t["x"][-1] for t in figure["data"])]
    assert points == [pytest.approx(50.1, abs=0.1)]
    # The raw parts for the hover; a missing median is null, never NaN.
    assert figure["data"][0]["customdata"][-1] == [2, 0.1, 0.5, None]


def test_progress_chart_has_the_pace_and_a_students_line(health):
    figure = strict_json(charts.progress_figure(health.progress))
    assert [t["name"] for t in figure["data"]] == ["Cohort average", "Pace"]
    assert figure["data"][0]["x"][0] == "2026-03-01"
    series = health.student_progress(5)
    figure = strict_json(
        charts.progress_figure(series, student=series["student"], student_name="Eve Evans")
    )
    assert figure["data"][2]["name"] == "Eve Evans"
    assert figure["data"][2]["y"][-1] == 4


def test_without_a_pace_there_is_no_pace_line():
    health = analytics.CohortHealth(
        *hc.frames(), thresholds=Thresholds(), now=hc.NOW, date_from=date(2026, 3, 10)
    )
    assert health.pace.defined  # from the first activity: still a pace
    empty = analytics.CohortHealth(
        analytics.students_frame([(1, "a", "A", "", "")]),
        analytics.assignments_frame([(1, "x", "X", "lesson", "U", 1, 1)]),
        analytics.progressions_frame([(1, 1, None, hc.at(19), hc.at(19), None)]),
        thresholds=Thresholds(),
        now=hc.NOW,
    )
    figure = strict_json(
        charts.progress_figure(empty.progress.assign(expected_per_student=float("nan")))
    )
    assert [t["name"] for t in figure["data"]] == ["Cohort average"]


def test_vendor_plotly_writes_our_own_copy(tmp_path, capsys):
    target = tmp_path / "vendor" / "plotly.min.js"
    call_command("vendor_plotly", "--output", str(target))
    assert target.read_text(encoding="utf-8") == get_plotlyjs()
    call_command("vendor_plotly", "--output", str(target))
    assert "up to date" in capsys.readouterr().out


def test_units_in_a_chart_never_share_a_colour():
    assert charts.unit_colours(3) == list(charts.PALETTE[:3])
    many = charts.unit_colours(40)
    assert len(set(c.upper() for c in many)) == 40
    frame = pd.DataFrame(
        {
            "unit": [f"Week {n}" for n in range(1, 13)],
            "order": range(1, 13),
            "name": [f"A{n}" for n in range(1, 13)],
            "completion": [0.5] * 12,
            "completed": [1] * 12,
            "students": [2] * 12,
        }
    )
    figure = strict_json(charts.completion_figure(frame))
    colours = [trace["marker"]["color"] for trace in figure["data"]]
    assert len(colours) == 12 and len(set(colours)) == 12


def test_legends_sit_above_the_plot_clear_of_axis_titles(health):
    for figure in (
        charts.completion_figure(health.completion),
        charts.progress_figure(health.progress),
    ):
        legend = strict_json(figure)["layout"]["legend"]
        assert legend["y"] >= 1 and legend["yanchor"] == "bottom"
