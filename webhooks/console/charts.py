"""Geometry for the console's inline SVG charts (bars, columns, the score line); templates draw
them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

BAND_COLOURS = {
    "very low": "#94a3b8",
    "mild": "#38bdf8",
    "moderate": "#facc15",
    "high": "#fb923c",
    "ready to buy": "#ef4444",
}
CHANNEL_COLOURS = {
    "web": "#0ea5e9",
    "messenger": "#6366f1",
    "instagram": "#db2777",
    "whatsapp": "#16a34a",
    "manual": "#64748b",
    "email": "#ca8a04",
}


@dataclass
class Bar:
    label: str
    value: int
    x: float
    y: float
    width: float
    height: float
    colour: str


@dataclass
class Chart:
    width: int
    height: int
    bars: list[Bar]
    maximum: int
    empty: bool


def horizontal_bars(
    rows: Sequence[dict[str, Any]],
    colours: dict[str, str] | None = None,
    *,
    width: int = 360,
    row_height: int = 26,
    label_width: int = 120,
    default_colour: str = "#2563eb",
) -> Chart:
    """One bar per row, labels on the left, values at the end of each bar."""
    maximum = max((int(r["count"]) for r in rows), default=0)
    usable = width - label_width - 40
    bars = []
    for i, row in enumerate(rows):
        value = int(row["count"])
        length = usable * value / maximum if maximum else 0
        bars.append(
            Bar(
                label=str(row["label"]),
                value=value,
                x=label_width,
                y=i * row_height + 4,
                width=max(length, 2 if value else 0),
                height=row_height - 8,
                colour=(colours or {}).get(str(row["label"]), default_colour),
            )
        )
    return Chart(
        width=width,
        height=max(len(rows), 1) * row_height + 4,
        bars=bars,
        maximum=maximum,
        empty=maximum == 0,
    )


def columns(
    rows: Sequence[dict[str, Any]], *, width: int = 600, height: int = 200, colour: str = "#2563eb"
) -> Chart:
    """Vertical columns over time (oldest first), with room for the axis labels below."""
    maximum = max((int(r["count"]) for r in rows), default=0)
    plot_height = height - 40
    slot = width / max(len(rows), 1)
    bars = []
    for i, row in enumerate(rows):
        value = int(row["count"])
        h = plot_height * value / maximum if maximum else 0
        bars.append(
            Bar(
                label=str(row["label"]),
                value=value,
                x=i * slot + slot * 0.15,
                y=plot_height - h + 20,
                width=slot * 0.7,
                height=h,
                colour=colour,
            )
        )
    return Chart(width=width, height=height, bars=bars, maximum=maximum, empty=maximum == 0)


@dataclass
class Point:
    x: float
    y: float
    score: int
    previous: int
    at: datetime
    factors: list[dict[str, Any]]


@dataclass
class LineChart:
    width: int
    height: int
    points: list[Point]
    path: str
    hot_y: float


def score_line(
    events: Sequence[dict[str, Any]], *, width: int = 420, height: int = 140, hot: int = 75
) -> LineChart:
    """The score after each change (0..100 upwards), starting from the score before the first."""
    top, bottom = 10, height - 20
    span = bottom - top

    def y_of(score: int) -> float:
        return bottom - span * max(0, min(100, score)) / 100

    points: list[Point] = []
    n = len(events)
    step = (width - 40) / max(n, 1)
    for i, event in enumerate(events):
        points.append(
            Point(
                x=30 + step * (i + 1),
                y=y_of(int(event["score"])),
                score=int(event["score"]),
                previous=int(event["previous_score"]),
                at=event["created_at"],
                factors=list(event.get("factors") or []),
            )
        )
    start = f"M30,{y_of(int(events[0]['previous_score'])):.1f}" if events else ""
    path = start + "".join(f" L{p.x:.1f},{p.y:.1f}" for p in points)
    return LineChart(width=width, height=height, points=points, path=path, hot_y=y_of(hot))
