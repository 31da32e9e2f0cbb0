"""Scoring: the Evaluator (common-random-number runs, the encode cache, one-step return MAE) in `evaluation`, and the
statistics that compare configs on those errors (paired Diebold-Mariano/HLN test, Hansen's SPA) in `evidence`.

Imports: the base modules, `data` and `models`.
"""
