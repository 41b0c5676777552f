"""Draw revleak's Grafana dashboards from a Prometheus, without Grafana: one PNG each.

Every panel of grafana/dashboards/*.json is queried as Grafana would query it (its variables
and Grafana's built-in ones expanded) and drawn with matplotlib where its gridPos puts it:
time series as lines or bars, stacked where the panel says so, with their threshold lines;
stat, gauge and bar gauge panels from their latest values; tables as tables. Annotations
(the root causes) are vertical lines on every time series.

    python -P grafana/render.py --prometheus http://127.0.0.1:9090 --out docs/dashboards \\
        --minutes 30 --var slo=data_quality --var service=checkout

A variable not given takes what Grafana would show first: "All" when the variable offers
it, else its first value.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle, Wedge
from matplotlib.ticker import FixedLocator, FuncFormatter

Json = dict[str, Any]

DASHBOARDS = Path(__file__).resolve().parent / "dashboards"
GRID_COLUMNS = 24
TIMEOUT_S = 10.0
POINTS = 240  # samples a time series panel asks for over the range, as a wide panel would
# Grafana's dark theme.
BACKGROUND, PANEL, TEXT, GRID = "#111217", "#181b1f", "#ccccdc", "#2c3235"
COLOURS = {"green": "#73bf69", "yellow": "#fade2a", "orange": "#ff9830", "red": "#f2495c",
           "dark-red": "#c4162a"}  # fmt: skip
PALETTE = ["#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9",
           "#705da0", "#508642", "#cca300", "#447ebc", "#c15c17"]  # fmt: skip
TICK_SPACINGS_S = (10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21_600, 43_200, 86_400)
MAX_TICKS = 8
VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")


# Time range and variables


@dataclass(frozen=True)
class TimeRange:
    """What Grafana's time picker and query options would give the queries."""

    start: float  # Unix seconds
    end: float
    rate_interval: str = "1m"

    @property
    def step_s(self) -> float:
        return max(1.0, math.ceil((self.end - self.start) / POINTS))

    def builtins(self) -> dict[str, str]:
        return {
            "__rate_interval": self.rate_interval,
            "__interval": f"{self.step_s:g}s",
            "__range": f"{max(1, round(self.end - self.start))}s",
        }


def expand(expr: str, variables: Mapping[str, str]) -> str:
    """``expr`` with ``$name`` and ``${name}`` replaced; an unknown variable is an error."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise KeyError(f"{expr!r} uses ${name}, which is not defined")
        return variables[name]

    return VARIABLE.sub(value, expr)


def used_variables(expr: str) -> set[str]:
    return {a or b for a, b in VARIABLE.findall(expr)}


def label_values_query(template: Json) -> tuple[str, str]:
    """Metric and label of a ``label_values(metric, label)`` template variable."""
    query = template["query"]
    text = query["query"] if isinstance(query, dict) else query
    found = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", text.strip())
    if found is None:
        raise ValueError(f"variable {template['name']}: not a label_values query: {text!r}")
    return found.group(1), found.group(2)


# Prometheus


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]]  # (Unix seconds, value), NaN kept

    @property
    def last(self) -> float:
        return self.points[-1][1] if self.points else math.nan


class Prometheus:
    def __init__(self, url: str) -> None:
        self._client = httpx.Client(base_url=url.rstrip("/"), timeout=TIMEOUT_S)

    def close(self) -> None:
        self._client.close()

    def _get(self, path: str, params: Mapping[str, str | float]) -> Any:
        response = self._client.get(path, params=dict(params))
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise ValueError(f"Prometheus refused {params}: {body.get('error', body)}")
        return body["data"]

    def instant(self, expr: str, at: float | None = None) -> list[Series]:
        params: dict[str, str | float] = {"query": expr}
        if at is not None:
            params["time"] = at
        data = self._get("/api/v1/query", params)
        if data["resultType"] == "scalar":
            moment, text = data["result"]
            return [Series({}, [(float(moment), float(text))])]
        return [
            Series(item["metric"], [(float(item["value"][0]), float(item["value"][1]))])
            for item in data["result"]
        ]

    def range(self, expr: str, window: TimeRange) -> list[Series]:
        params: dict[str, str | float] = {"query": expr, "start": window.start,
                                          "end": window.end, "step": window.step_s}  # fmt: skip
        data = self._get("/api/v1/query_range", params)
        return [
            Series(item["metric"], [(float(t), float(v)) for t, v in item["values"]])
            for item in data["result"]
        ]

    def label_values(self, metric: str, label: str) -> list[str]:
        values: list[str] = self._get(f"/api/v1/label/{label}/values", {"match[]": metric})
        return sorted(values)


def default_variables(
    board: Json, prometheus: Prometheus, chosen: Mapping[str, str]
) -> dict[str, str]:
    """Every template variable's value: ``chosen``, else what Grafana would select first."""
    values: dict[str, str] = {}
    for template in board["templating"]["list"]:
        name = template["name"]
        if name in chosen:
            values[name] = chosen[name]
        elif template.get("includeAll"):
            values[name] = template["allValue"]
        else:
            options = prometheus.label_values(*label_values_query(template))
            values[name] = options[0] if options else ""
    return values


