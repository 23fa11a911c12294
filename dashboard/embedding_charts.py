"""The Embeddings page's scatter: each character at its 2-D position, with labels that never overlap.

At the end of the lecture's run most letters sit in one tight blob and a few ('.', q, j) far away, so
labels drawn on the points hide each other. Here every point is a small dot and its label is laid out
in pixels: it stays on its point when there is room, and is pushed aside a little otherwise, with a
short leader line back to the dot. A label with no free spot near its dot is left off (pushed further,
the blob's labels became a starburst of long crossing lines nobody could follow): the figure lists
those in `layout.meta`, for the page to name them and offer a zoom into the blob (`analysis.crowd_ranges`),
where they fit. With thousands of characters (CJK names) only the most frequent ones and the searched
ones are labelled; every dot still names itself on hover. Pure plotly, no Streamlit.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from .analysis import axis_ranges, display_char, is_vowel
from .charts import BLUE, FONT_SIZE, GREY, ORANGE, RED, _layout

# Latin first, then fonts that have CJK glyphs: the browser falls back per character down this list.
LABEL_FONT = '"Open Sans", verdana, arial, "Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans CJK KR", sans-serif'
MAX_LABELS = 100  # up to this many characters, every one is labelled
TOP_LABELS = 40  # above it, only the most frequent are (plus the searched ones): a readable sample
HEIGHT = 560
# The plot area the layout assumes, in pixels. Height: HEIGHT less the margins Chromium gives it (60 above,
# 114 below: the legend under the plot widens the bottom one). Width: the narrowest a wide-layout page
# gives the chart, so on a wider screen labels only get more room.
PLOT_WIDTH, PLOT_HEIGHT = 640.0, HEIGHT - 174.0
LABEL_HEIGHT, CHAR_WIDTH, LABEL_PAD = 24.0, 11.0, 6.0  # px: a box at FONT_SIZE with borderpad 3 and border 1
DOT_SIZE = 7
RING_STEP = 4.0  # px between the rings of candidate label positions around a dot
# The farthest a label may sit from its dot (centre to centre, px): a label height and a half, so a leader line
# stays short enough to follow at a glance. A label with no free spot that near is left off.
MAX_LEADER = 36.0
GROUPS = (("'.' start/end", GREY), ("consonant / other", BLUE), ("vowel", ORANGE))


def char_group(ch: str) -> str:
    """Which colour group a character belongs to (accented vowels are vowels)."""
    return "'.' start/end" if ch == "." else "vowel" if is_vowel(ch) else "consonant / other"


def text_width(text: str) -> float:
    """Approximate pixel width of a label's text: CJK ideographs and other wide characters take 1.5 Latin ones."""
    return sum(CHAR_WIDTH * (1.5 if unicodedata.east_asian_width(ch) in "WF" else 1) for ch in text) or CHAR_WIDTH


def crowded(labels: Sequence[str]) -> bool:
    """More characters (besides '.') than MAX_LABELS: label only a sample, draw small see-through dots."""
    return len(labels) > MAX_LABELS + 1


def labelled_indices(labels: Sequence[str], counts: Mapping[str, int] | None, highlight: Collection[str]) -> list[int]:
    """Every character when there are few; else '.', the TOP_LABELS most frequent and the highlighted ones."""
    if not crowded(labels):
        return list(range(len(labels)))
    counts = counts or {}
    by_freq = sorted(range(len(labels)), key=lambda i: (-counts.get(labels[i], 0), labels[i]))
    chosen = set(by_freq[:TOP_LABELS]) | {i for i, ch in enumerate(labels) if ch in highlight or ch == "."}
    return sorted(chosen)


