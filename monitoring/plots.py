"""The report's plots: matplotlib figures rendered to inline SVG, so the page has no script,
loads nothing from the network and shows the same in any browser (or none: it is text)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no screen: files only (set before pyplot is imported)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from skewless.quality.monitoring_result import Distribution, Histogram, Window  # noqa: E402

plt.rcParams.update(
    {"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False, "axes.spines.right": False}
)
REFERENCE, CURRENT = "#8c8c8c", "#1f77b4"


def svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")  # laid out when made: "tight" would draw twice
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # inline: no XML declaration or doctype


def _floats(values: list[float | None]) -> np.ndarray:
    """Figures as an array, an undefined one (None) as NaN."""
    return np.asarray(values, dtype="float64")


def _nan(value: float | None) -> float:
    return np.nan if value is None else value


def _times(windows: list[Window]) -> list[np.datetime64]:
    return [np.datetime64(w.start[:19]) for w in windows]


def drift_over_time(windows: list[Window], importance: dict[str, float]) -> str:
    """Distance / threshold per feature and window (1 = at the threshold); features ordered
    by importance, blank where a window had too few rows for a verdict."""
    features = sorted(importance, key=lambda f: -importance[f])
    ratio = np.array(
        [[_nan(w.drift_ratio.get(f)) for w in windows] for f in features],
        dtype="float64",
    )
    figure, ax = plt.subplots(
        layout="constrained", figsize=(min(3 + 0.12 * len(windows), 14), 1 + 0.19 * len(features))
    )
    image = ax.imshow(ratio, aspect="auto", cmap="RdYlGn_r", vmin=0, vmax=2, interpolation="none")
    ax.set_yticks(range(len(features)), [f"{f} ({importance[f]:.0%})" for f in features])
    step = max(1, len(windows) // 12)
    ax.set_xticks(range(0, len(windows), step), [w.start[:10] for w in windows][::step])
    ax.tick_params(axis="x", rotation=45)
    figure.colorbar(image, ax=ax, label="distance / threshold (red: drifted)", shrink=0.6)
    ax.set_title("Drift per feature over time (importance in brackets)")
    return svg(figure)


def distributions(items: list[Distribution]) -> str:
    """Reference vs current shares for the most drifted features."""
    columns = 3
    rows = max(1, -(-len(items) // columns))
    figure, axes = plt.subplots(
        rows, columns, figsize=(12, 2.6 * rows), squeeze=False, layout="constrained"
    )
    for ax, item in zip(axes.flat, items, strict=False):
        if item.kind == "numeric":
            edges = _floats(item.edges)
            centers, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
            ax.bar(
                centers,
                _floats(item.reference),
                width=width,
                color=REFERENCE,
                alpha=0.6,
                label="training",
            )
            ax.step(centers, _floats(item.current), where="mid", color=CURRENT, label="served")
        else:
            x = np.arange(len(item.categories))
            ax.bar(x - 0.2, _floats(item.reference), 0.4, color=REFERENCE, label="training")
            ax.bar(x + 0.2, _floats(item.current), 0.4, color=CURRENT, label="served")
            ax.set_xticks(x, item.categories, rotation=60, fontsize=7)
        ax.set_title(item.feature)
        ax.set_ylabel("share")
    for ax in list(axes.flat)[len(items) :]:
        ax.axis("off")
    axes.flat[0].legend()
    return svg(figure)


def scores(histogram: Histogram) -> str:
    edges = _floats(histogram.edges)
    centers, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    figure, ax = plt.subplots(layout="constrained", figsize=(6, 2.8))
    ax.bar(
        centers,
        _floats(histogram.reference),
        width=width,
        color=REFERENCE,
        alpha=0.6,
        label="test window",
    )
    ax.step(centers, _floats(histogram.current), where="mid", color=CURRENT, label="served")
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("share")
    ax.set_title("Score distribution")
    ax.legend()
    return svg(figure)


def performance_over_time(windows: list[Window], test_auc: float | None) -> str:
    times = _times(windows)
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 4.6), sharex=True, layout="constrained")
    auc = [_nan(w.roc_auc) for w in windows]
    ece = [_nan(w.ece) for w in windows]
    top.plot(times, auc, marker=".", color=CURRENT, label="served (labelled)")
    if test_auc is not None:
        top.axhline(test_auc, color=REFERENCE, linestyle="--", label="test window")
    top.set_ylabel("ROC AUC")
    top.legend(loc="lower left")
    top.set_title("Performance once labels are known")
    bottom.plot(times, ece, marker=".", color="#d62728")
    bottom.set_ylabel("calibration error")
    bottom.tick_params(axis="x", rotation=30)
    return svg(figure)


def labels_over_time(windows: list[Window]) -> str:
    times = _times(windows)
    figure, ax = plt.subplots(layout="constrained", figsize=(9, 2.6))
    rows = np.array([w.rows for w in windows], dtype="float64")
    labelled = np.array([w.labelled for w in windows], dtype="float64")
    ax.plot(times, 100 * labelled / np.maximum(rows, 1), marker=".", color=CURRENT)
    ax.set_ylim(0, 105)
    ax.set_ylabel("labelled, %")
    twin = ax.twinx()
    twin.plot(times, rows, color=REFERENCE, linewidth=1)
    twin.set_ylabel("predictions")
    ax.set_title("Label coverage (blue) and traffic (grey)")
    ax.tick_params(axis="x", rotation=30)  # the dates are on the first axes, not the twin
    return svg(figure)
