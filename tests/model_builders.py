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


# JinaBERT (jinaai/jina-reranker-v1-tiny-en, -turbo-en): a BERT with ALiBi attention biases in place of position
# embeddings, a gated (GLU) feed-forward and post-layernorm layers, shipped as remote code
# (jinaai/jina-bert-implementation: configuration_bert.py, modeling_bert.py). The hub is out of reach, so these
# files are written here from that architecture; they are the reference the export is checked against.
JINA_BERT_CONFIG = '''from transformers import PretrainedConfig


class JinaBertConfig(PretrainedConfig):
    model_type = "bert"

    def __init__(self, vocab_size=30528, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                 max_position_embeddings=8192, type_vocab_size=2, initializer_range=0.02, layer_norm_eps=1e-12,
                 pad_token_id=0, position_embedding_type="alibi", use_cache=True, classifier_dropout=None,
                 feed_forward_type="geglu", emb_pooler=None, attn_implementation="torch", **kwargs):
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.hidden_act = hidden_act
        self.intermediate_size = intermediate_size
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.position_embedding_type = position_embedding_type
        self.use_cache = use_cache
        self.classifier_dropout = classifier_dropout
        self.feed_forward_type = feed_forward_type
        self.emb_pooler = emb_pooler
        self.attn_implementation = attn_implementation
'''

