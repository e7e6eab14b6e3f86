"""The format registry: one list that `--layout auto` walks, that names `--layout`'s choices, and that a new
format joins by being listed."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from crossrank.cli import build_parser
from crossrank.export import formats
from crossrank.export.formats.base import Checkpoint, Format, Prepared


def _checkpoint(architectures: list[str], **config: Any) -> Checkpoint:
    return Checkpoint(path=Path("."), config=SimpleNamespace(architectures=architectures, **config),
                      tokenizer=SimpleNamespace(chat_template=None), options=SimpleNamespace(source="m"))  # type: ignore[arg-type]


def test_layout_choices_are_the_registry() -> None:
    names = [f.name for f in formats.FORMATS if f.name != "refused"]
    assert len(set(names)) == len(names) and formats.LAYOUTS == ("auto", *names)
    layout = next(a for a in build_parser()._subparsers._group_actions[0].choices["export"]._actions  # type: ignore[union-attr]
                  if a.dest == "layout")
    assert tuple(layout.choices) == formats.LAYOUTS


@pytest.mark.parametrize(("architectures", "config", "expected"), [
    (["BertForSequenceClassification"], {}, "sequence-classification"),
    (["JinaBertForSequenceClassification"], {}, "jina-bert"),
    (["BertForSequenceClassification"], {"position_embedding_type": "alibi"}, "jina-bert"),
    (["LayerWiseMiniCPMForCausalLM"], {"model_type": "minicpm"}, "minicpm-layerwise"),
    (["Gemma2ForCausalLM"], {"model_type": "gemma2"}, "bge-gemma"),
])
def test_auto_tells_each_format_from_its_checkpoint(architectures: list[str], config: dict[str, str],
                                                    expected: str) -> None:
    assert formats.choose("auto", _checkpoint(architectures, **config)).name == expected


def test_a_format_named_for_the_wrong_kind_of_checkpoint_is_refused_by_name() -> None:
    with pytest.raises(formats.LayoutError, match=r"causal LM.*qwen3-reranker"):
        formats.choose("qwen3-reranker", _checkpoint(["BertForSequenceClassification"]))
    with pytest.raises(formats.LayoutError, match="--layout"):
        formats.choose("auto", _checkpoint(["Qwen3ForCausalLM"], model_type="qwen3"))
    with pytest.raises(formats.LayoutError, match="must be one of"):
        formats.get("no-such-format")


def test_a_new_format_is_one_listed_module(monkeypatch: pytest.MonkeyPatch) -> None:
    class Toy(Format):
        name = "toy"
        summary = "a toy"

        def recognises(self, checkpoint: Checkpoint) -> bool:
            return "ToyForSequenceClassification" in checkpoint.architectures

        def prepare(self, checkpoint: Checkpoint) -> Prepared:
            raise NotImplementedError

    toy = Toy()
    monkeypatch.setattr(formats, "FORMATS", (toy, *formats.FORMATS))
    assert formats.choose("auto", _checkpoint(["ToyForSequenceClassification"])) is toy
    assert formats.get("toy") is toy
    assert formats.choose("auto", _checkpoint(["BertForSequenceClassification"])).name == "sequence-classification"


@pytest.mark.parametrize(("architectures", "config", "model"), [
    (["CostWiseGemmaForCausalLM"], {"model_type": "cost_wise_gemma"}, "bge-reranker-v2.5-gemma2-lightweight"),
    (["NewForSequenceClassification"], {"model_type": "new"}, "gte-multilingual-reranker-base"),
    (["XLMRobertaForSequenceClassification"], {"auto_map": {
        "AutoConfig": "jinaai/xlm-roberta-flash-implementation--configuration_xlm_roberta.XLMRobertaFlashConfig"}},
     "jina-reranker-v2-base-multilingual"),
])
def test_models_beyond_the_formats_are_refused_by_name(architectures: list[str], config: dict[str, Any],
                                                       model: str) -> None:
    from crossrank.export.options import ExportError

    checkpoint = _checkpoint(architectures, **config)
    for layout in ("auto", "sequence-classification" if "ForSequence" in architectures[0] else "bge-gemma"):
        chosen = formats.choose(layout, checkpoint)
        with pytest.raises(ExportError, match=f"a .*{model} checkpoint, which crossrank does not serve: .+instead"):
            chosen.prepare(checkpoint)