# Formatting


def legend(template: str, labels: Mapping[str, str]) -> str:
    if template in ("", "__auto"):
        shown = {k: v for k, v in labels.items() if k != "__name__"}
        return ", ".join(f"{k}={v}" for k, v in sorted(shown.items())) or "value"
    return LEGEND_LABEL.sub(lambda m: labels.get(m.group(1), ""), template).strip()


def formatted(value: float, unit: str, decimals: int | None = None) -> str:
    if math.isnan(value):
        return "NaN"
    if unit == "percentunit":
        return f"{value * 100:.{1 if decimals is None else decimals}f} %"
    if unit == "currencyUSD":
        return f"${value:,.0f}"
    if unit == "dateTimeAsIso":
        return datetime.fromtimestamp(value / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    suffix = {"s": " s", "reqps": " req/s", "ops": " /s"}.get(unit, "")
    if decimals is not None:
        return f"{value:.{decimals}f}{suffix}"
    return f"{value:.3g}{suffix}" if abs(value) < 1000 else f"{value:,.0f}{suffix}"


def colour(name: str) -> str:
    return COLOURS.get(name, name)


def threshold_colour(panel: Json, value: float) -> str:
    steps = panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])
    chosen = "green"
    for step in steps:
        if step["value"] is None or (not math.isnan(value) and value >= step["value"]):
            chosen = step["color"]
    return colour(chosen)


def mapped(panel: Json, value: float) -> tuple[str, str] | None:
    """Text and colour of a value mapping that applies to ``value``."""
    for mapping in panel["fieldConfig"]["defaults"].get("mappings", []):
        if mapping["type"] == "value" and not math.isnan(value):
            option = mapping["options"].get(str(round(value)))
            if option is not None:
                return option["text"], colour(option["color"])
    return None


# Panels


@dataclass(frozen=True)
class Context:
    prometheus: Prometheus
    window: TimeRange
    variables: Mapping[str, str]
    marks: Sequence[float]  # annotation times, Unix seconds

    def query(self, target: Json, *, over_range: bool) -> list[Series]:
        expr = expand(target["expr"], self.variables)
        if over_range:
            return self.prometheus.range(expr, self.window)
        return self.prometheus.instant(expr, self.window.end)

    def latest(self, panel: Json) -> list[tuple[str, float]]:
        """Legend and latest value of every series of the panel's instant queries."""
        return [
            (legend(target["legendFormat"], series.labels), series.last)
            for target in panel["targets"]
            for series in self.query(target, over_range=False)
        ]


def _no_data(ax: Axes) -> None:
    ax.text(0.5, 0.5, "No data", color=TEXT, ha="center", va="center", transform=ax.transAxes)


def _plain(ax: Axes) -> None:
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)