JINA_BERT_MODEL = '''import math

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPooling, SequenceClassifierOutput
from transformers.modeling_utils import PreTrainedModel

from .configuration_bert import JinaBertConfig


def _get_alibi_head_slopes(n_heads):
    def get_slopes_power_of_2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        ratio = start
        return [start * ratio**i for i in range(n)]

    if math.log2(n_heads).is_integer():
        return get_slopes_power_of_2(n_heads)
    closest_power_of_2 = 2 ** math.floor(math.log2(n_heads))
    return (get_slopes_power_of_2(closest_power_of_2)
            + _get_alibi_head_slopes(2 * closest_power_of_2)[0::2][: n_heads - closest_power_of_2])


class JinaBertEmbeddings(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        if config.position_embedding_type != "alibi":
            self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.position_embedding_type = config.position_embedding_type

    def forward(self, input_ids, token_type_ids=None):
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        embeddings = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        if self.position_embedding_type != "alibi":
            positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
            embeddings = embeddings + self.position_embeddings(positions)
        return self.dropout(self.LayerNorm(embeddings))


class JinaBertSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.attn_implementation = config.attn_implementation
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = int(config.hidden_size / config.num_attention_heads)
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.query = nn.Linear(config.hidden_size, self.all_head_size)
        self.key = nn.Linear(config.hidden_size, self.all_head_size)
        self.value = nn.Linear(config.hidden_size, self.all_head_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def transpose_for_scores(self, x):
        new_x_shape = x.size()[:-1] + (self.num_attention_heads, self.attention_head_size)
        return x.view(new_x_shape).permute(0, 2, 1, 3)

    def forward(self, hidden_states, attention_mask, bias):
        query_layer = self.transpose_for_scores(self.query(hidden_states))
        key_layer = self.transpose_for_scores(self.key(hidden_states))
        value_layer = self.transpose_for_scores(self.value(hidden_states))
        if self.attn_implementation == "torch":
            b, _, s, _ = query_layer.shape
            attn = torch.nn.functional.scaled_dot_product_attention(query_layer, key_layer, value_layer,
                                                                    attention_mask + bias)
            return attn.permute(0, 2, 1, 3).contiguous().view(b, s, self.all_head_size)
        attention_scores = torch.matmul(query_layer, key_layer.transpose(-1, -2))
        attention_scores = attention_scores / math.sqrt(self.attention_head_size)
        attention_scores = attention_scores + attention_mask + bias
        attention_probs = self.dropout(nn.functional.softmax(attention_scores, dim=-1))
        context_layer = torch.matmul(attention_probs, value_layer).permute(0, 2, 1, 3).contiguous()
        return context_layer.view(context_layer.size()[:-2] + (self.all_head_size,))


class JinaBertSelfOutput(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, input_tensor):
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class JinaBertAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.self = JinaBertSelfAttention(config)
        self.output = JinaBertSelfOutput(config)

    def forward(self, hidden_states, attention_mask, bias):
        return self.output(self.self(hidden_states, attention_mask, bias), hidden_states)


class JinaBertGLUMLP(nn.Module):
    """The gated feed-forward: one projection to twice the intermediate width, its halves the gate and the value."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.gated_layers = nn.Linear(config.hidden_size, config.intermediate_size * 2, bias=False)
        if config.feed_forward_type == "reglu":
            self.act = nn.ReLU()
        elif config.feed_forward_type == "geglu":
            self.act = nn.GELU()
        else:
            raise ValueError(f"feed_forward_type {config.feed_forward_type} not supported")
        self.wo = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states):
        residual_connection = hidden_states
        hidden_states = self.gated_layers(hidden_states)
        gated = hidden_states[:, :, : self.config.intermediate_size]
        non_gated = hidden_states[:, :, self.config.intermediate_size:]
        hidden_states = self.act(gated) * non_gated
        hidden_states = self.dropout(hidden_states)
        hidden_states = self.wo(hidden_states)
        return self.layernorm(hidden_states + residual_connection)


class JinaBertLayer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.attention = JinaBertAttention(config)
        self.mlp = JinaBertGLUMLP(config)

    def forward(self, hidden_states, attention_mask, bias):
        return self.mlp(self.attention(hidden_states, attention_mask, bias))


class JinaBertEncoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.layer = nn.ModuleList([JinaBertLayer(config) for _ in range(config.num_hidden_layers)])
        self.num_attention_heads = config.num_attention_heads
        self._current_alibi_size = int(config.max_position_embeddings)
        self.register_buffer("alibi", self.rebuild_alibi_tensor(size=config.max_position_embeddings),
                             persistent=False)

    def rebuild_alibi_tensor(self, size, device=None):
        n_heads = self.num_attention_heads
        context_position = torch.arange(size, device=device)[:, None]
        memory_position = torch.arange(size, device=device)[None, :]
        relative_position = torch.abs(memory_position - context_position)
        relative_position = relative_position.unsqueeze(0).expand(n_heads, -1, -1)
        slopes = (torch.Tensor(_get_alibi_head_slopes(n_heads)).to(device) * -1)
        alibi = slopes.unsqueeze(1).unsqueeze(1) * relative_position
        alibi = alibi.unsqueeze(0)
        self._current_alibi_size = size
        return alibi

    def forward(self, hidden_states, attention_mask):
        _, seqlen, _ = hidden_states.size()
        if self._current_alibi_size < seqlen:
            self.register_buffer("alibi", self.rebuild_alibi_tensor(size=seqlen, device=hidden_states.device).to(
                hidden_states.dtype), persistent=False)
        alibi_bias = self.alibi[:, :, :seqlen, :seqlen].to(hidden_states.dtype)
        for layer_module in self.layer:
            hidden_states = layer_module(hidden_states, attention_mask, alibi_bias)
        return hidden_states


class JinaBertPooler(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states):
        return self.activation(self.dense(hidden_states[:, 0]))


class JinaBertPreTrainedModel(PreTrainedModel):
    config_class = JinaBertConfig
    base_model_prefix = "bert"

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(mean=0.0, std=self.config.initializer_range)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.data.normal_(mean=0.0, std=self.config.initializer_range)
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)


class JinaBertModel(JinaBertPreTrainedModel):
    def __init__(self, config, add_pooling_layer=True):
        super().__init__(config)
        self.embeddings = JinaBertEmbeddings(config)
        self.encoder = JinaBertEncoder(config)
        self.pooler = JinaBertPooler(config) if add_pooling_layer else None
        self.post_init()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, **kwargs):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        embeddings = self.embeddings(input_ids, token_type_ids)
        extended = self.get_extended_attention_mask(attention_mask, input_ids.shape)
        sequence_output = self.encoder(embeddings, extended)
        pooled = self.pooler(sequence_output) if self.pooler is not None else None
        return BaseModelOutputWithPooling(last_hidden_state=sequence_output, pooler_output=pooled)


class JinaBertForSequenceClassification(JinaBertPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = JinaBertModel(config)
        classifier_dropout = (config.classifier_dropout if config.classifier_dropout is not None
                              else config.hidden_dropout_prob)
        self.dropout = nn.Dropout(classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None):
        outputs = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        logits = self.classifier(self.dropout(outputs.pooler_output))
        return SequenceClassifierOutput(logits=logits)
'''