def label_layout(
    anchors: np.ndarray,
    widths: np.ndarray,
    obstacles: np.ndarray,
    width: float,
    height: float,
    max_offset: float = np.inf,
    keep: Collection[int] = (),
) -> np.ndarray:
    """Label centres (n, 2) in pixels, y up: on its anchor when there is room, else the nearest free spot.

    Boxes are widths x LABEL_HEIGHT; obstacles (m, 2) are the dots, which a label must not cover (its own
    dot excepted: a label on its dot marks the spot). Greedy and deterministic: the labels in `keep` first,
    then the least crowded ones, each at the first free candidate on rings of growing radius around its
    anchor. A label (not in `keep`) with no free spot within max_offset px of its anchor gets NaN: left off,
    so no two labels ever overlap. Those in `keep` go to the least bad spot anywhere.
    """
    n = len(anchors)
    if n == 0:
        return anchors.reshape(0, 2)
    half = np.column_stack([widths / 2, np.full(n, LABEL_HEIGHT / 2)])
    dot = DOT_SIZE / 2 + 1
    # Candidate offsets, nearest first: right, left, up, down, then the diagonals and the rest of 16 directions.
    angles = np.deg2rad([0, 180, 90, 270, 45, 135, 225, 315, 22.5, 157.5, 202.5, 337.5, 67.5, 112.5, 247.5, 292.5])
    radii = np.arange(RING_STEP, max(width, height), RING_STEP)
    rings = (radii[:, None, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)[None]).reshape(-1, 2)
    offsets = np.vstack([[0.0, 0.0], rings])
    near = np.linalg.norm(offsets, axis=1) <= max_offset
    crowd = (np.abs(anchors[:, None] - anchors[None]) < half[:, None] + half[None]).all(2).sum(1)
    keep = set(keep)
    placed = np.zeros((0, 2))
    placed_half = np.zeros((0, 2))
    result = np.full_like(anchors, np.nan, dtype=np.float64)
    for i in sorted(range(n), key=lambda i: (i not in keep, crowd[i])):  # sorted() is stable: ties by index
        foreign = obstacles[np.linalg.norm(obstacles - anchors[i], axis=1) > 1e-6]
        reach = offsets if i in keep else offsets[near]
        best, best_cost = anchors[i], np.inf
        # Ten rings at a time: most labels find room in the first few, so the far rings are rarely computed.
        for start in range(0, len(reach), 1 + 10 * len(angles)):
            cands = anchors[i] + reach[start : start + 1 + 10 * len(angles)]
            outside = ~(((cands - half[i]) >= 0).all(1) & ((cands + half[i]) <= [width, height]).all(1))
            clash = (np.abs(cands[:, None] - placed[None]) < half[i] + placed_half + LABEL_PAD / 2).all(2).sum(1)
            covers = (np.abs(cands[:, None] - foreign[None]) < half[i] + dot).all(2).sum(1)
            # Free spots cost 0; with none anywhere (hundreds of labels on one point) take the least bad one.
            cost = outside * 10**6 + clash * 1000 + covers
            j = int(np.argmin(cost))
            if cost[j] < best_cost:
                best, best_cost = cands[j], cost[j]
            if best_cost == 0:
                break
        if best_cost > 0 and i not in keep:
            continue  # no free spot near its dot: left off (NaN)
        result[i] = best
        placed = np.vstack([placed, best])
        placed_half = np.vstack([placed_half, half[i]])
    return result


