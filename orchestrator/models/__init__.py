"""Forecasters: one module per model family, all implementing `orchestrator.models.base.Forecaster`."""
