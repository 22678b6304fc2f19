"""What a page section writes into: markup, numbered figures, notes and stage timings."""

from __future__ import annotations

import html
import re
import time
from typing import Any

from search.dashboard._style import BEST_SEARCHED, Colors
from search.results import ResultsTree


class PageBuilder:
    """The results a page is drawn from, and the page so far.

    Every plotly figure gets a numbered, named container (tests and the browser check count
    them); :meth:`lap` books the time since the previous lap under a stage name.
    """

    def __init__(self, tree: ResultsTree) -> None:
        self.tree = tree
        self.parts: list[str] = []
        self.figure_names: list[str] = []
        self.notes: list[str] = list(tree.notes)
        self.timings_s: dict[str, float] = {}
        self._clock = time.perf_counter()
        self.colors = Colors()
        for (
            study
        ) in tree.studies:  # fix each study's colour in study order, whatever figure comes first
            self.colors.register(study.name, study.label, BEST_SEARCHED + study.name)

    def add(self, markup: str) -> None:
        self.parts.append(markup)

    def figure(self, name: str, fig: Any) -> None:
        import plotly.io as pio

        index = len(self.figure_names)
        self.figure_names.append(name)
        div = pio.to_html(
            fig,
            include_plotlyjs=False,  # plotly.js is embedded once, in <head>
            full_html=False,
            div_id=f"figure-{index}-{_slug(name)}",
            config={"responsive": True, "displaylogo": False},
        )
        self.add(f'<div class="figure" data-figure="{html.escape(name)}">{div}</div>')

    def empty(self, message: str) -> None:
        self.add(f'<p class="empty">{html.escape(message)}</p>')

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings_s[stage] = self.timings_s.get(stage, 0.0) + now - self._clock
        self._clock = now


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "figure"
