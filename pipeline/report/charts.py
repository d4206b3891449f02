"""PNG reports (matplotlib, headless): the demo's learning curves and the attribution pictures analysts
compare models with. Inputs are plain numbers, so any run or backfill output can be drawn."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

COLORS = {"click-agent": "#d62728", "attribution-agent": "#2ca02c", "provisional-agent": "#1f77b4",
          "oracle": "#444444"}


def _per_channel_bars(ax: Any, per_model: Mapping[str, Mapping[str, float]], currency: str) -> None:
    models = list(per_model)
    channels = sorted({c for totals in per_model.values() for c in totals})
    width = 0.8 / max(len(models), 1)
    x = np.arange(len(channels))
    for i, model in enumerate(models):
        ax.bar(x + i * width - 0.4 + width / 2, [per_model[model].get(c, 0.0) for c in channels], width,
               label=model)
    ax.set_xticks(x, channels)
    ax.set_ylabel(f"attributed value ({currency})")
    ax.set_title("Attributed value per channel, by attribution model")
    ax.legend(fontsize=7, ncol=2)


def _delay_histogram(ax: Any, delays_hours: Sequence[float], window_days: float | None) -> None:
    if delays_hours:
        ax.hist(delays_hours, bins=60, color="#1f77b4")
    if window_days:
        ax.axvline(window_days * 24, color="black", linestyle="--", label=f"attribution window ({window_days:g} d)")
        ax.legend(fontsize=8)
    ax.set_xlabel("hours from touchpoint to the conversion that paid it")
    ax.set_ylabel("touchpoints")
    ax.set_title(f"Time to conversion ({len(delays_hours):,} paid touchpoints)")


def _calibration(ax: Any, calibration: Mapping[str, tuple[float, float, int, float]], span: tuple[int, int]) -> None:
    channels = list(calibration)
    x = np.arange(len(channels))
    ax.bar(x - 0.2, [calibration[c][0] for c in channels], 0.4, label="provisional (expected when fresh)",
           color=COLORS["provisional-agent"])
    ax.bar(x + 0.2, [calibration[c][1] for c in channels], 0.4, label="realized final (± standard error)",
           color="#999999", yerr=[calibration[c][3] for c in channels], capsize=3)
    for i, c in enumerate(channels):
        predicted, realized, n, se = calibration[c]
        label = (f"{predicted / realized - 1:+.0%}\n" if realized else "") + f"n={n:,}"
        ax.text(i, max(predicted, realized + se), label, ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, channels)
    ax.set_ylabel("mean reward per experience (USD)")
    ax.set_title(f"Calibration of provisional rewards, days {span[0]}-{span[1]}")
    ax.legend(fontsize=8)


def demo_report(path: Path, days: Sequence[int], policy_value: Mapping[str, Sequence[float]],
                realized_value: Mapping[str, Sequence[float]], oracle_value: float, cpm: float,
                learned_from: Mapping[str, Sequence[int]], per_model: Mapping[str, Mapping[str, float]],
                delays_hours: Sequence[float], window_days: float,
                calibration: Mapping[str, tuple[float, float, int, float]] | None = None,
                calibration_span: tuple[int, int] = (0, 0)) -> Path:
    fig, axes = plt.subplots(2, 3, figsize=(21, 10))
    ax = axes[0][0]
    for name, values in policy_value.items():
        ax.plot(days, np.asarray(values) / cpm, color=COLORS.get(name), linewidth=2, label=f"{name} (greedy policy)")
        ax.plot(days, np.asarray(realized_value[name]) / cpm, color=COLORS.get(name), alpha=0.35, linestyle=":",
                label=f"{name} (realized that day)")
    ax.axhline(oracle_value / cpm, color=COLORS["oracle"], linestyle="--", label="oracle policy")
    ax.set_xlabel("simulated day")
    ax.set_ylabel("conversion value per $ of spend")
    ax.set_title("Learning curves: trained on clicks, on final attributed rewards, on provisional rewards")
    ax.legend(fontsize=8, loc="upper left")
    _per_channel_bars(axes[0][1], per_model, "USD")
    _delay_histogram(axes[1][0], delays_hours, window_days)
    ax = axes[1][1]
    for name, counts in learned_from.items():
        ax.plot(days, counts, color=COLORS.get(name), label=name)
    ax.set_xlabel("simulated day")
    ax.set_ylabel("experiences learned from")
    ax.set_title("Data each agent could learn from (attribution waits for final rewards)")
    ax.legend(fontsize=8)
    if calibration:
        _calibration(axes[0][2], calibration, calibration_span)
    else:
        axes[0][2].set_visible(False)
    axes[1][2].set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def rewards_report(path: Path, per_model: Mapping[str, Mapping[str, float]], currency: str,
                   delays_hours: Sequence[float], kinds: Mapping[str, int]) -> Path:
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.5), gridspec_kw={"width_ratios": [3, 3, 1.4]})
    _per_channel_bars(axes[0], per_model, currency)
    _delay_histogram(axes[1], delays_hours, None)
    axes[2].bar(list(kinds), list(kinds.values()), color="#9467bd")
    axes[2].set_title("Reward events by kind")
    axes[2].tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
