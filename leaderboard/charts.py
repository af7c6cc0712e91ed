"""Inline SVG charts for the leaderboard page (no network): every text is escaped.

- :func:`privacy_utility_chart` (matplotlib): one point per defense, its utility cost on x, the
  worst-case attack's success on y with its 95% interval as an error bar, coloured by defense
  kind, the task's no-query floor as a dashed line, and labels that do not collide.
- :func:`roc_chart` (hand-written SVG polylines): one ROC curve per attack (graph tasks), with
  the chance diagonal.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 600, 380
LEFT, RIGHT, TOP, BOTTOM = 62, 110, 40, 48  # margins: the legend on top, labels right
PALETTE = [
    "#0b57d0",
    "#b3261e",
    "#146c2e",
    "#7d5260",
    "#e37400",
    "#5f6368",
    "#9334e6",
    "#00838f",
    "#c2185b",
    "#3c4043",
]
KIND_COLOURS = {"none": "#5f6368", "train": "#0b57d0", "output": "#e37400"}


@dataclass
class Axis:
    low: float
    high: float
    pixels_from: float
    pixels_to: float

    @classmethod
    def fit(
        cls,
        values: list[float],
        pixels_from: float,
        pixels_to: float,
        bounds: tuple[float, float] | None = None,
    ) -> "Axis":
        low, high = bounds or (min(values), max(values))
        if high - low < 1e-9:
            low, high = low - 0.05 * (abs(low) or 1), high + 0.05 * (abs(high) or 1)
        pad = 0 if bounds else 0.08 * (high - low)
        return cls(low - pad, high + pad, pixels_from, pixels_to)

    def __call__(self, value: float) -> float:
        share = (value - self.low) / (self.high - self.low)
        return self.pixels_from + share * (self.pixels_to - self.pixels_from)

    def ticks(self, count: int = 5) -> list[float]:
        step = (self.high - self.low) / (count - 1)
        return [self.low + i * step for i in range(count)]


def _frame(x: Axis, y: Axis, x_label: str, y_label: str, title: str) -> list[str]:
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    parts = [
        f"<title>{escape(title)}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{right - LEFT}" height="{bottom - TOP}" '
        f'fill="#fff" stroke="#999"/>',
    ]
    for tick in x.ticks():
        px = x(tick)
        parts.append(
            f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{bottom}" y2="{bottom + 4}" '
            f'stroke="#666"/><text x="{px:.1f}" y="{bottom + 16}" font-size="11" '
            f'text-anchor="middle">{tick:.3g}</text>'
        )
    for tick in y.ticks():
        py = y(tick)
        parts.append(
            f'<line x1="{LEFT - 4}" x2="{LEFT}" y1="{py:.1f}" y2="{py:.1f}" '
            f'stroke="#666"/><text x="{LEFT - 7}" y="{py + 4:.1f}" font-size="11" '
            f'text-anchor="end">{tick:.3g}</text>'
        )
    parts.append(
        f'<text x="{(LEFT + right) / 2:.1f}" y="{HEIGHT - 10}" font-size="12" '
        f'text-anchor="middle">{escape(x_label)}</text>'
    )
    parts.append(
        f'<text transform="translate(14 {(TOP + bottom) / 2:.1f}) rotate(-90)" '
        f'font-size="12" text-anchor="middle">{escape(y_label)}</text>'
    )
    return parts


def _legend(entries: list[tuple[str, str]], marker: str) -> list[str]:
    """One row of entries above the frame, wrapping to a second row when it is full."""
    parts, x0, y0 = [], LEFT, 12
    for label, colour in entries:
        width = 30 + 6.2 * len(label)
        if x0 + width > WIDTH and x0 > LEFT:
            x0, y0 = LEFT, y0 + 16
        shape = (
            f'<circle cx="{x0 + 5}" cy="{y0}" r="5" fill="{colour}"/>'
            if marker == "dot"
            else f'<line x1="{x0}" x2="{x0 + 14}" y1="{y0}" y2="{y0}" stroke="{colour}" '
            f'stroke-width="2.5"/>'
        )
        parts.append(
            f'<g class="legend">{shape}<text x="{x0 + 20}" y="{y0 + 4}" '
            f'font-size="11">{escape(label)}</text></g>'
        )
        x0 += width
    return parts


def _svg(parts: list[str], label: str) -> Markup:
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="{escape(label)}" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}">' + "".join(parts) + "</svg>"
    )


def privacy_utility_chart(
    points: list[dict],
    metric: str,
    higher_is_stronger: bool,
    floor: float | None = None,
    salt: str = "",
) -> Markup:
    """The trade-off of a task's defenses, drawn with matplotlib as an inline SVG.

    ``points``: dicts with defense, kind, utility_cost (the drop of the target's test accuracy
    against no defense), worst_case and its interval ends low and high (None: no interval);
    defenses lacking a cost or a worst case are left out. ``floor``: the no-query floor attack's
    success, drawn as a dashed line. ``salt`` makes the SVG's ids unique on a page of several
    charts. Labels are placed beside their point where they overlap no label placed before."""
    shown = [
        p for p in points if p.get("utility_cost") is not None and p.get("worst_case") is not None
    ]
    if not shown:
        return Markup("")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    direction = "higher" if higher_is_stronger else "lower"
    title = f"Privacy-utility: utility cost against the worst-case {metric}"
    settings = {
        "svg.fonttype": "none",  # text stays text (escaped, searchable), not glyph paths
        "svg.hashsalt": f"invbench-{salt}",
        "text.parse_math": False,  # a "$" in a method name is a dollar sign
        "font.size": 9,
        "font.family": "sans-serif",
    }
    with plt.rc_context(settings):
        figure, axes = plt.subplots(figsize=(6.2, 4.3), layout="constrained")
        try:
            for kind in _kinds(shown):
                group = [p for p in shown if p["kind"] == kind]
                # an interval of one value can sit a rounding error off its mean: clipped at 0
                below = [
                    max(0.0, p["worst_case"] - _or(p.get("low"), p["worst_case"])) for p in group
                ]
                above = [
                    max(0.0, _or(p.get("high"), p["worst_case"]) - p["worst_case"]) for p in group
                ]
                points = axes.errorbar(
                    [p["utility_cost"] for p in group],
                    [p["worst_case"] for p in group],
                    yerr=[below, above],
                    fmt="o",
                    color=KIND_COLOURS.get(kind, "#000"),
                    ecolor=KIND_COLOURS.get(kind, "#000"),
                    elinewidth=1,
                    capsize=3,
                    label=f"defense kind: {kind}",
                )
                points.lines[0].set_gid(f"points-{salt}-{kind}")
            if floor is not None:
                axes.axhline(floor, color="#888", linestyle="--", linewidth=1, label="floor")
            _fit_axes(axes, shown, floor)
            axes.set_xlabel("utility cost: drop of the target's test accuracy against no defense")
            axes.set_ylabel(f"worst-case {metric}\n({direction} is weaker privacy)")
            axes.grid(True, color="#eee", linewidth=0.8)
            figure.legend(loc="outside lower center", ncols=4, frameon=False)
            # lay the figure out once and keep it: labels are placed by their final pixels
            figure.canvas.draw()
            figure.set_layout_engine("none")
            _place_labels(figure, axes, shown)
            buffer = io.StringIO()
            figure.savefig(buffer, format="svg", metadata={"Date": None, "Title": title})
        finally:
            plt.close(figure)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    return Markup(svg.replace("<svg ", f'<svg role="img" aria-label="{escape(title)}" ', 1))


def _or(value, default):
    return default if value is None else value


def _kinds(points: list[dict]) -> list[str]:
    order = list(KIND_COLOURS)
    return sorted(
        {p["kind"] for p in points},
        key=lambda kind: (order.index(kind) if kind in order else len(order), kind),
    )


def _fit_axes(axes, points: list[dict], floor: float | None) -> None:
    """Axes fitted to the points, their intervals and the floor, with a margin; the cost axis
    always shows 0 (no defense); matplotlib's locator picks readable ticks inside."""
    xs = [p["utility_cost"] for p in points] + [0.0]
    ys = [
        v for p in points for v in (p["worst_case"], p.get("low"), p.get("high")) if v is not None
    ]
    ys += [] if floor is None else [floor]
    for values, setter in ((xs, axes.set_xlim), (ys, axes.set_ylim)):
        low, high = min(values), max(values)
        pad = 0.08 * (high - low) if high > low else 0.05 * (abs(high) or 1)
        setter(low - pad, high + pad)


