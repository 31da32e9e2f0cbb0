"""Forecasters: the contract and registry (`base`), the aggregation rules models and scoring share (`aggregate`),
and one module per model family implementing `orchestrator.models.base.Forecaster`.

Imports: the base modules and `data`.
"""