def _stacked(series: list[Series]) -> list[list[tuple[float, float]]]:
    """Each series' points raised by the series before it, as Grafana stacks them (a missing
    point counts as 0)."""
    moments = sorted({moment for each in series for moment, _ in each.points})
    below = dict.fromkeys(moments, 0.0)
    stacked = []
    for each in series:
        values = dict(each.points)
        for moment in moments:
            value = values.get(moment, 0.0)
            below[moment] += 0.0 if math.isnan(value) else value
        stacked.append([(moment, below[moment]) for moment in moments])
    return stacked


def draw_timeseries(ax: Axes, panel: Json, context: Context) -> None:
    defaults = panel["fieldConfig"]["defaults"]
    custom, unit = defaults["custom"], defaults.get("unit", "short")
    named = [
        (legend(target["legendFormat"], series.labels), series)
        for target in panel["targets"]
        for series in context.query(target, over_range=True)
    ]
    stacked = custom["stacking"]["mode"] == "normal"
    lines = _stacked([s for _, s in named]) if stacked else [s.points for _, s in named]
    bars = custom["drawStyle"] == "bars"
    previous: list[tuple[float, float]] = []
    for index, ((name, _), points) in enumerate(zip(named, lines, strict=True)):
        times = [t for t, _ in points]
        values = [v for _, v in points]
        shade = PALETTE[index % len(PALETTE)]
        if bars:
            base = [dict(previous).get(t, 0.0) for t in times] if stacked else [0.0] * len(times)
            heights = [v - b for v, b in zip(values, base, strict=True)]
            ax.bar(times, heights, width=context.window.step_s, bottom=base, color=shade,
                   align="edge", label=name)  # fmt: skip
        else:
            ax.step(times, values, where="post", linewidth=1.5, color=shade, label=name)
        previous = points
    if custom["thresholdsStyle"]["mode"] != "off":
        for step in defaults["thresholds"]["steps"]:
            if step["value"] is not None:
                ax.axhline(step["value"], color=colour(step["color"]), linestyle="--",
                           linewidth=1)  # fmt: skip
    for mark in context.marks:
        ax.axvline(mark, color=colour("red"), linewidth=1, alpha=0.8)
    _time_axis(ax, context.window)
    if custom.get("scaleDistribution", {}).get("type") == "log":
        ax.set_yscale("log", base=custom["scaleDistribution"]["log"], nonpositive="mask")
    low, high = ax.get_ylim()
    ax.set_ylim(
        min(low, custom.get("axisSoftMin", low)), max(high, custom.get("axisSoftMax", high))
    )
    ax.yaxis.set_major_formatter(lambda value, _: formatted(value, unit))
    if not named:
        _no_data(ax)
    elif len(named) <= 12:
        ax.legend(fontsize=7, loc="upper left", facecolor=PANEL, edgecolor=GRID,
                  labelcolor=TEXT, ncols=2 if len(named) > 4 else 1)  # fmt: skip


