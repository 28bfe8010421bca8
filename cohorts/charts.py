"""Chart builders: analytics frames in, plotly figure dicts out.

Pages pass each dict through `json_script` and static/js/charts.js draws it with our own
copy of plotly.js, so no inline script is needed under the CSP. Values are plain Python
lists with NaN turned into None: JSON has no NaN, and the browser's JSON.parse rejects it.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Iterable
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from cohorts.analytics import BLOCKER_WEIGHTS

BRAND = "#1f5f8b"
MUTED = "#5b6675"
LINE = "#dde2e8"
# Colour-blind-safe (Okabe-Ito), in the order units appear.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
# Past the palette, more distinct colours: hues a golden angle apart, at three lightnesses.
_GOLDEN_ANGLE = 137.508


def unit_colours(n: int) -> list[str]:
    """`n` colours, no two alike: the palette first, then generated ones."""
    colours = list(PALETTE[:n])
    index = 0
    while len(colours) < n:
        hue = (index * _GOLDEN_ANGLE + 20) % 360
        lightness = (38, 55, 70)[index % 3]
        colour = _hsl_hex(hue, 70, lightness)
        if colour.upper() not in {c.upper() for c in colours}:
            colours.append(colour)
        index += 1
    return colours


def _hsl_hex(hue: float, saturation: float, lightness: float) -> str:
    r, g, b = colorsys.hls_to_rgb(hue / 360, lightness / 100, saturation / 100)
    return f"#{round(r * 255):02X}{round(g * 255):02X}{round(b * 255):02X}"


PART_COLOURS = {
    "part_stuck": "#D55E00",
    "part_slow": "#E69F00",
    "part_grade": "#CC79A7",
    "part_review": "#56B4E9",
}
PART_LABELS = {
    "part_stuck": "Students stuck",
    "part_slow": "Slow to complete",
    "part_grade": "Low quiz grades",
    "part_review": "Waiting for review",
}
TICK_LABELS_UP_TO = 30  # beyond this many assignments, names no longer fit under bars


def _values(values: Iterable[Any]) -> list[Any]:
    out = []
    for value in values:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            out.append(None)
        elif hasattr(value, "item"):  # numpy scalars
            item = value.item()
            out.append(None if isinstance(item, float) and math.isnan(item) else item)
        else:
            out.append(value)
    return out


def _short(text: str, size: int = 24) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def _layout(**extra: Any) -> dict[str, Any]:
    layout = {
        "template": "none",
        "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
        "margin": {"l": 56, "r": 16, "t": 16, "b": 48},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "height": 340,
        # Above the plot: below it, the legend ran into the x axis' title and tick labels
        # on a phone. Plotly grows the top margin to fit it.
        "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": 1.02, "yanchor": "bottom"},
        "hoverlabel": {"align": "left"},
    }
    layout.update(extra)
    return layout


def _axis(title: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": title},
        "gridcolor": LINE,
        "zerolinecolor": LINE,
        "automargin": True,
        **extra,
    }


def completion_figure(by_assignment: pd.DataFrame) -> dict[str, Any]:
    """Share of students who completed each assignment, in curriculum order, one colour
    per unit."""
    fig = go.Figure()
    units = list(dict.fromkeys(by_assignment["unit"]))
    colours = unit_colours(len(units))
    for index, unit in enumerate(units):
        rows = by_assignment.loc[by_assignment["unit"] == unit]
        fig.add_trace(
            go.Bar(
                x=_values(rows["order"]),
                y=_values((rows["completion"] * 100).round(1)),
                name=unit or "No unit",
                marker={"color": colours[index]},
                customdata=[
                    [name, int(done), int(total)]
                    for name, done, total in zip(
                        rows["name"], rows["completed"], rows["students"], strict=True
                    )
                ],
                hovertemplate="%{customdata[0]}<br>%{y:.0f}% completed "
                "(%{customdata[1]} of %{customdata[2]})<extra>%{fullData.name}</extra>",
            )
        )
    xaxis = _axis("Assignments in curriculum order")
    if 0 < len(by_assignment) <= TICK_LABELS_UP_TO:
        xaxis.update(
            tickmode="array",
            tickvals=_values(by_assignment["order"]),
            ticktext=[_short(n, 18) for n in by_assignment["name"]],
            tickangle=-40,
        )
    fig.update_layout(
        _layout(
            bargap=0.15,
            showlegend=1 < len(units) <= 24,
            xaxis=xaxis,
            yaxis=_axis("Students who completed it (%)", range=[0, 100]),
        )
    )
    return fig.to_plotly_json()


def blockers_figure(blockers: pd.DataFrame, *, limit: int = 10) -> dict[str, Any]:
    """The worst blockers as stacked bars: each part's points out of the 0..100 score."""
    top = blockers.loc[blockers["score"] > 0].head(limit).iloc[::-1]
    labels = [
        f"#{int(r)} {_short(str(n), 32)}" for r, n in zip(top["rank"], top["name"], strict=True)
    ]
    fig = go.Figure()
    for part, weight in zip(PART_COLOURS, BLOCKER_WEIGHTS.values(), strict=True):
        fig.add_trace(
            go.Bar(
                orientation="h",
                y=labels,
                x=_values((top[part] * weight).round(1)),
                name=PART_LABELS[part],
                marker={"color": PART_COLOURS[part]},
                customdata=[
                    [int(s), _values([d])[0], _values([g])[0], _values([w])[0]]
                    for s, d, g, w in zip(
                        top["stuck"],
                        top["median_days_to_complete"].round(1),
                        top["median_quiz_grade"].round(2),
                        top["median_waiting_days"].round(1),
                        strict=True,
                    )
                ],
                hovertemplate="%{y}<br>%{fullData.name}: %{x} points<br>"
                "stuck %{customdata[0]} · median days %{customdata[1]} · "
                "median quiz grade %{customdata[2]} · waiting %{customdata[3]} days"
                "<extra></extra>",
            )
        )
    fig.update_layout(
        _layout(
            barmode="stack",
            legend={
                "orientation": "h",
                "x": 0,
                "xanchor": "left",
                "y": 1.02,
                "yanchor": "bottom",
                "traceorder": "normal",
            },
            height=max(220, 60 + 32 * len(top)),
            margin={"l": 16, "r": 16, "t": 16, "b": 48},
            xaxis=_axis("Blocker score (0-100)", range=[0, 100]),
            yaxis={"automargin": True, "gridcolor": LINE},
        )
    )
    return fig.to_plotly_json()