def _place_labels(figure, axes, points: list[dict]) -> None:
    """Each defense's name beside its point (the names of points that coincide joined into one
    label), at the first offset, nearest first, right then left of the point, where its box
    overlaps no label placed before it nor any point, and stays inside the axes; a label moved
    away from its point gets a leader line. Where no offset is free the label takes the nearest one."""
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    renderer = figure.canvas.get_renderer()
    frame = axes.get_window_extent(renderer)
    names: dict[tuple[float, float], list[str]] = {}
    for point in points:
        spot = (round(point["utility_cost"], 6), round(point["worst_case"], 6))
        names.setdefault(spot, []).append(point["defense"])
    rises = [0] + [10 * k * sign for k in range(1, 9) for sign in (1, -1)]
    offsets = [(dx, dy) for dy in rises for dx in (7, -7)]
    # the markers are obstacles too: a label never covers another defense's point
    placed = [
        Bbox.from_bounds(px - 4, py - 4, 8, 8) for px, py in axes.transData.transform(list(names))
    ]
    for (x, y), defenses in sorted(names.items()):
        text = ", ".join(sorted(defenses))
        for dx, dy in offsets:
            label = _label(axes, text, (x, y), dx, dy)
            label.update_positions(renderer)
            box = Text.get_window_extent(label, renderer)  # the text alone, not its leader line
            inside = (
                frame.x0 <= box.x0 <= box.x1 <= frame.x1
                and frame.y0 <= box.y0 <= box.y1 <= frame.y1
            )
            if inside and not any(box.overlaps(other) for other in placed):
                break
            label.remove()
        else:
            label = _label(axes, text, (x, y), *offsets[0])
            box = label.get_window_extent(renderer)
        placed.append(box)