def _time_axis(ax: Axes, window: TimeRange) -> None:
    """Unix seconds on the x axis, ticked at round UTC times as Grafana ticks them."""
    span = window.end - window.start
    every = next((s for s in TICK_SPACINGS_S if span / s <= MAX_TICKS), TICK_SPACINGS_S[-1])
    first = math.ceil(window.start / every) * every
    ticks = [first + n * every for n in range(int((window.end - first) // every) + 1)]
    shape = "%H:%M:%S" if every < 60 else "%H:%M" if every < 86_400 else "%m-%d"
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(
        FuncFormatter(lambda at, _: datetime.fromtimestamp(at, UTC).strftime(shape))
    )
    ax.set_xlim(window.start, window.end)
    ax.grid(color=GRID, linewidth=0.5)
    ax.tick_params(colors=TEXT, labelsize=7)
    for spine in ax.spines.values():
        spine.set_color(GRID)


def draw_stat(ax: Axes, panel: Json, context: Context) -> None:
    """A coloured box per series with its latest value, mapped to a name when one applies."""
    _plain(ax)
    defaults = panel["fieldConfig"]["defaults"]
    values = context.latest(panel)
    if not values:
        _no_data(ax)
        return
    width = 1 / len(values)
    for index, (name, value) in enumerate(values):
        text, fill = mapped(panel, value) or (
            formatted(value, defaults.get("unit", "short"), defaults.get("decimals")),
            threshold_colour(panel, value),
        )
        ax.add_patch(Rectangle((index * width + 0.01, 0.02), width - 0.02, 0.96, color=fill))
        middle = index * width + width / 2
        ax.text(middle, 0.55, text, ha="center", va="center", fontsize=18, fontweight="bold",
                color="white")  # fmt: skip
        ax.text(middle, 0.18, name, ha="center", va="center", fontsize=8, color="white")


def draw_gauge(ax: Axes, panel: Json, context: Context) -> None:
    """A half ring filled up to the latest value, its thresholds as a thin outer band."""
    _plain(ax)
    defaults = panel["fieldConfig"]["defaults"]
    values = context.latest(panel)
    if not values:
        _no_data(ax)
        return
    _, value = values[0]
    low, high = float(defaults["min"]), float(defaults["max"])
    shade = threshold_colour(panel, value)
    # Axes units of equal length in both directions, so that the ring is round.
    wide = ax.bbox.width / ax.bbox.height
    ax.set_xlim(0, wide)
    centre, radius = (wide / 2, 0.08), min(0.85, wide / 2 - 0.05)

    def angle(at: float) -> float:
        return 180 - 180 * (min(max(at, low), high) - low) / (high - low)

    ax.add_patch(Wedge(centre, radius, 0, 180, width=radius * 0.25, color=GRID))
    ax.add_patch(Wedge(centre, radius, angle(value), 180, width=radius * 0.25, color=shade))
    steps = defaults["thresholds"]["steps"]
    for step, following in zip(steps, [*steps[1:], None], strict=True):
        start = low if step["value"] is None else step["value"]
        end = high if following is None else following["value"]
        ax.add_patch(Wedge(centre, radius * 1.08, angle(end), angle(start), width=radius * 0.05,
                           color=colour(step["color"])))  # fmt: skip
    ax.text(wide / 2, 0.2, formatted(value, defaults.get("unit", "short")), ha="center",
            va="center", fontsize=15, fontweight="bold", color=shade)  # fmt: skip


def draw_bargauge(ax: Axes, panel: Json, context: Context) -> None:
    """One bar per series, its name above it and its latest value at its end."""
    _plain(ax)
    defaults = panel["fieldConfig"]["defaults"]
    values = context.latest(panel)
    if not values:
        _no_data(ax)
        return
    numbers = [0.0 if math.isnan(value) else value for _, value in values]
    top = float(defaults.get("max", max(numbers) or 1.0))
    band = 1 / len(values)
    for index, ((name, _), number) in enumerate(zip(values, numbers, strict=True)):
        y = 1 - (index + 1) * band
        ax.text(0.0, y + band * 0.72, name, fontsize=8, color=TEXT, va="center")
        ax.add_patch(Rectangle((0.0, y + band * 0.1), 0.85, band * 0.45, color=GRID))
        ax.add_patch(Rectangle((0.0, y + band * 0.1), 0.85 * min(number / top, 1.0),
                               band * 0.45, color=threshold_colour(panel, number)))  # fmt: skip
        ax.text(0.87, y + band * 0.32, formatted(number, defaults.get("unit", "short")),
                fontsize=9, color=threshold_colour(panel, number), va="center")  # fmt: skip


def _matrix(rows: list[Series], options: Json, order: Mapping[str, int]) -> list[list[str]]:
    """groupingToMatrix: one row per ``rowField`` value, one column per ``columnField``."""
    column_field, row_field = options["columnField"], options["rowField"]
    columns = sorted({s.labels.get(column_field, "") for s in rows},
                     key=lambda name: (order.get(name, len(order)), name))  # fmt: skip
    cells: dict[str, dict[str, float]] = {}
    for series in rows:
        cells.setdefault(series.labels.get(row_field, ""), {})[
            series.labels.get(column_field, "")
        ] = series.last
    header = [f"{row_field}\\{column_field}", *columns]
    body = [
        [name, *[formatted(cells[name].get(c, math.nan), "short") for c in columns]]
        for name in sorted(cells)
    ]
    return [header, *body]


def _merged(panel: Json, context: Context) -> list[list[str]]:
    """Tables of several queries: one row per label set, a column per query's value, the
    rows in the order of the last column, highest first."""
    organize = [t["options"] for t in panel.get("transformations", []) if t["id"] == "organize"]
    renames: dict[str, str] = organize[0].get("renameByName", {}) if organize else {}
    units = {o["matcher"]["options"]: p["value"]
             for o in panel["fieldConfig"]["overrides"] for p in o["properties"]
             if p["id"] == "unit"}  # fmt: skip
    rows: dict[tuple[tuple[str, str], ...], dict[str, float]] = {}
    columns: list[str] = []
    for target in panel["targets"]:
        column = renames.get(f"Value #{target['refId']}", target["refId"])
        columns.append(column)
        for series in context.query(target, over_range=False):
            key = tuple(sorted(series.labels.items()))
            rows.setdefault(key, {})[column] = series.last
    label_names = sorted({name for key in rows for name, _ in key})
    header = [*label_names, *columns]
    ordered = sorted(rows.items(), key=lambda item: -item[1].get(columns[-1], -math.inf))
    body = [
        [dict(key).get(name, "") for name in label_names]
        + [formatted(values.get(c, math.nan), units.get(c, "short")) for c in columns]
        for key, values in ordered
    ]
    return [header, *body]


def draw_table(ax: Axes, panel: Json, context: Context) -> None:
    _plain(ax)
    transformations = {t["id"]: t["options"] for t in panel.get("transformations", [])}
    matrix = "groupingToMatrix" in transformations
    if matrix:
        order = transformations.get("organize", {}).get("indexByName", {})
        series = [s for t in panel["targets"] for s in context.query(t, over_range=False)]
        cells = _matrix(series, transformations["groupingToMatrix"], order)
    else:
        cells = _merged(panel, context)
    if len(cells) == 1:
        _no_data(ax)
        return
    drawn = ax.table(cellText=cells[1:], colLabels=cells[0], loc="upper center",
                     cellLoc="center")  # fmt: skip
    drawn.auto_set_font_size(False)
    drawn.set_fontsize(8)
    drawn.scale(1, 1.3)
    for (row, column), cell in drawn.get_celld().items():
        cell.set_edgecolor(GRID)
        cell.set_facecolor(GRID if row == 0 else PANEL)
        text = cell.get_text()
        text.set_color(TEXT)
        if matrix and row > 0 and column > 0 and cells[row][column] != "NaN":
            text.set_color(threshold_colour(panel, float(cells[row][column])))


DRAW = {
    "timeseries": draw_timeseries,
    "stat": draw_stat,
    "gauge": draw_gauge,
    "bargauge": draw_bargauge,
    "table": draw_table,
}


# Dashboards

# Grafana's grid in inches: 24 columns of a 1920-pixel screen, rows of 30 pixels and gaps.
COLUMN_IN, ROW_IN, GAP_IN, HEADER_IN, TITLE_IN = 0.8, 0.36, 0.05, 0.5, 0.3
# Room inside a time series panel for its axes' tick labels.
AXIS_LEFT_IN, AXIS_BOTTOM_IN = 0.7, 0.3


def annotation_times(board: Json, context: Context) -> list[float]:
    """When the dashboard's annotation queries had a value: each start of a run of samples."""
    times: list[float] = []
    step = context.window.step_s
    for annotation in board["annotations"]["list"]:
        if not annotation.get("enable", True) or "expr" not in annotation:
            continue
        expr = expand(annotation["expr"], context.variables)
        for series in context.prometheus.range(expr, context.window):
            previous = -math.inf
            for moment, value in series.points:
                if not math.isnan(value) and moment - previous > step:
                    times.append(moment)
                previous = moment
    return sorted(times)


def panel_axes(figure: Figure, panel: Json, height_in: float) -> Axes:
    """The panel's card where its gridPos puts it, its title, and the axes inside."""
    grid = panel["gridPos"]
    left = grid["x"] * COLUMN_IN + GAP_IN
    top = HEADER_IN + grid["y"] * ROW_IN + GAP_IN
    width, height = grid["w"] * COLUMN_IN - 2 * GAP_IN, grid["h"] * ROW_IN - 2 * GAP_IN
    width_in = GRID_COLUMNS * COLUMN_IN

    def box(x: float, y_top: float, w: float, h: float) -> tuple[float, float, float, float]:
        return x / width_in, 1 - (y_top + h) / height_in, w / width_in, h / height_in

    figure.add_artist(Rectangle(box(left, top, width, height)[:2], width / width_in,
                                height / height_in, transform=figure.transFigure,
                                color=PANEL, zorder=-1))  # fmt: skip
    figure.text(*box(left + 0.1, top + 0.06, 0, 0)[:2], panel["title"], color=TEXT,
                fontsize=10, fontweight="bold", va="top")  # fmt: skip
    inner_left, inner_bottom = (
        (AXIS_LEFT_IN, AXIS_BOTTOM_IN) if panel["type"] == "timeseries" else (0.1, 0.1)
    )
    inner = box(left + inner_left, top + TITLE_IN, width - inner_left - 0.1,
                height - TITLE_IN - inner_bottom)  # fmt: skip
    ax = figure.add_axes(inner)
    ax.set_facecolor(PANEL)
    return ax


def render(
    board: Json, prometheus: Prometheus, window: TimeRange, chosen: Mapping[str, str], out: Path
) -> Path:
    variables = {**window.builtins(), **default_variables(board, prometheus, chosen)}
    context = Context(prometheus, window, variables, ())
    context = Context(prometheus, window, variables, annotation_times(board, context))
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in board["panels"])
    height_in = HEADER_IN + rows * ROW_IN
    figure = Figure(figsize=(GRID_COLUMNS * COLUMN_IN, height_in), facecolor=BACKGROUND)
    for panel in board["panels"]:
        DRAW[panel["type"]](panel_axes(figure, panel, height_in), panel, context)
    shown = "    ".join(f"{k} = {v}" for k, v in variables.items() if not k.startswith("__"))
    span = " to ".join(
        datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")
        for t in (window.start, window.end)
    )
    figure.text(0.006, 1 - 0.12 / height_in, f"{board['title']}    {span} UTC    {shown}",
                color=TEXT, fontsize=13, va="top")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{board['uid']}.png"
    figure.savefig(path, dpi=100, facecolor=BACKGROUND)
    return path


def load_dashboards(folder: Path = DASHBOARDS) -> Iterator[Json]:
    for path in sorted(folder.glob("*.json")):
        board: Json = json.loads(path.read_text(encoding="utf-8"))
        yield board


def render_all(
    url: str,
    out: Path,
    window: TimeRange,
    chosen: Mapping[str, str] | None = None,
    folder: Path = DASHBOARDS,
) -> list[Path]:
    """Every dashboard in ``folder`` drawn from the Prometheus at ``url`` into ``out``."""
    prometheus = Prometheus(url)
    try:
        return [render(board, prometheus, window, chosen or {}, out)
                for board in load_dashboards(folder)]  # fmt: skip
    finally:
        prometheus.close()


def _assignment(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, not {text!r}")
    return name, value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prometheus", required=True, help="base URL of the Prometheus")
    parser.add_argument("--out", type=Path, required=True, help="folder of the PNGs")
    parser.add_argument("--minutes", type=float, default=30.0, help="range ending now")
    parser.add_argument("--rate-interval", default="1m", help="what $__rate_interval becomes")
    parser.add_argument("--var", type=_assignment, action="append", default=[],
                        help="a template variable's value, NAME=VALUE")  # fmt: skip
    args = parser.parse_args(argv)
    end = time.time()
    window = TimeRange(end - args.minutes * 60, end, args.rate_interval)
    for path in render_all(args.prometheus, args.out, window, dict(args.var)):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