def embedding_figure(
    points: np.ndarray,
    labels: Sequence[str],
    *,
    x_title: str,
    y_title: str,
    x_range: Sequence[float] | None = None,
    y_range: Sequence[float] | None = None,
    title: str = "Character embeddings",
    counts: Mapping[str, int] | None = None,
    highlight: Collection[str] = (),
) -> go.Figure:
    """Dots coloured by group ('.', consonants, vowels), non-overlapping labels, searched characters ringed in red.

    counts (character -> occurrences in the data) chooses which characters are labelled when there are
    more than MAX_LABELS, and shows in the hover.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if x_range is None or y_range is None:
        auto_x, auto_y = axis_ranges([points])
        x_range, y_range = x_range or auto_x, y_range or auto_y
    counts = counts or {}
    fig = go.Figure()
    groups = [char_group(ch) for ch in labels]
    crowd = crowded(labels)  # thousands of dots: smaller and see-through, so density shows
    for rank, (name, color) in enumerate(GROUPS[::-1], start=1):  # legend: vowels first, '.' drawn last (on top)
        idx = [i for i, g in enumerate(groups) if g == name]
        if not idx:
            continue
        fig.add_trace(
            go.Scatter(
                x=points[idx, 0],
                y=points[idx, 1],
                mode="markers",
                marker={
                    "size": DOT_SIZE - 2 if crowd else DOT_SIZE,
                    "color": color,
                    "opacity": 0.5 if crowd else 1.0,
                    "line": {"width": 0 if crowd else 1, "color": "white"},
                },
                name=name,
                legendrank=rank,
                text=[display_char(labels[i]) for i in idx],
                customdata=[counts.get(labels[i], 0) for i in idx],
                hovertemplate="%{text}<br>(%{x:.3f}, %{y:.3f})"
                + ("<br>%{customdata:,} times in the data" if counts else "")
                + "<extra></extra>",
                hoverlabel={"font": {"family": LABEL_FONT}},
            )
        )
    marked = [i for i, ch in enumerate(labels) if ch in highlight]
    if marked:
        fig.add_trace(
            go.Scatter(
                x=points[marked, 0],
                y=points[marked, 1],
                mode="markers",
                marker={"size": 22, "color": "rgba(0,0,0,0)", "line": {"width": 3, "color": RED}},
                name="searched",
                legendrank=4,
                hoverinfo="skip",
            )
        )
    shown = labelled_indices(labels, counts, set(highlight))
    notes, unlabelled = _label_annotations(points, labels, groups, shown, set(marked), x_range, y_range)
    fig.update_layout(annotations=notes)
    # For the page's caption: which characters have no label here, and which lie outside the axes (a zoom).
    outside = ~((points >= [x_range[0], y_range[0]]) & (points <= [x_range[1], y_range[1]])).all(1)
    fig.update_layout(meta={"unlabelled": unlabelled, "outside": [labels[i] for i in np.flatnonzero(outside)]})
    _layout(fig, title, x_title, y_title, height=HEIGHT)
    fig.update_xaxes(range=list(x_range))
    fig.update_yaxes(range=list(y_range))
    return fig


def _label_annotations(
    points: np.ndarray,
    labels: Sequence[str],
    groups: Sequence[str],
    shown: Sequence[int],
    marked: Collection[int],
    x_range: Sequence[float],
    y_range: Sequence[float],
) -> tuple[list[dict], list[str]]:
    """One annotation per label that fits: the text box at its laid-out place, a leader line to its dot if it
    moved; and the characters (inside the axes) left without a label, for lack of room near their dots."""
    scale = np.array([PLOT_WIDTH / (x_range[1] - x_range[0]), PLOT_HEIGHT / (y_range[1] - y_range[0])])
    px = (points - np.array([x_range[0], y_range[0]])) * scale
    inside = np.isfinite(px).all(1) & (px >= 0).all(1) & (px <= [PLOT_WIDTH, PLOT_HEIGHT]).all(1)
    shown = [i for i in shown if inside[i]]
    texts = [display_char(labels[i]) for i in shown]
    widths = np.array([8 + text_width(t) for t in texts], dtype=np.float64)
    # Thousands of dots (a CJK alphabet) would make the layout slow; there, labels may cover unlabelled dots.
    others = np.zeros((0, 2)) if crowded(labels) else px[inside]
    keep = [j for j, i in enumerate(shown) if i in marked]  # a searched character is always labelled
    centres = label_layout(px[shown], widths, others, PLOT_WIDTH, PLOT_HEIGHT, MAX_LEADER, keep)
    colors = dict(GROUPS)
    notes, unlabelled = [], []
    for j, i in enumerate(shown):
        if not np.isfinite(centres[j]).all():
            unlabelled.append(labels[i])
            continue
        dx, dy = centres[j] - px[i]
        moved = bool(np.hypot(dx, dy) > 2)
        color = RED if i in marked else colors[groups[i]]
        notes.append(
            {
                "x": float(points[i, 0]),
                "y": float(points[i, 1]),
                "text": texts[j],
                "showarrow": True,
                "ax": float(dx) if moved else 0.0,
                "ay": float(-dy) if moved else 0.0,  # pixels, screen y points down
                "arrowhead": 0,
                "arrowwidth": 1,
                "arrowcolor": color,
                "standoff": DOT_SIZE / 2,
                "bgcolor": color,
                "bordercolor": "white",
                "borderwidth": 1,
                "borderpad": 3,
                "opacity": 0.95,
                "font": {"color": "white", "size": FONT_SIZE, "family": LABEL_FONT},
                "hovertext": f"{texts[j]} ({points[i, 0]:.3f}, {points[i, 1]:.3f})",
            }
        )
    return notes, unlabelled
