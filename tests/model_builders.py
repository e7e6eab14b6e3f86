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


def rerank_requests(count: int, documents: int, seed: int) -> list[tuple[str, list[str]]]:
    """MS MARCO-like rerank requests: (query of 8-12 words, passages of 40-70 words) from plain English words."""
    rng = random.Random(seed)
    english = ("the of and to in is was for on with as by at from that this which city river country year "
               "people music film book school water history government company market science health").split()

    def text(low: int, high: int) -> str:
        return " ".join(rng.choices(english, k=rng.randint(low, high)))

    return [(text(8, 12) + "?", [text(40, 70).capitalize() + "." for _ in range(documents)]) for _ in range(count)]


FAMILIES = ("bert", "electra", "distilbert", "roberta", "xlm-roberta", "deberta", "deberta-v2", "modernbert")


def _byte_level_bpe(special: list[str]):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus(), trainers.BpeTrainer(vocab_size=400, special_tokens=special,
                                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return tok


def _unigram(special: list[str]):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(corpus(), trainers.UnigramTrainer(vocab_size=300, special_tokens=special,
                                                              unk_token="<unk>"))
    return tok


def tiny_family(family: str, directory: Path, num_labels: int = 1) -> Path:
    """A tiny random sequence classifier of `family` with a tokenizer of that family's kind trained here:
    WordPiece (BERT, ELECTRA, DistilBERT, DeBERTa, ModernBERT here), byte-level BPE (RoBERTa),
    SentencePiece-style Unigram (XLM-RoBERTa, DeBERTa-v2/v3)."""
    import torch
    import transformers as tf
    from tokenizers import processors

    if (directory / "config.json").exists():
        return directory
    if family == "bert":
        return tiny_bert(directory, num_labels=num_labels)
    torch.manual_seed(3)
    small = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
             "max_position_embeddings": 130, "num_labels": num_labels}
    wordpiece = tiny_bert(directory.with_name(directory.name + "-wordpiece"))
    if family == "roberta":
        tok = _byte_level_bpe(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
        tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")),
                                                          ("<s>", tok.token_to_id("<s>")))
        fast = tf.RobertaTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                       cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
                                       model_max_length=64)
        model = tf.RobertaForSequenceClassification(tf.RobertaConfig(vocab_size=tok.get_vocab_size(),
                                                                     pad_token_id=1, **small))
    elif family in ("xlm-roberta", "deberta-v2"):
        special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"] if family == "xlm-roberta" else \
            ["[PAD]", "[CLS]", "[SEP]", "<unk>", "[MASK]"]
        tok = _unigram(special)
        if family == "xlm-roberta":
            tok.post_processor = processors.TemplateProcessing(
                single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))])
            fast = tf.XLMRobertaTokenizerFast(tokenizer_object=tok, model_max_length=64)
            model = tf.XLMRobertaForSequenceClassification(tf.XLMRobertaConfig(
                vocab_size=tok.get_vocab_size(), pad_token_id=1, **small))
        else:
            tok.post_processor = processors.TemplateProcessing(
                single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
            fast = tf.DebertaV2TokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="[PAD]",
                                             cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                             model_max_length=64)
            model = tf.DebertaV2ForSequenceClassification(tf.DebertaV2Config(
                vocab_size=tok.get_vocab_size(), pad_token_id=0, relative_attention=True, position_buckets=32,
                pos_att_type=["p2c", "c2p"], position_biased_input=False, **small))
    else:
        fast = tf.BertTokenizerFast.from_pretrained(wordpiece)
        vocab = fast.vocab_size
        if family == "electra":
            model = tf.ElectraForSequenceClassification(tf.ElectraConfig(vocab_size=vocab, embedding_size=32,
                                                                         **small))
        elif family == "distilbert":
            fast = tf.DistilBertTokenizerFast.from_pretrained(wordpiece)
            model = tf.DistilBertForSequenceClassification(tf.DistilBertConfig(
                vocab_size=vocab, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=130,
                num_labels=num_labels))
        elif family == "deberta":
            model = tf.DebertaForSequenceClassification(tf.DebertaConfig(
                vocab_size=vocab, relative_attention=True, pos_att_type=["p2c", "c2p"], **small))
        elif family == "modernbert":
            fast.model_input_names = ["input_ids", "attention_mask"]
            model = tf.ModernBertForSequenceClassification(tf.ModernBertConfig(
                vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                max_position_embeddings=130, num_labels=num_labels, pad_token_id=fast.pad_token_id,
                global_attn_every_n_layers=1, local_attention=32))
        else:
            raise ValueError(f"unknown family {family}")
    model.eval().save_pretrained(directory)
    fast.save_pretrained(directory)
    return directory


CUSTOM_CONFIG = '''from transformers import BertConfig


class TinyRerankerConfig(BertConfig):
    model_type = "tiny-reranker"
'''

CUSTOM_MODEL = '''from transformers import BertForSequenceClassification

from .configuration_tiny_reranker import TinyRerankerConfig


class TinyRerankerForSequenceClassification(BertForSequenceClassification):
    """Custom code shipped with the model (as jina-reranker does): a BERT whose logits are doubled."""

    config_class = TinyRerankerConfig

    def forward(self, *args, **kwargs):
        output = super().forward(*args, **kwargs)
        output.logits = output.logits * 2
        return output
'''


