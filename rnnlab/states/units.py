"""Interpretable units: which unit follows which feature of the text, and where units fire together.

The correlation of unit j of signal s in layer l with feature f is Pearson's

    r = Σ_t (a_t − ā)(f_t − f̄) / sqrt(Σ_t (a_t − ā)² · Σ_t (f_t − f̄)²)

over the recording's steps, a_t = the unit's activation after reading token t (Karpathy et al.
2016 look for cells like these: quotes, line length, brackets). A unit or a feature that is
constant over the text has no correlation and gets no row.

`units_on` and `matches` are LSTMVis's selection and match (Strobelt et al. 2018): the units
whose activation stays above a threshold throughout a span, and the other spans of the text
where all of them are above it again.
"""

from __future__ import annotations

import numpy as np

from rnnlab.states.record import Recording


def correlations(activations: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Pearson's r of each column of activations [T, H] with each column of features [T, F]
    (or one feature [T]): [H, F] (or [H]); NaN where a column is constant."""
    a = np.asarray(activations, dtype=np.float64)
    f = np.asarray(features, dtype=np.float64)
    one = f.ndim == 1
    f = f[:, None] if one else f
    a = a - a.mean(axis=0)
    f = f - f.mean(axis=0)
    norms = np.sqrt(np.outer((a * a).sum(axis=0), (f * f).sum(axis=0)))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(norms > 1e-12, (a.T @ f) / norms, np.nan)
    return r[:, 0] if one else r


def unit_feature_table(rec: Recording, features: dict[str, np.ndarray]) -> list[dict]:
    """One row per feature, layer, signal and unit: {"feature", "layer", "signal", "unit", "r"}
    (layers from 0; units without a correlation, constant ones, are left out; so is a feature
    constant over the text)."""
    names = []
    for name, feature in features.items():
        if np.shape(feature) != (len(rec),):
            raise ValueError(f"feature {name} has shape {np.shape(feature)}, the recording {len(rec)} steps")
        if np.ptp(feature) > 0:
            names.append(name)
    if not names:
        return []
    matrix = np.stack([np.asarray(features[name], dtype=np.float64) for name in names], axis=1)  # [T, F]
    rows = []
    for l, signals in enumerate(rec.layers):
        for signal, values in signals.items():
            r = correlations(values, matrix)  # [H, F]
            for k, name in enumerate(names):
                rows.extend({"feature": name, "layer": l, "signal": signal, "unit": int(j), "r": float(r[j, k])}
                            for j in np.flatnonzero(np.isfinite(r[:, k])))
    order = {name: k for k, name in enumerate(names)}
    return sorted(rows, key=lambda row: order[row["feature"]])  # feature by feature, as features lists them


def strongest_units(table: list[dict], per_feature: int = 3) -> dict[str, list[dict]]:
    """For each feature of the table, its `per_feature` rows of largest |r| (either sign), strongest first."""
    by_feature: dict[str, list[dict]] = {}
    for row in table:
        by_feature.setdefault(row["feature"], []).append(row)
    return {name: sorted(rows, key=lambda row: -abs(row["r"]))[:per_feature] for name, rows in by_feature.items()}


def context(rec: Recording, position: int, before: int = 20, after: int = 5) -> str:
    """The tokens around `position` as text, the token itself in [brackets]."""
    join = "" if rec.level == "char" else " "
    left = join.join(rec.tokens[max(0, position - before) : position])
    right = join.join(rec.tokens[position + 1 : position + 1 + after])
    return f"{left}{join}[{rec.tokens[position]}]{join}{right}" if join else f"{left}[{rec.tokens[position]}]{right}"


def top_contexts(rec: Recording, layer: int, signal: str, unit: int, k: int = 5, sign: int = 1,
                 before: int = 20, after: int = 5) -> list[dict]:
    """The k positions where the unit's activation is highest (sign=-1: lowest), each as
    {"position", "value", "context"} (`context`)."""
    values = rec.layers[layer][signal][:, unit]
    order = np.argsort(-sign * values, kind="stable")[:k]
    return [{"position": int(t), "value": float(values[t]), "context": context(rec, int(t), before, after)}
            for t in order]


def units_on(rec: Recording, layer: int, signal: str, start: int, end: int, threshold: float = 0.5) -> list[int]:
    """The units whose activation is above `threshold` at every position of [start, end)."""
    values = rec.layers[layer][signal]
    if not 0 <= start < end <= len(values):
        raise ValueError(f"need 0 <= start < end <= {len(values)}, got [{start}, {end})")
    return [int(j) for j in np.flatnonzero((values[start:end] > threshold).all(axis=0))]


def matches(rec: Recording, layer: int, signal: str, units: list[int], threshold: float = 0.5,
            min_len: int = 2) -> list[tuple[int, int]]:
    """Every maximal span [start, end) of at least `min_len` positions where all `units` are above
    `threshold` (the selection's own span among them), in text order. No units: no span."""
    if not len(units):
        return []
    on = (rec.layers[layer][signal][:, list(units)] > threshold).all(axis=1)
    edges = np.diff(np.concatenate([[0], on.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(s), int(e)) for s, e in zip(starts, ends) if e - s >= min_len]