def progress_figure(
    progress: pd.DataFrame, *, student: pd.Series | None = None, student_name: str = ""
) -> dict[str, Any]:
    """Average completions per student over time against the pace the curriculum implies;
    with `student`, that student's own line too."""
    dates = [d.isoformat() for d in progress["period_end"]]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=dates,
            y=_values(progress["per_student"].round(2)),
            name="Cohort average",
            mode="lines+markers" if len(dates) <= 31 else "lines",
            line={"color": BRAND, "width": 3},
            hovertemplate="%{x}: %{y:.1f} completed per student<extra></extra>",
        )
    )
    if progress["expected_per_student"].notna().any():
        fig.add_trace(
            go.Scatter(
                x=dates,
                y=_values(progress["expected_per_student"].round(2)),
                name="Pace",
                mode="lines",
                line={"color": MUTED, "dash": "dash", "width": 2},
                hovertemplate="%{x}: %{y:.1f} expected<extra></extra>",
            )
        )
    if student is not None:
        fig.add_trace(
            go.Scatter(
                x=dates,
                y=_values(student),
                name=student_name or "Student",
                mode="lines+markers" if len(dates) <= 31 else "lines",
                line={"color": "#D55E00", "width": 3},
                hovertemplate="%{x}: %{y} completed<extra></extra>",
            )
        )
    fig.update_layout(
        _layout(
            xaxis=_axis("", type="date"),
            yaxis=_axis("Assignments completed", rangemode="tozero"),
            hovermode="x unified",
        )
    )
    return fig.to_plotly_json()
