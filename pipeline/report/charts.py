"""PNG reports (matplotlib, headless): the demo's learning curves and the attribution pictures analysts
compare models with. Inputs are plain numbers, so any run or backfill output can be drawn."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

if TYPE_CHECKING:
    from pipeline.demo.ad_market import Calibration
    from pipeline.model_comparison import Evaluation

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


def _calibration(ax: Any, calibration: Mapping[str, Calibration], span: tuple[int, int]) -> None:
    """Per channel: the provisional reward's relative error (mean expected when fresh ÷ mean realized final − 1)
    with its 95 % bootstrap interval, against the ±10 % band."""
    channels = list(calibration)
    x = np.arange(len(channels))
    errors = np.asarray([calibration[c].error for c in channels]) * 100
    low = np.asarray([calibration[c].low for c in channels]) * 100
    high = np.asarray([calibration[c].high for c in channels]) * 100
    ax.axhspan(-10, 10, color="#2ca02c", alpha=0.12, label="±10 %")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.errorbar(x, errors, yerr=[np.maximum(errors - low, 0), np.maximum(high - errors, 0)], fmt="o", capsize=4,
                color=COLORS["provisional-agent"], label="expected when fresh vs realized final (95 % bootstrap)")
    for i, c in enumerate(channels):
        cal = calibration[c]
        ax.text(i + 0.08, errors[i], f"{errors[i]:+.0f}%\n{cal.expected:.2f}/{cal.realized:.2f} USD\nn={cal.n:,}",
                va="center", fontsize=7)
    ax.set_xticks(x, channels)
    ax.set_xlim(-0.5, len(channels) - 0.2)
    ax.set_ylabel("relative error of the provisional reward (%)")
    ax.set_title(f"Calibration of provisional rewards per channel, days {span[0]}-{span[1]}")
    ax.legend(fontsize=8)


def demo_report(path: Path, days: Sequence[int], policy_value: Mapping[str, Sequence[float]],
                realized_value: Mapping[str, Sequence[float]], oracle_value: float, cpm: float,
                learned_from: Mapping[str, Sequence[int]], per_model: Mapping[str, Mapping[str, float]],
                delays_hours: Sequence[float], window_days: float,
                calibration: Mapping[str, Calibration] | None = None,
                calibration_span: tuple[int, int] = (0, 0), evaluation: Evaluation | None = None) -> Path:
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
    if evaluation is not None:
        evaluation_panel(axes[1][2], evaluation)
    else:
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


def evaluation_panel(ax: Any, evaluation: Evaluation) -> None:
    """Per model: error of its per-channel value against the truth, the split's error, and its agent's value as
    a share of the oracle's (the agent fitted on the true credit: the dashed line)."""
    scores = evaluation.scores
    x = np.arange(len(scores))
    bars = (("error vs true incremental value", [s.error for s in scores], "#d62728"),
            ("share error (the split alone)", [s.share_error for s in scores], "#ff9896"),
            ("agent's policy value / oracle", [s.policy_fraction for s in scores], "#2ca02c"))
    for i, (label, values, color) in enumerate(bars):
        ax.bar(x + (i - 1) * 0.27, np.asarray(values) * 100, 0.27, label=label, color=color)
    ax.axhline(evaluation.truth_policy_fraction * 100, color="#2ca02c", linestyle="--", linewidth=1,
               label="agent fitted on the true credit / oracle")
    ax.set_xticks(x, [evaluation.label(s.model) for s in scores], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("%")
    ax.set_ylim(0, 125)
    ax.set_title(f"Models against the causal truth ({evaluation.market} market, seed {evaluation.seed})")
    ax.legend(fontsize=7, loc="upper center", ncol=2)


def evaluation_report(path: Path, evaluation: Evaluation) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(18, 6))
    per_channel = {"true incremental": evaluation.truth_per_channel,
                   **{evaluation.label(s.model): s.per_channel for s in evaluation.scores}}
    _per_channel_bars(axes[0], per_channel, "USD")
    axes[0].set_title("Attributed value per channel, by model, beside the true incremental value")
    evaluation_panel(axes[1], evaluation)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
