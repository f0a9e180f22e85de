"""Statistics over replicates (seeds): means with Student-t confidence intervals, paired differences
against a baseline policy, and a one-sentence verdict per policy. Pure functions over plain numbers.

Design (docs/simulate.md, "Reading the intervals"): every policy runs on the same replicates (paired
design), so a policy is compared with the baseline seed by seed. For each metric:

- per policy: mean over the seeds, and its 95% interval mean +- t(0.975, n-1) x sd / sqrt(n);
- per non-baseline policy: the per-seed difference d = policy - baseline, its mean and interval (a
  paired t-interval), and the relative change as a ratio of means, r = mean(d) / mean(baseline) (so it
  agrees with the means shown), with a delta-method interval r +- t(0.975, n-1) x sd(z) / sqrt(n),
  z_i = (d_i - r x baseline_i) / mean(baseline) (undefined when the baseline's mean is 0);
- significant: the difference's interval excludes 0, and so does the relative change's where there is
  one (both intervals must agree, so a verdict never shows an interval that contains 0).

The t quantile comes from the regularized incomplete beta function (continued fraction, Lentz's
method), inverted by bisection: no scipy at run time (the unit tests compare it with scipy).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

LOWER, HIGHER = "lower", "higher"  # which direction of a metric is better


# ---------------------------------------------------------------------------------------- t quantile
def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes 6.4)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        step = d * c
        h *= step
        if abs(step - 1.0) < 1e-16:
            break
    return h


def regularized_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b), the regularized incomplete beta function, for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):  # the fraction converges fast on this side; use the symmetry otherwise
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with df degrees of freedom."""
    tail = 0.5 * regularized_beta(df / (df + t * t), df / 2.0, 0.5)
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The p quantile of Student's t with df > 0 degrees of freedom (bisection on t_cdf, to ~1e-12)."""
    if not 0.0 < p < 1.0 or not df > 0:
        raise ValueError(f"t quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    high = 1.0
    while t_cdf(high, df) < p:
        high *= 2.0
    low = 0.0
    for _ in range(200):
        mid = 0.5 * (low + high)
        if t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
        if high - low <= 1e-13 * max(1.0, high):
            break
    return 0.5 * (low + high)


# ---------------------------------------------------------------------------------------- intervals
@dataclass(frozen=True)
class Interval:
    """Mean of n values with its confidence interval (low, high: None for fewer than 2 values)."""

    n: int
    mean: float | None
    low: float | None
    high: float | None

    @property
    def half_width(self) -> float | None:
        return None if self.low is None or self.high is None else (self.high - self.low) / 2.0

    def excludes_zero(self) -> bool:
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean and Student-t interval: mean +- t((1 + confidence) / 2, n - 1) x sd / sqrt(n)."""
    n = len(values)
    if n == 0:
        return Interval(0, None, None, None)
    mean = math.fsum(values) / n
    if n < 2:
        return Interval(1, mean, None, None)
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    half = t_quantile((1.0 + confidence) / 2.0, n - 1) * math.sqrt(variance / n)
    return Interval(n, mean, mean - half, mean + half)


@dataclass(frozen=True)
class PairedDifference:
    """policy - baseline over the seeds where both have a value; relative (ratio of means) in percent."""

    differences: tuple[float, ...]
    absolute: Interval
    relative_percent: Interval | None  # None when the baseline's mean is 0
    significant: bool | None  # None with fewer than 2 pairs

    @property
    def direction(self) -> int:
        """-1 lower than the baseline, +1 higher, 0 equal (sign of the mean difference)."""
        mean = self.absolute.mean or 0.0
        return (mean > 0) - (mean < 0)


def paired_difference(policy: Sequence[float | None], baseline: Sequence[float | None],
                      confidence: float = 0.95) -> PairedDifference:
    """Seed-by-seed differences and relative changes, each with its t-interval (see the module doc)."""
    pairs = [(p, b) for p, b in zip(policy, baseline, strict=True) if p is not None and b is not None]
    diffs = tuple(p - b for p, b in pairs)
    absolute = mean_interval(diffs, confidence)
    relative: Interval | None = None
    base_mean = math.fsum(b for _, b in pairs) / len(pairs) if pairs else 0.0
    if base_mean != 0 and absolute.mean is not None:
        ratio = absolute.mean / base_mean
        if len(pairs) < 2:
            relative = Interval(1, 100.0 * ratio, None, None)
        else:
            # Linearised ratio estimator: the spread of d_i - r x b_i, scaled by the baseline's mean.
            spread = mean_interval([(d - ratio * b) / base_mean for d, (_, b) in zip(diffs, pairs, strict=True)],
                                   confidence)
            half = (spread.half_width or 0.0) * 100.0
            relative = Interval(len(pairs), 100.0 * ratio, 100.0 * ratio - half, 100.0 * ratio + half)
    significant: bool | None = None
    if len(pairs) >= 2:
        significant = absolute.excludes_zero() and (relative is None or relative.excludes_zero())
    return PairedDifference(diffs, absolute, relative, significant)


# ---------------------------------------------------------------------------------------- summaries
def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _interval_json(interval: Interval) -> dict[str, Any]:
    return {"n": interval.n, "mean": _rounded(interval.mean), "ci95_low": _rounded(interval.low),
            "ci95_high": _rounded(interval.high)}


def metric_key(label: str) -> str:
    """A JSON key from a table label: `wait mean (h)` -> `wait_mean_h`, `>64 GPUs` -> `gt64_gpus`."""
    text = label.lower().replace(">", "gt").replace("<", "lt")
    return "_".join(part for part in "".join(ch if ch.isalnum() else " " for ch in text).split())


def assessment(diff: PairedDifference, better: str | None) -> str | None:
    """`better`, `worse`, `changed` (no better direction), `not significant`, or None (fewer than 2 seeds)."""
    if diff.significant is None:
        return None
    if not diff.significant:
        return "not significant"
    if better is None:
        return "changed"
    lower = diff.direction < 0
    return "better" if lower == (better == LOWER) else "worse"


def summarise(policies: Sequence[str], baseline: str,
              tables: Sequence[Sequence[tuple[str, Sequence[Any]]]],
              better: Mapping[str, str | None], confidence: float = 0.95) -> list[dict[str, Any]]:
    """Per table row (label, one value per policy) over the replicates' tables: per policy the values and
    their mean interval, per non-baseline policy the paired difference against the baseline."""
    labels: list[str] = []
    for table in tables:
        labels += [label for label, _ in table if label not in labels]
    base = list(policies).index(baseline)
    out: list[dict[str, Any]] = []
    for label in labels:
        per_seed: list[list[float | None]] = []  # per replicate, one value per policy
        for table in tables:
            row = dict(table).get(label)
            values = list(row) if row is not None else [None] * len(policies)
            per_seed.append([float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None
                             for v in values])
        integer = all(all(isinstance(v, int) and not isinstance(v, bool) for v in dict(t).get(label, [0]))
                      for t in tables)
        entry: dict[str, Any] = {"key": metric_key(label), "label": label, "better": better.get(label),
                                 "integer": integer, "policies": {}, "differences": {}}
        base_values = [seed[base] for seed in per_seed]
        for k, name in enumerate(policies):
            values = [seed[k] for seed in per_seed]
            present = [v for v in values if v is not None]
            entry["policies"][name] = {"values": [_rounded(v) for v in values],
                                       **_interval_json(mean_interval(present, confidence))}
            if k == base:
                continue
            diff = paired_difference(values, base_values, confidence)
            rel = diff.relative_percent
            entry["differences"][name] = {
                "values": [_rounded(d) for d in diff.differences],
                **_interval_json(diff.absolute),
                "relative_percent": _interval_json(rel) if rel is not None else None,
                "significant": diff.significant,
                "assessment": assessment(diff, better.get(label)),
            }
        out.append(entry)
    return out


def _amount(diff: dict[str, Any], unit: str) -> str:
    """`6.1% ± 1.8%` (relative) or `0.12 h ± 0.05 h` (absolute, when the baseline's mean is 0)."""
    rel = diff["relative_percent"]
    if rel is not None and rel["mean"] is not None:
        half = (rel["ci95_high"] - rel["ci95_low"]) / 2 if rel["ci95_low"] is not None else None
        return _percent(abs(rel["mean"])) + (f" ± {_percent(half)}" if half is not None else "")
    half = (diff["ci95_high"] - diff["ci95_low"]) / 2 if diff["ci95_low"] is not None else None
    text = f"{abs(diff['mean']):.3g}{unit}"
    return text + (f" ± {half:.3g}{unit}" if half is not None else "")


def _percent(value: float) -> str:
    """One decimal, or two significant digits below 0.1% (so a tiny change does not read as 0.0%)."""
    return f"{value:.1f}%" if value >= 0.1 or value == 0 else f"{value:.2g}%"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def verdict(policy: str, baseline: str, metrics: Sequence[dict[str, Any]], headline: Mapping[str, str],
            seeds: int, confidence: float = 0.95) -> str:
    """One sentence: the significant wins and losses on the headline metrics (label -> name in the
    sentence, in that order), then the ones not significantly different. With one seed: the changes,
    said to be unjudged."""
    by_label = {m["label"]: m for m in metrics}
    better_parts: list[str] = []
    worse_parts: list[str] = []
    changed_parts: list[str] = []
    unclear: list[str] = []
    level = f"{confidence * 100:g}% CI, {seeds} seed{'s' if seeds != 1 else ''}"
    for label, name in headline.items():
        metric = by_label.get(label)
        diff = metric["differences"].get(policy) if metric else None
        if diff is None or diff["mean"] is None:
            continue
        unit = " h" if label.endswith("(h)") else ""
        verb = "lowers" if diff["mean"] < 0 else "raises"
        phrase = f"{verb} {name} by {_amount(diff, unit)}"
        state = diff["assessment"]
        if state is None:  # one seed: no interval
            changed_parts.append(phrase if diff["mean"] != 0 else f"leaves {name} unchanged")
        elif state == "better":
            better_parts.append(phrase)
        elif state == "worse":
            worse_parts.append(phrase)
        elif state == "changed":
            changed_parts.append(phrase)
        else:
            unclear.append(name)
    if seeds < 2:
        said = "; ".join(changed_parts) if changed_parts else "changes nothing on the headline metrics"
        return (f"{policy}, against {baseline} (one seed: no confidence interval, so no difference can be called "
                f"significant; run --seeds 10 or more), {said}.")
    clauses: list[str] = []
    if better_parts:
        clauses.append(f"{_join(better_parts)} (better)")
    if worse_parts:
        clauses.append(f"{_join(worse_parts)} (worse)")
    if changed_parts:
        clauses.append(_join(changed_parts))
    if unclear:
        clauses.append("not significantly different: " + ", ".join(unclear))
    if not better_parts and not worse_parts and not changed_parts:
        return (f"{policy}, against {baseline} ({level}), is not significantly different on any headline metric "
                f"({', '.join(unclear) or 'none measured'}).")
    return f"{policy}, against {baseline} ({level}), " + "; ".join(clauses) + "."
