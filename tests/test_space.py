"""Search spaces: parsing, suggestions inside the distributions, conditional params, normalisation."""

from __future__ import annotations

from pathlib import Path

import optuna

from orchestrator.search.space import load_space

SPACE = """
[filter]
type = "categorical"
choices = ["top_p", "top_k"]
[top_p]              # only for filter = top_p
type = "float"
low = 0.5
high = 0.9
step = 0.1
when = { filter = "top_p" }
[top_k]
type = "int"
low = 0
high = 40
step = 10
when = { filter = ["top_k"] }
[n]
type = "int"
low = 16
high = 512
log = true
"""


def test_suggestions_respect_distributions_and_conditions(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(SPACE)
    space = load_space(path)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        params = space.suggest(trial)
        study.tell(trial, 0.0)
        seen.add(params["filter"])
        assert ("top_p" in params) == (params["filter"] == "top_p")
        assert ("top_k" in params) == (params["filter"] == "top_k")
        assert 16 <= params["n"] <= 512 and isinstance(params["n"], int)
        assert space.normalize(params) == params
    assert seen == {"top_p", "top_k"}


def test_normalize_rejects_points_outside_the_space_and_fixes_types(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(SPACE)
    space = load_space(path)
    assert space.normalize({"filter": "top_k", "top_k": 20.0, "n": 64}) == {"filter": "top_k", "top_k": 20, "n": 64}
    assert space.normalize({"filter": "top_k", "top_k": 25, "n": 64}) is None  # off the step grid
    assert space.normalize({"filter": "top_k", "top_k": 20, "top_p": 0.5, "n": 64}) is None  # inactive param
    assert space.normalize({"filter": "top_p", "n": 64}) is None  # missing active param
    assert space.normalize({"filter": "top_k", "top_k": 20, "n": 1024}) is None


def test_hash_ignores_comments_and_layout(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.toml", tmp_path / "b.toml", tmp_path / "c.toml"
    a.write_text(SPACE)
    b.write_text("# a comment\n" + SPACE.replace("# only for filter = top_p", ""))
    c.write_text(SPACE.replace("high = 512", "high = 256"))
    assert load_space(a).hash == load_space(b).hash != load_space(c).hash
