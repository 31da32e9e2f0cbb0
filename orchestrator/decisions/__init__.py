"""Decisions and their later checks: the commit protocol (`commit`), committed configs and the history on disk
(`records`), past decisions scored on later bars (`scorecard`), logged forecasts scored on the bars that came
(`forecast_scores`), families compared on held-out bars (`leaderboard`) and the champions file trading code reads
(`champions`).

Imports: the base modules, `data`, `models`, `scoring` and `storages`.
"""