def tiny_custom_code(directory: Path) -> Path:
    """A model whose architecture lives in Python files beside its weights (needs trust_remote_code)."""
    import json

    if (directory / "config.json").exists():
        return directory
    tiny_bert(directory, seed=9)
    (directory / "configuration_tiny_reranker.py").write_text(CUSTOM_CONFIG)
    (directory / "modeling_tiny_reranker.py").write_text(CUSTOM_MODEL)
    config = json.loads((directory / "config.json").read_text())
    config["model_type"] = "tiny-reranker"
    config["architectures"] = ["TinyRerankerForSequenceClassification"]
    config["auto_map"] = {
        "AutoConfig": "configuration_tiny_reranker.TinyRerankerConfig",
        "AutoModelForSequenceClassification": "modeling_tiny_reranker.TinyRerankerForSequenceClassification",
    }
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def tiny_gemma(directory: Path) -> Path:
    """A 2-layer random Gemma causal LM with a SentencePiece-style BPE tokenizer trained here (<bos> added,
    "Yes" and the bge-reranker-v2-gemma prompt words in its vocabulary): the shape of BAAI/bge-reranker-v2-gemma."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GemmaConfig, GemmaForCausalLM, GemmaTokenizerFast

    from crossrank.triton_models.pair_tokenizer import DEFAULT_LLM_PROMPT

    if (directory / "config.json").exists():
        return directory
    special = ["<pad>", "<eos>", "<bos>", "<unk>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    text = [*corpus(), DEFAULT_LLM_PROMPT, "Yes No A: B:\n", "\n"]
    tok.train_from_iterator(text, trainers.BpeTrainer(vocab_size=400, special_tokens=special))
    fast = GemmaTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                              unk_token="<unk>", add_bos_token=True, add_eos_token=False)
    torch.manual_seed(13)
    config = GemmaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                         max_position_embeddings=1024, pad_token_id=0, eos_token_id=1, bos_token_id=2)
    GemmaForCausalLM(config).eval().save_pretrained(directory)
    fast.save_pretrained(directory)
    return directory


QWEN3_RERANKER_TEMPLATE = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    "provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n<|im_start|>user\n"
    "<Instruct>: Given a web search query, retrieve relevant passages that answer the query\n"
    "<Query>: {{ messages | selectattr(\"role\", \"eq\", \"query\") | map(attribute=\"content\") | first }}\n"
    "<Document>: {{ messages | selectattr(\"role\", \"eq\", \"document\") | map(attribute=\"content\") | first }}"
    "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")


def _qwen_tokenizer(chat_template: str | None):  # type: ignore[no-untyped-def]
    """A byte-level BPE trained here with Qwen's chat special tokens ("yes", "no", "1", "0" are single tokens)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    text = [*corpus(), QWEN3_RERANKER_TEMPLATE, "yes no 1 0 true false"]
    tok.train_from_iterator(text, trainers.BpeTrainer(vocab_size=500, special_tokens=special,
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   chat_template=chat_template, model_max_length=131072)


def tiny_mxbai_rerank_v2(directory: Path) -> Path:
    """A 2-layer random Qwen2 causal LM with a byte-level BPE trained here, no chat template: the shape of a raw
    mxbai-rerank-v2 checkpoint (scored by the "1" and "0" logits)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if (directory / "config.json").exists():
        return directory
    fast = _qwen_tokenizer(None)
    torch.manual_seed(23)
    config = Qwen2Config(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                         tie_word_embeddings=True, pad_token_id=0)
    Qwen2ForCausalLM(config).eval().save_pretrained(directory)
    fast.save_pretrained(directory)
    return directory


def tiny_qwen3_reranker(directory: Path, chat_template: str | None = QWEN3_RERANKER_TEMPLATE,
                        true_false: tuple[str, str] | None = None, hidden: int = 32, layers: int = 2) -> Path:
    """A 2-layer random Qwen3 causal LM with a byte-level BPE tokenizer trained here: the shape of
    Qwen3-Reranker as sentence-transformers loads it (a chat template with `query` and `document` roles, "yes"
    and "no" in the vocabulary). `true_false` saves it through sentence-transformers with a LogitScore on those
    tokens instead; `chat_template=None` leaves it without a template (a causal LM of unknown layout)."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    if (directory / "config.json").exists():
        return directory
    fast = _qwen_tokenizer(chat_template)
    torch.manual_seed(17)
    config = Qwen3Config(vocab_size=len(fast), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=1, head_dim=hidden // 2,
                         max_position_embeddings=4096,
                         tie_word_embeddings=True, pad_token_id=0)
    model = Qwen3ForCausalLM(config).eval()
    if true_false is None:
        model.save_pretrained(directory)
        fast.save_pretrained(directory)
        return directory
    from sentence_transformers import CrossEncoder

    staging = directory.with_name(directory.name + "-hf")
    model.save_pretrained(staging)
    fast.save_pretrained(staging)
    encoder = CrossEncoder(str(staging), device="cpu")
    scorer = next(m for m in encoder if type(m).__name__ == "LogitScore")
    scorer.true_token_id, scorer.false_token_id = (fast.convert_tokens_to_ids(t) for t in true_false)
    encoder.save(str(directory))
    return directory
