"""Results: the common table every run writes, reading a whole results tree, and selection.

What lives here, and is public through this module only (the ``_`` modules are private):

- ``_table``      the trials table and the files beside it: :class:`TrialRecord`,
  :func:`append_trial`, :func:`read_trials`, :func:`read_table` (the good rows and the lines
  that could not be read: :class:`TrialTable`, :class:`UnreadableLine`),
  :func:`set_aside_unreadable`, :func:`describe_lines`, :func:`write_csv`, :func:`write_json`,
  :func:`read_json`, :func:`results_root`, :func:`study_dir`, :func:`environment_info`.
- ``_fidelity``   trust in the proxy: :func:`rung_report` (trials per rung, Spearman rank
  correlation of each rung's scores with the top rung's, warnings), :func:`rung_scores`.
- ``_front``      accuracy against cost (``latency_ms``, ``size_mb``, ``params``):
  :func:`pareto_front` (indices of ``(cost, accuracy)`` points), :func:`trial_front` (a study's
  front against one cost), :func:`non_dominated` (against all costs at once: the models a
  study keeps), :func:`within_limits` (ranked trials within bounds), :func:`front_summary`
  (best.json's ``front``), :data:`COST_FIELDS`.
- ``_tree``       a whole results folder as plain objects: :func:`load_results` gives a
  :class:`ResultsTree` of baselines and :class:`StudyResults`; :meth:`ResultsTree.models`
  lists every model it offers as a :class:`ModelResult`.
- ``_selection``  the one selection rule and the published claims: :func:`best_trial` (a
  study's best trial: highest validation accuracy among completed trials, ties to the earlier
  one), :func:`selected_trial` (the trial best.json names, else ``best_trial``),
  :func:`rank_models` / :func:`best_model` (across models, by validation accuracy; the test
  split only reports), :data:`REFERENCE_MODELS` (baseline name -> title and published
  accuracy), :func:`reference_title`, :func:`published_accuracy`, and :func:`standard_error` (every
  score is shown with its binomial standard error).

Who may import it: anything (engines, baselines, ``search.export``, ``search.dashboard``).
It imports nothing else of this project, so no import cycle can pass through it; plotly,
optuna and keras are never imported here (pandas only inside :func:`write_csv`).
"""

from search.results._fidelity import recorded_top_rung, rung_report, rung_scores, spearman
from search.results._front import (
    COST_FIELDS,
    front_summary,
    non_dominated,
    pareto_front,
    trial_front,
    within_limits,
)
from search.results._selection import (
    REFERENCE_MODELS,
    ReferenceModel,
    best_model,
    best_trial,
    completed_trials,
    is_number,
    is_tested,
    published_accuracy,
    rank_models,
    ranked_trials,
    reference_title,
    selected_trial,
    standard_error,
)
from search.results._table import (
    RESULTS_DIR_ENV,
    TRIAL_STATES,
    TrialRecord,
    TrialTable,
    UnreadableLine,
    append_trial,
    describe_lines,
    environment_info,
    read_json,
    read_table,
    read_trials,
    results_root,
    set_aside_unreadable,
    study_dir,
    write_csv,
    write_json,
)
from search.results._tree import ModelResult, ResultsTree, StudyResults, load_results

__all__ = [
    "COST_FIELDS",
    "front_summary",
    "non_dominated",
    "pareto_front",
    "trial_front",
    "within_limits",
    "REFERENCE_MODELS",
    "RESULTS_DIR_ENV",
    "TRIAL_STATES",
    "ModelResult",
    "ReferenceModel",
    "ResultsTree",
    "StudyResults",
    "TrialRecord",
    "TrialTable",
    "UnreadableLine",
    "append_trial",
    "best_model",
    "best_trial",
    "ranked_trials",
    "completed_trials",
    "describe_lines",
    "environment_info",
    "is_number",
    "is_tested",
    "load_results",
    "published_accuracy",
    "rank_models",
    "recorded_top_rung",
    "rung_report",
    "rung_scores",
    "read_json",
    "read_table",
    "read_trials",
    "reference_title",
    "results_root",
    "selected_trial",
    "spearman",
    "standard_error",
    "set_aside_unreadable",
    "study_dir",
    "write_csv",
    "write_json",
]
