"""One self-contained HTML page comparing baselines and searched models.

``python -m search.dashboard`` writes ``results/dashboard.html``; from Python::

    from search.dashboard import write_dashboard
    path, dashboard = write_dashboard(results="results")

What lives here (optuna's ``visualization/`` layout: one module per figure):

- ``_leaderboard``, ``_tradeoff``, ``_front``, ``_history``, ``_rungs``, ``_confusion``,
  ``_per_class``, ``_learning_curves``, ``_param_importance``: one figure (or figure group) each, with its pure
  ``_get_<figure>_info`` (plain data, unit-testable without a browser), its ``plot_<figure>``
  and its ``section(page)``. plotly and optuna are imported only inside functions, when a page
  is drawn.
- ``_optuna_study``: a study as an ``optuna.Study`` (loaded from its storage or rebuilt from
  the table) for the parameter figures.
- ``_style``: what the figures share (colours, labels, reference-mark lines, axis ranges);
  ``_builder``: what a section writes into; ``_page``: the list of sections, the HTML
  document and the localhost server. Adding a figure = one module + one entry in
  ``_page.SECTIONS``.

Results are read, and the best model chosen, by :mod:`search.results` (``load_results``,
``best_trial``, ``best_model``, ``REFERENCE_MODELS``); this package only draws. It may import
``search.results`` and nothing else of the project; nothing in the project imports it (the
CLI, tests and ``bench/dashboard_bench.py`` only), so it can never sit in an import cycle.
"""

from search.dashboard._page import Dashboard, render_dashboard, serve_dashboard, write_dashboard
from search.results import ResultsTree, load_results

__all__ = [
    "Dashboard",
    "ResultsTree",
    "load_results",
    "render_dashboard",
    "serve_dashboard",
    "write_dashboard",
]
