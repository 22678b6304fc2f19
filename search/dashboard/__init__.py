"""One self-contained HTML page comparing baselines and searched models.

``python -m search.dashboard`` writes ``results/dashboard.html``; from Python::

    from search.dashboard import write_dashboard
    path, dashboard = write_dashboard(results="results")

Figure data is computed by pure ``_get_<figure>_info`` functions in ``_info.py`` and drawn by
``_render.py``; plotly and optuna are imported only when a page is rendered.
"""

from search.dashboard._load import DashboardInputs, load_results
from search.dashboard._page import Dashboard, render_dashboard, serve_dashboard, write_dashboard

__all__ = [
    "Dashboard",
    "DashboardInputs",
    "load_results",
    "render_dashboard",
    "serve_dashboard",
    "write_dashboard",
]
