"""Inline SVG charts for the leaderboard page (no library, no network): every text is escaped.

- :func:`privacy_utility_chart`: one point per defense, utility on x, the worst-case attack's
  success on y, coloured by defense kind, with a legend and axis labels.
- :func:`roc_chart`: one ROC curve per attack (graph tasks), with the chance diagonal.
"""

from __future__ import annotations

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


def _free_label_spot(
    x0: float, y0: float, width: float, placed: list[tuple[float, float, float]]
) -> tuple[float, float]:
    """The first of y0, y0 + 11, y0 - 11, y0 + 22, ... where a label of ``width`` overlaps no
    label already ``placed`` (x, y, width); records the spot. Labels are 11 px high."""
    for shift in [0] + [sign * 11 * k for k in range(1, 12) for sign in (1, -1)]:
        y = y0 + shift
        if all(abs(y - py) >= 11 or x0 + width <= px or px + pw <= x0 for px, py, pw in placed):
            placed.append((x0, y, width))
            return x0, y
    placed.append((x0, y0, width))
    return x0, y0


def privacy_utility_chart(points: list[dict], metric: str, higher_is_stronger: bool) -> Markup:
    """``points``: dicts with defense, kind, utility and worst_case (defenses lacking either
    value are left out)."""
    shown = [p for p in points if p.get("utility") is not None and p.get("worst_case") is not None]
    title = f"Privacy-utility: utility against the worst-case {metric}"
    if not shown:
        return Markup("")
    x = Axis.fit([p["utility"] for p in shown], LEFT, WIDTH - RIGHT)
    y = Axis.fit([p["worst_case"] for p in shown], HEIGHT - BOTTOM, TOP)
    direction = "higher" if higher_is_stronger else "lower"
    parts = _frame(
        x,
        y,
        "utility: the defended target's test accuracy",
        f"worst-case {metric} ({direction} is weaker privacy)",
        title,
    )
    placed: list[tuple[float, float, float]] = []
    for point in sorted(shown, key=lambda p: (p["utility"], p["worst_case"])):
        px, py = x(point["utility"]), y(point["worst_case"])
        colour = KIND_COLOURS.get(point["kind"], "#000")
        label_x, label_y = _free_label_spot(px + 7, py - 6, 6.0 * len(point["defense"]), placed)
        parts.append(
            f'<g class="point"><circle cx="{px:.1f}" cy="{py:.1f}" r="5" '
            f'fill="{colour}"><title>{escape(point["defense"])}: utility '
            f"{point['utility']:.4g}, worst case {point['worst_case']:.4g}</title>"
            f'</circle><text x="{label_x:.1f}" y="{label_y:.1f}" font-size="10">'
            f"{escape(point['defense'])}</text></g>"
        )
    order = list(KIND_COLOURS)
    kinds = sorted(
        {p["kind"] for p in shown},
        key=lambda kind: (order.index(kind) if kind in order else len(order), kind),
    )
    parts += _legend(
        [(f"defense kind: {kind}", KIND_COLOURS.get(kind, "#000")) for kind in kinds], "dot"
    )
    return _svg(parts, title)


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
