"""The `crossrank` command: export, serve, and terminal calls to a running server (rerank, classify, models)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import typing
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from crossrank import log_format
from crossrank import settings as settings_module
from crossrank.triton_contract import AUTO

DEFAULT_TARGET = "localhost:50051"


def _export(args: argparse.Namespace) -> int:
    from crossrank.export.engines import UnsupportedEngineError
    from crossrank.export.exporter import ExportError, ExportOptions, export
    from crossrank.export.progress import Progress

    log_format.setup("INFO")
    shown = args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty())
    progress = Progress(shown)
    try:
        with progress.shown():
            report = export(ExportOptions(
                source=args.source, name=args.name, repository=args.repository, engine=args.engine,
                precision=args.precision, max_length=args.max_length, max_batch_size=args.max_batch_size,
                trust_remote_code=args.trust_remote_code, tokenizer_instances=args.tokenizer_instances,
                encoder_instances=args.encoder_instances, tokens_per_batch=args.tokens_per_batch,
                layout=args.layout, prompt=args.prompt, score_token=args.score_token,
                prefix_reuse=args.prefix_reuse, exact_head=args.exact_head), progress)
    except (ExportError, UnsupportedEngineError) as exc:
        print(f"crossrank export: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the repository (or the scratch space beside it) cannot be written
        print(f"crossrank export: error: cannot write {args.repository}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    info = report.info
    print(f"exported {info.name} ({info.task.value}, labels {', '.join(info.labels)}, max length "
          f"{info.max_length}, {info.engine}/{info.precision}) to {args.repository}; largest logit difference "
          f"to PyTorch {report.max_abs_diff:.2e} over {report.pairs_checked} pairs")
    if report.agreement is not None:
        print(f"{info.precision}{' with the exact head' if info.exact_head else ''} against fp32: "
              f"{report.agreement.summary()}")
    if report.head_bound is not None:
        print(f"exact head: fp32 re-scores each rerank's head (served as {info.exact_model}); "
              f"{report.head_bound.summary()}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from crossrank.app import ServerStoppedError, serve

    try:
        settings = settings_module.load(args.config, os.environ,
                                        {s.field: getattr(args, s.field) for s in settings_module.SETTINGS if s.flag})
    except settings_module.SettingsError as exc:
        print(f"crossrank serve: error: {exc}", file=sys.stderr)
        return 2
    log_format.setup(settings.log_level, settings.log_format)
    try:
        asyncio.run(serve(settings))
    except ServerStoppedError as exc:
        logging.getLogger("crossrank").critical("%s", exc)
        return 1
    except (RuntimeError, ValueError) as exc:  # StartupError, ExportError, bad model specs: one clear line
        logging.getLogger("crossrank").error("cannot start: %s", exc)
        return 1
    return 0


def read_documents(path: str | None, jsonl: bool) -> list[str]:
    """Documents from `path` ('-': standard input): one per non-empty line, or with `jsonl` one JSON string or
    {"text": ...} object per line. A line that is not one is an error naming its number."""
    if path is None:
        return []
    stream = sys.stdin if path == "-" else open(path, encoding="utf-8")  # closed below, unless stdin
    try:
        lines = stream.read().splitlines()
    finally:
        if stream is not sys.stdin:
            stream.close()
    documents = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if not jsonl:
            documents.append(line)
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not JSON ({exc.msg})") from None
        text = value.get("text") if isinstance(value, dict) else value
        if not isinstance(text, str):
            raise ValueError(f"{path}:{number}: expected a JSON string or an object with a 'text' string")
        documents.append(text)
    return documents


def _client_call(args: argparse.Namespace) -> int:
    from crossrank_client import CrossEncoderClient, CrossrankClientError

    table: list[tuple[str, ...]]
    header: tuple[str, ...]
    rows: list[dict[str, object]]
    try:
        with CrossEncoderClient(args.target, timeout=args.timeout) as client:
            if args.command == "rerank":
                documents = [*args.documents, *read_documents(args.documents_file, args.jsonl)]
                if not documents:
                    print("crossrank rerank: no documents: give them as arguments or with --documents-file",
                          file=sys.stderr)
                    return 2
                response = client.rerank(args.query, documents, model=args.model, top_n=args.top_n,
                                         return_documents=True, raw_scores=args.raw_scores)
                rows = [asdict(r) for r in response.results]
                table = [(str(r.index), f"{r.score:.6f}", (r.document or "")[:70]) for r in response.results]
                header = ("index", "score", "document")
            elif args.command == "classify":
                pairs = [tuple(p.split("|||", 1)) if "|||" in p else (p, "") for p in args.pairs]
                cresponse = client.classify(pairs, model=args.model, raw_scores=args.raw_scores)
                rows = [asdict(r) for r in cresponse.results]
                table = [(str(i), r.label, f"{r.score:.6f}") for i, r in enumerate(cresponse.results)]
                header = ("input", "label", "score")
            else:
                models = client.list_models()
                rows = [asdict(m) for m in models]
                table = [(m.name + (" *" if m.is_default else ""), m.task, str(m.max_length),
                          f"{m.engine}/{m.precision}" + (" + exact head" if m.exact_head else ""), m.source[:50])
                         for m in models]
                header = ("model", "task", "max_len", "engine", "source")
    except (OSError, ValueError) as exc:  # an unreadable or malformed --documents-file
        print(f"crossrank {args.command}: {exc}", file=sys.stderr)
        return 2
    except CrossrankClientError as exc:
        print(f"crossrank {args.command}: {exc}", file=sys.stderr)
        for violation in exc.field_violations:
            print(f"  {violation.field}: {violation.description}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    widths = [max(len(h), *(len(row[i]) for row in table)) if table else len(h) for i, h in enumerate(header)]
    for row in (header, *table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def _flag_options(spec: settings_module.Setting) -> dict[str, Any]:
    """`serve`'s flag for a setting, from its declaration (the value is converted and checked by `load`)."""
    options: dict[str, Any] = {"help": f"{spec.help} [{spec.env}; {spec.key}]".replace("%", "%%")}
    if typing.get_origin(spec.kind) is tuple:
        options["action"] = "append"
    elif spec.kind in (int, float):
        options["type"] = spec.kind
    if spec.choices and not getattr(spec.check, "fold_case", False):
        options["choices"] = spec.choices
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crossrank", description="Serve cross-encoders on Triton.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("export", help="export a cross-encoder into a Triton model repository")
    p.add_argument("source", help="Hugging Face model id or local model directory")
    p.add_argument("--name", required=True, help="served model name")
    p.add_argument("--repository", type=Path, default=Path("model_repository"),
                   help="the Triton model repository to write the three models into (default model_repository)")
    p.add_argument("--engine", default=AUTO,
                   help="auto (default: chosen with the precision), onnx-python, torch-python; onnxruntime, "
                        "tensorrt (Triton's native backends: the NGC Triton image, not the bundled one)")
    p.add_argument("--precision", default=AUTO,
                   help="auto (default: measures what this machine runs well and keeps the fastest that ranks "
                        "like fp32); fp32 (exact: 1e-4 parity); int8 (onnx-python, onnxruntime); bf16, fp16 "
                        "(torch-python, fp16 on a GPU); fp16 (onnxruntime and tensorrt, on a GPU)")
    p.add_argument("--tokens-per-batch", type=int, default=0,
                   help="padded tokens per encoder sub-batch (python-backend engines); default: measured")
    p.add_argument("--max-length", type=int, default=None,
                   help="default: the model's own; 1024 pair tokens for causal-LM rerankers")
    p.add_argument("--max-batch-size", type=int, default=256, help="pairs per Triton request")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="run the model repository's own Python code when loading it (models with custom code, "
                        "such as jina-reranker-v2; only for sources you trust)")
    p.add_argument("--tokenizer-instances", type=int, default=1,
                   help="tokenizer model instances in Triton (one CPU core each; raise on GPU hosts)")
    p.add_argument("--encoder-instances", type=int, default=1,
                   help="python-backend encoder instances in Triton (2 on a GPU overlaps host work with kernels)")
    p.add_argument("--layout", default=AUTO,
                   choices=["auto", "sentence-transformers", "qwen3-reranker", "bge-gemma", "mxbai-rerank-v2"],
                   help="causal-LM rerankers: how a pair is laid out (auto: a chat template with query and "
                        "document roles is sentence-transformers', a Gemma without one bge-reranker-v2-gemma's; "
                        "qwen3-reranker: a raw Qwen3-Reranker checkpoint, as its model card scores it; "
                        "mxbai-rerank-v2: a raw mxbai-rerank-v2 checkpoint, as its published code scores it)")
    p.add_argument("--prompt", default=None,
                   help="causal-LM rerankers, bge-gemma layout: the instruction after each pair (default: "
                        "bge-reranker-v2-gemma's)")
    p.add_argument("--score-token", default="Yes",
                   help="causal-LM rerankers, bge-gemma layout: the token whose logit is the score (default Yes)")
    p.add_argument("--progress", choices=["auto", "on", "off"], default="auto",
                   help="a progress bar over the long steps (loading, each precision measured, parity, width "
                        "tuning) with the time left; auto (default): when standard error is a terminal")
    p.add_argument("--no-prefix-reuse", dest="prefix_reuse", action="store_false",
                   help="causal-LM rerankers on torch-python: compute every pair whole instead of running a "
                        "request's shared prefix (instruction, query) once")
    p.add_argument("--exact-head", choices=["auto", "on", "off"], default="auto",
                   help="serve a reduced precision with its fp32 encoder beside it, re-scoring each rerank's head "
                        "so that top_n is fp32's, order and scores (docs/models.md). auto (default): a candidate "
                        "of --precision auto, timed and chosen only where faster; on: with a named reduced "
                        "precision; off: never")
    p.set_defaults(func=_export)

    p = sub.add_parser("serve", help="run the gateway (and, without --triton-url, the bundled Triton)",
                       description="Every setting is in the YAML file (server_config/crossrank.yaml documents "
                                   "them) and a CROSSRANK_* variable; the flags below override both.")
    p.add_argument("--config", type=Path, default=None, help="YAML settings (default server_config/crossrank.yaml)")
    for spec in settings_module.SETTINGS:
        if spec.flag:
            p.add_argument(spec.flag, dest=spec.field, default=None, **_flag_options(spec))
    p.set_defaults(func=_serve)

    for name, help_text in (("rerank", "rank documents against a query on a running server"),
                            ("classify", "classify pairs ('text|||text_pair') on a running server"),
                            ("models", "list a running server's models")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--target", default=os.environ.get("CROSSRANK_TARGET", DEFAULT_TARGET),
                       help=f"the server's gRPC address (default $CROSSRANK_TARGET, else {DEFAULT_TARGET})")
        p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the answer (default 30)")
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")
        if name != "models":
            p.add_argument("--model", default="", help="a served model's name (default: the server's default)")
            p.add_argument("--raw-scores", action="store_true",
                           help="print logits instead of the model's activation (sigmoid, softmax)")
        if name == "rerank":
            p.add_argument("--query", required=True, help="the query the documents are ranked against")
            p.add_argument("--top-n", type=int, default=0, help="print the best N only (default 0: all)")
            p.add_argument("--documents-file", "-f", metavar="FILE", default=None,
                           help="read documents from FILE ('-' for standard input), one per line, after any "
                                "given as arguments; with --jsonl one JSON value per line")
            p.add_argument("--jsonl", action="store_true",
                           help="--documents-file holds JSON lines: a string, or an object with a 'text' field")
            p.add_argument("documents", nargs="*", help="documents to rank (or --documents-file)")
        if name == "classify":
            p.add_argument("pairs", nargs="+", help="pairs to classify, each 'text|||text_pair'")
        p.set_defaults(func=_client_call)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
