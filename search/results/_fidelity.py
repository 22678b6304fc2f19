"""Trust in the proxy: does a trial's score at a cheap rung predict its score at the top?

Multi-fidelity search (search.fidelity) promotes on low-rung scores. That only finds the
best configurations if the low rungs rank trials the way the top rung does, which no one can
assume for a given dataset and ladder. So every study with rungs reports, over the trials
that climbed to the top, the Spearman rank correlation between each rung's score and the top
rung's, and says so when a rung does not predict it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

# Below this rank correlation a rung's promotions are not much better than a coin's.
WEAK_CORRELATION = 0.5
# Fewer trials at the top than this cannot tell a rung's correlation from noise.
MIN_TRIALS_FOR_CORRELATION = 5


def rung_scores(record: Any) -> dict[int, float]:
    """``{rung: best validation accuracy in that rung}`` of one row (empty: no rungs)."""
    return {
        int(r["rung"]): float(r["val_accuracy"])
        for r in (getattr(record, "rungs", None) or [])
        if r.get("val_accuracy") is not None
    }


def lineage_scores(records: Iterable[Any]) -> list[dict[int, float]]:
    """:func:`rung_scores` per configuration's line of trials: a trial that continues another
    (``continued_from``: a late promotion, which climbs from the rung after the one its
    origin stopped at) joins its origin's scores, so each line counts once at each rung."""
    records = list(records)
    ids = [str(getattr(r, "trial_id", None)) for r in records]
    by_id = dict(zip(ids, records))
    absorbed, lines = set(), []
    for trial_id, record in zip(ids, records):
        line, origin = rung_scores(record), getattr(record, "continued_from", None)
        while origin is not None and str(origin) in by_id and str(origin) not in absorbed:
            absorbed.add(str(origin))
            line = {**rung_scores(by_id[str(origin)]), **line}
            origin = getattr(by_id[str(origin)], "continued_from", None)
        lines.append((trial_id, line))
    return [line for trial_id, line in lines if trial_id not in absorbed and line]


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman's rank correlation (ties averaged); None where it is undefined (fewer than
    three points, or one side constant)."""
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    from scipy.stats import spearmanr

    rho = float(spearmanr(x, y).statistic)
    return None if math.isnan(rho) else rho


def recorded_top_rung(study_meta: dict[str, Any]) -> int | None:
    """The top rung of the ladder a study's study.json records (None: it climbed none)."""
    ladder = ((study_meta.get("config") or {}).get("rungs") or {}).get("rungs")
    return len(ladder) - 1 if ladder else None


def rung_report(records: Iterable[Any], top: int | None = None) -> dict[str, Any] | None:
    """What a study's rungs did (None: no trial climbed rungs): ``reached`` (trials whose
    score was recorded at each rung), ``correlations`` (per rung below the top: ``rung``,
    ``n`` trials that reached the top, ``spearman`` with the top rung's score or None) and
    ``warnings`` (a rung that does not predict the top, or too few trials to tell). ``top``:
    the ladder's top rung (default: the highest any trial reached). A late promotion and
    the trial it continues count as one (:func:`lineage_scores`)."""
    scored = lineage_scores(records)
    if not scored:
        return None
    top = max(max(s) for s in scored) if top is None else int(top)
    reached = [sum(k in s for s in scored) for k in range(top + 1)]
    finished = [s for s in scored if top in s]
    correlations, warnings = [], []
    for k in range(top):
        pairs = [(s[k], s[top]) for s in finished if k in s]
        rho = spearman([a for a, _ in pairs], [b for _, b in pairs])
        correlations.append({"rung": k, "n": len(pairs), "spearman": rho})
        if len(pairs) < MIN_TRIALS_FOR_CORRELATION:
            warnings.append(
                f"rung {k}: only {len(pairs)} trial(s) reached the top rung, too few to "
                "tell whether this rung predicts it"
            )
        elif rho is None or rho < WEAK_CORRELATION:
            shown = "undefined" if rho is None else f"{rho:.2f}"
            warnings.append(
                f"rung {k} does not predict the top rung (Spearman {shown} over "
                f"{len(pairs)} trials): its promotions are close to chance; give it "
                "more epochs, data or pixels (--rungs)"
            )
    return {"reached": reached, "correlations": correlations, "warnings": warnings}