def tiny_jina_bert(directory: Path, max_length: int = 1024) -> Path:
    """A 2-layer random JinaBERT reranker (ALiBi, GLU feed-forward, 6 heads: the slopes' non-power-of-two path)
    saved with its modeling files (`trust_remote_code`), and a WordPiece tokenizer trained here whose
    model_max_length is `max_length`, above 512 (ALiBi has no position table)."""
    import importlib.util
    import json
    import sys

    import torch
    from transformers import BertTokenizerFast

    if (directory / "config.json").exists():
        return directory
    wordpiece = tiny_bert(directory.with_name(directory.name + "-wordpiece"))
    directory.mkdir(parents=True)
    (directory / "configuration_bert.py").write_text(JINA_BERT_CONFIG)
    (directory / "modeling_bert.py").write_text(JINA_BERT_MODEL)
    # The files import each other relatively, as a package: load them as one to build the random weights.
    package = f"_jina_bert_{abs(hash(str(directory)))}"
    (directory / "__init__.py").write_text("")
    spec = importlib.util.spec_from_file_location(package, directory / "__init__.py",
                                                  submodule_search_locations=[str(directory)])
    assert spec is not None and spec.loader is not None
    sys.modules[package] = importlib.util.module_from_spec(spec)
    modeling = importlib.import_module(f"{package}.modeling_bert")
    configuration = importlib.import_module(f"{package}.configuration_bert")
    (directory / "__init__.py").unlink()
    fast = BertTokenizerFast.from_pretrained(wordpiece, model_max_length=max_length)
    torch.manual_seed(31)
    config = configuration.JinaBertConfig(
        vocab_size=fast.vocab_size, hidden_size=48, num_hidden_layers=2, num_attention_heads=6, intermediate_size=64,
        max_position_embeddings=max_length, num_labels=1, feed_forward_type="geglu", initializer_range=0.2)
    model = modeling.JinaBertForSequenceClassification(config).eval()
    model.save_pretrained(directory)
    fast.save_pretrained(directory)
    saved = json.loads((directory / "config.json").read_text())
    saved["architectures"] = ["JinaBertForSequenceClassification"]
    saved["auto_map"] = {"AutoConfig": "configuration_bert.JinaBertConfig",
                         "AutoModelForSequenceClassification": "modeling_bert.JinaBertForSequenceClassification"}
    saved["model_type"] = "bert"
    (directory / "config.json").write_text(json.dumps(saved, indent=2))
    return directory


MINICPM_START_LAYER = 2
MINICPM_LAYERS = 8


def _package_module(directory: Path, name: str):  # type: ignore[no-untyped-def]
    """Imports `directory`'s `name`.py as part of a package (the files import each other relatively)."""
    import importlib
    import importlib.util
    import sys

    package = f"_tiny_{abs(hash(str(directory)))}"
    if package not in sys.modules:
        (directory / "__init__.py").write_text("")
        spec = importlib.util.spec_from_file_location(package, directory / "__init__.py",
                                                      submodule_search_locations=[str(directory)])
        assert spec is not None and spec.loader is not None
        sys.modules[package] = importlib.util.module_from_spec(spec)
        (directory / "__init__.py").unlink()
    return importlib.import_module(f"{package}.{name}")


