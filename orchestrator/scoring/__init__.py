"""Scoring: the Evaluator (common-random-number runs, the encode cache, one-step return MAE) in `evaluation`; the
statistics that compare configs on those errors (paired Diebold-Mariano/HLN test, Hansen's SPA) in `evidence`; what
the spread is worth (CRPS, interval coverage, the naive interval) in `probabilistic`.

Imports: the base modules, `data` and `models`.
"""
