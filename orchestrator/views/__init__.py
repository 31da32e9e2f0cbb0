"""What only shows things: one row per study (`summary`), the static HTML report (`report`), optuna-dashboard and the
notes it shows (`dashboard`), and the live progress line (`progress`).

Imports: every lower package, up to `lifecycle`.
"""
