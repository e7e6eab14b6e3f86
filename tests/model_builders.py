"""Builds model directories for tests: a tiny random BERT cross-encoder with a WordPiece tokenizer trained
here, and the MiniLM-L-6 stand-in (genuine all-MiniLM-L6-v2 backbone, seeded head). The hub is out of
reach, so these replace published cross-encoders; each directory loads in transformers and
sentence-transformers exactly like a downloaded one."""

from __future__ import annotations

import random
from pathlib import Path

WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau "
         "upsilon phi chi psi omega search rank query passage document answer paris france river city").split()


def corpus(lines: int = 400, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(3, 30))) for _ in range(lines)]


def tiny_bert(directory: Path, num_labels: int = 1, max_length: int = 64, seed: int = 0) -> Path:
    """A 2-layer BERT sequence classifier with a freshly trained uncased WordPiece tokenizer."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    if (directory / "config.json").exists():
        return directory
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(corpus(), trainers.WordPieceTrainer(vocab_size=300, special_tokens=special))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    fast = BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
                             cls_token="[CLS]", mask_token="[MASK]", model_max_length=max_length)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                        num_labels=num_labels)
    if num_labels == 3:
        config.id2label = {0: "contradiction", 1: "entailment", 2: "neutral"}
        config.label2id = {v: k for k, v in config.id2label.items()}
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(directory)
    fast.save_pretrained(directory)
    return directory


def minilm_standin(directory: Path) -> Path:
    """The offline demo model: the MiniLM-L-6 reranker's shape with the genuine backbone."""
    from crossrank.export.source import build_demo_model

    return build_demo_model(directory)


def pairs_with_long_documents(count: int = 60, seed: int = 11, long_words: int = 700) -> list[tuple[str, str]]:
    """(query, document) pairs; every fifth document is longer than any test model's max length."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        query = " ".join(rng.choices(WORDS, k=rng.randint(2, 8)))
        words = long_words if i % 5 == 4 else rng.randint(3, 40)
        out.append((query, " ".join(rng.choices(WORDS, k=words))))
    return out
