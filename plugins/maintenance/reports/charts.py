"""Report charts as PNG bytes (matplotlib, headless)."""

from __future__ import annotations

import io
from collections import defaultdict


def _figure(title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
    ax.set_title(title, fontsize=11, loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _empty(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"No {what} recorded in this period yet", ha="center", va="center",
            transform=ax.transAxes, color="#6b7280")
    ax.set_xticks([])
    ax.set_yticks([])


def kpis_vs_targets(checks: dict) -> bytes:
    """One panel per unit (percent, minutes), each KPI a bar with its target drawn across it:
    99.70% against 99.9% must be visible, so the percent axis starts near the values."""
    import matplotlib.pyplot as plt

    units = sorted({c["unit"] for c in checks.values()}, key=lambda u: u != "%")
    fig, axes = plt.subplots(1, len(units), figsize=(7, 3.2), dpi=100, squeeze=False,
                             gridspec_kw={"width_ratios": [1 if u == "%" else 2 for u in units]})
    fig.suptitle("KPIs against targets", fontsize=11, x=0.02, ha="left")
    for ax, unit in zip(axes[0], units, strict=True):
        ax.spines[["top", "right"]].set_visible(False)
        names = [n for n, c in checks.items() if c["unit"] == unit]
        values = [checks[n]["value"] or 0 for n in names]
        labels = [n.replace("_pct", "").replace("_minutes", "").replace("_", " ") for n in names]
        colors = ["#16a34a" if checks[n]["met"] else "#dc2626" for n in names]
        floor = max(0.0, min(min([*values, *(checks[n]["limit"] for n in names)]) - 0.2, 99.0))
        ax.bar(labels, values, color=colors, width=0.55)
        for x, n in enumerate(names):
            limit, value = checks[n]["limit"], checks[n]["value"]
            ax.hlines(limit, x - 0.4, x + 0.4, colors="#111827", linestyles="--", linewidth=1.2)
            ax.annotate(f"target {checks[n]['target']}", (x, limit), textcoords="offset points", xytext=(0, 3),
                        ha="center", fontsize=7, bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none"})
            # The value inside its bar (percent: the bar's visible half) so it never meets the target's label.
            at = (values[x] + floor) / 2 if unit == "%" else values[x]
            ax.annotate("n/a" if value is None else f"{value:.2f}", (x, at), textcoords="offset points",
                        xytext=(0, 0 if unit == "%" else 3), ha="center", fontsize=8,
                        color="white" if unit == "%" else "#111827")
        if unit == "%":
            ax.set_ylim(floor, 100.05)
        else:
            top = max([*values, *(checks[n]["limit"] for n in names), 1])
            ax.set_ylim(0, top * 1.2)
        ax.set_ylabel("percent" if unit == "%" else "minutes")
        ax.tick_params(axis="x", labelsize=8)
    return _png(fig)


def downtime_budget(planned: float, unplanned: float, planned_budget: float, unplanned_budget: float) -> bytes:
    fig, ax = _figure("Downtime budget used (minutes)")
    labels = ["planned", "unplanned"]
    ax.bar(labels, [planned_budget, unplanned_budget], color="#e5e7eb", label="budget")
    ax.bar(labels, [planned, unplanned], color=["#2563eb", "#dc2626"], width=0.5, label="used")
    ax.legend(frameon=False, fontsize=8)
    return _png(fig)


def series(title: str, points: list, unit: str = "") -> bytes:
    fig, ax = _figure(title)
    if not points:
        _empty(ax, title.lower())
        return _png(fig)
    by_target = defaultdict(list)
    for at, target, value in points:
        by_target[target].append((at, value))
    # The eight targets with the highest latest value.
    shown = sorted(by_target.items(), key=lambda kv: -kv[1][-1][1])[:8]
    if len({at for at, _, _ in points}) == 1:  # one measurement so far: latest values as bars
        ax.barh([t for t, _ in shown][::-1], [v[-1][1] for _, v in shown][::-1], color="#2563eb")
        ax.set_xlabel(unit)
        ax.tick_params(axis="y", labelsize=7)
        return _png(fig)
    import matplotlib.dates as mdates

    for target, values in shown:
        ax.plot([a for a, _ in values], [v for _, v in values], marker="o", markersize=3, label=target)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))
    ax.set_ylabel(unit)
    ax.legend(frameon=False, fontsize=7)
    fig.autofmt_xdate()
    return _png(fig)


def actions_per_week(rows: list) -> bytes:
    fig, ax = _figure("Maintenance actions per week")
    if not rows:
        _empty(ax, "actions")
        return _png(fig)
    weeks = sorted({w for w, _, _ in rows})
    systems = sorted({s for _, s, _ in rows})
    counts = {(w, s): n for w, s, n in rows}
    bottom = [0] * len(weeks)
    labels = [w.strftime("%m-%d") for w in weeks]
    for system in systems:
        values = [counts.get((w, system), 0) for w in weeks]
        ax.bar(labels, values, bottom=bottom, label=system)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.legend(frameon=False, fontsize=7)
    return _png(fig)
