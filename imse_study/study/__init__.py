"""The paper's study: its experiments (Tables 2-5, Figure 8, the robustness diagnostic), their figures,
the claims page and the runner that executes the notebooks and builds the book.

The engine (every other room of :mod:`imse_study`) never imports this package.
"""

from imse_study.study.papermill_output import adopt_papermill_command as _adopt_papermill_command

_adopt_papermill_command()  # a kernel that the papermill command runs: its terminal shows progress, its notebook names the checkout
