"""The registry: every name resolves to a documented object, and the generated docs are up to date."""

from __future__ import annotations

import pytest

from multitask._docs import registry_markdown
from multitask.errors import ConfigError
from multitask.registry import ALL, METRICS
from tests.conftest import REPO


@pytest.mark.parametrize(("kind", "name"), [(k, n) for k, r in ALL.items() for n in r.names()])
def test_every_name_resolves_and_has_a_summary(kind: str, name: str) -> None:
    entry = ALL[kind].entry(name)
    assert entry.load() is not None
    assert entry.summary, f"{kind} {name!r} has no docstring summary"


@pytest.mark.parametrize("name", METRICS.names())
def test_every_metric_declares_its_direction(name: str) -> None:
    assert isinstance(METRICS.get(name).higher_is_better, bool)


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown sampling 'often'; choose one of: proportional, uniform"):
        ALL["sampling"].get("often")


def test_docs_registry_is_generated_from_the_registry() -> None:
    committed = (REPO / "docs" / "registry.md").read_text()
    assert committed == registry_markdown(), "docs/registry.md is stale: run python -m multitask._docs docs/registry.md"


def test_every_option_is_described() -> None:
    from multitask._docs import option_rows

    for rows in option_rows().values():
        for name, _, text in rows:
            assert text, f"option {name!r} has no description"


def test_flag_help_comes_from_the_option_descriptions(capsys: pytest.CaptureFixture[str]) -> None:
    from multitask.cli import main
    from multitask.train.config import TrainConfig

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert " ".join(str(TrainConfig.model_fields["patience"].description).split()) in help_text
