"""A study's life: naming, setup, resume and the work of one job (`study`); comparability, archives and the nightly
roll-forward (`lineage`). Named `lifecycle` so as not to be confused with the top-level `studies/` folder.

Imports: every lower package (base, `data`, `models`, `scoring`, `storages`, `search`, `decisions`).
"""
