"""What Optuna runs inside one study: the search space (`space`), seeded samplers and the pruner (`sampling`), the
trial function (`objective`) and the loop to the target with its stop rules (`runloop`).

Imports: the base modules, `data`, `models`, `scoring` and `storages`.
"""