def _label(axes, text: str, point: tuple[float, float], dx: float, dy: float):
    far = abs(dy) >= 10  # away from its point: a leader line says whose it is
    return axes.annotate(
        text,
        point,
        xytext=(dx + (8 if dx > 0 else -8) * far, dy),
        textcoords="offset points",
        ha="left" if dx > 0 else "right",
        va="center",
        fontsize=8,
        arrowprops={"arrowstyle": "-", "color": "#999", "lw": 0.6} if far else None,
    )


def roc_chart(curves: dict[str, dict], title: str) -> Markup:
    """``curves``: attack name -> {"fpr": [...], "tpr": [...]}."""
    if not curves:
        return Markup("")
    x = Axis.fit([0.0, 1.0], LEFT, WIDTH - RIGHT, bounds=(0.0, 1.0))
    y = Axis.fit([0.0, 1.0], HEIGHT - BOTTOM, TOP, bounds=(0.0, 1.0))
    parts = _frame(x, y, "false positive rate (non-edges)", "true positive rate (edges)", title)
    parts.append(
        f'<line x1="{x(0):.1f}" y1="{y(0):.1f}" x2="{x(1):.1f}" y2="{y(1):.1f}" '
        f'stroke="#bbb" stroke-dasharray="4 3"/>'
    )
    entries = []
    for i, (attack, curve) in enumerate(sorted(curves.items())):
        colour = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{x(f):.1f},{y(t):.1f}" for f, t in zip(curve["fpr"], curve["tpr"]))
        parts.append(
            f'<polyline class="curve" points="{path}" fill="none" stroke="{colour}" '
            f'stroke-width="2"><title>{escape(attack)}</title></polyline>'
        )
        entries.append((attack, colour))
    parts += _legend(entries, "line")
    return _svg(parts, title)