def tiny_minicpm_layerwise(directory: Path, hidden: int = 32, layers: int = MINICPM_LAYERS,
                           start_layer: int = MINICPM_START_LAYER) -> Path:
    """A random 8-layer MiniCPM layerwise reranker (scoring heads from layer 2 up) built from FlagEmbedding
    1.4.2's own modeling code, which the checkpoint carries as remote code (as BAAI/bge-reranker-v2-minicpm-layerwise
    does; its one import of FlagEmbedding's compatibility helper inlined, so the files stand alone), and a
    SentencePiece-style BPE tokenizer trained here (<s> first, the reranker's prompt words in its vocabulary)."""
    import json
    from importlib.util import find_spec

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaTokenizerFast

    from crossrank.triton_models.pair_tokenizer import DEFAULT_LLM_PROMPT

    if (directory / "config.json").exists():
        return directory
    spec = find_spec("FlagEmbedding")
    assert spec is not None and spec.origin is not None, "pip install --no-deps FlagEmbedding==1.4.2"
    code = Path(spec.origin).parent / "inference" / "reranker" / "decoder_only" / "models"
    directory.mkdir(parents=True)
    (directory / "configuration_minicpm_reranker.py").write_text(
        (code / "configuration_minicpm_reranker.py").read_text())
    modeling = (code / "modeling_minicpm_reranker.py").read_text()
    helper = "from FlagEmbedding.utils.transformers_compat import is_torch_fx_available\n"
    assert helper in modeling
    (directory / "modeling_minicpm_reranker.py").write_text(modeling.replace(helper, (
        "def is_torch_fx_available():\n    try:\n        import torch.fx  # noqa: F401\n\n        return True\n"
        "    except Exception:\n        return False\n")))
    special = ["<unk>", "<s>", "</s>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator([*corpus(), DEFAULT_LLM_PROMPT, "Yes No A: B:\n", "\n"],
                            trainers.BpeTrainer(vocab_size=400, special_tokens=special))
    fast = LlamaTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                              pad_token="<unk>", add_bos_token=True, add_eos_token=False, model_max_length=4096)
    configuration = _package_module(directory, "configuration_minicpm_reranker")
    modeling_module = _package_module(directory, "modeling_minicpm_reranker")
    torch.manual_seed(29)
    config = configuration.LayerWiseMiniCPMConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096, pad_token_id=0, bos_token_id=1,
        eos_token_id=2, scale_emb=12, dim_model_base=256, scale_depth=1.4, initializer_range=0.1,
        start_layer=start_layer, head_multi=True, head_type="simple",
        use_cache=False)  # FlagEmbedding 1.4.2 builds its cache with an API transformers 4.57 no longer has
    model = modeling_module.LayerWiseMiniCPMForCausalLM(config).eval()
    with torch.no_grad():  # heads with spread, so that scores differ visibly between pairs
        for head in model.lm_head:
            head.linear_head.weight.mul_(20)
    model.save_pretrained(directory)
    fast.save_pretrained(directory)
    saved = json.loads((directory / "config.json").read_text())
    saved["architectures"] = ["LayerWiseMiniCPMForCausalLM"]
    saved["auto_map"] = {"AutoConfig": "configuration_minicpm_reranker.LayerWiseMiniCPMConfig",
                         "AutoModel": "modeling_minicpm_reranker.LayerWiseMiniCPMModel",
                         "AutoModelForCausalLM": "modeling_minicpm_reranker.LayerWiseMiniCPMForCausalLM"}
    (directory / "config.json").write_text(json.dumps(saved, indent=2))
    return directory


def flag_embedding_layerwise(model_dir: Path, **kwargs):  # type: ignore[no-untyped-def]
    """FlagEmbedding's `LayerWiseFlagLLMReranker` on `model_dir` (CPU, fp32). The package imports `datasets` and
    `peft` at its top for training code the reranker never runs; where they are not installed (it is installed
    with --no-deps here), empty stand-ins take their place so that its inference code imports."""
    import importlib.machinery
    import sys
    import types
    from importlib.util import find_spec

    class _Absent(types.ModuleType):
        def __getattr__(self, name: str) -> type:
            if name.startswith("__"):
                raise AttributeError(name)
            return type(name, (), {})

    for name in ("datasets", "peft"):
        if name not in sys.modules and find_spec(name) is None:
            stand_in = _Absent(name)
            stand_in.__spec__ = importlib.machinery.ModuleSpec(name, None)
            sys.modules[name] = stand_in
    from FlagEmbedding import LayerWiseFlagLLMReranker

    return LayerWiseFlagLLMReranker(str(model_dir), devices=["cpu"], use_fp16=False, trust_remote_code=True, **kwargs)
