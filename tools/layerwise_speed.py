"""The speed-up of scoring a layerwise reranker (bge-reranker-v2-minicpm-layerwise's format) at a low layer:
a random MiniCPM layerwise model of 40 layers (scoring heads from layer 8 up, as the published model), exported
by `crossrank export` at several `--cutoff-layer`s on onnx-python, each encoder timed in-process on the same
rerank batch (the code Triton runs). Usage: python tools/layerwise_speed.py [--hidden 256] [--layers 8 28 40]"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, nargs="+", default=[8, 28, 40])
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from crossrank.export.exporter import ExportOptions, export
    from crossrank.triton_models.onnx_encoder import OnnxEncoder
    from crossrank.triton_models.pair_tokenizer import PairTokenizer
    from tests.model_builders import pairs_with_long_documents, tiny_minicpm_layerwise

    work = Path(tempfile.mkdtemp(prefix="layerwise-speed-"))
    model = tiny_minicpm_layerwise(work / "model", hidden=args.hidden, layers=40, start_layer=8)
    pairs = pairs_with_long_documents(args.pairs, long_words=120)
    times = {}
    for layer in args.layers:
        name = f"layer{layer}"
        # random weights 40 layers deep (heads scaled up for spread) carry more fp32 rounding than a trained
        # model's; parity is the tests' business, timing this tool's
        export(ExportOptions(source=str(model), name=name, repository=work / "repo", trust_remote_code=True,
                             cutoff_layer=layer, tokens_per_batch=1 << 20, tolerance=1e-3))
        version = work / "repo" / f"{name}_encoder" / "1"
        encoder = OnnxEncoder(str(version / "model.onnx"), intra_op_threads=0, tokens_per_batch=1 << 20)
        batch = PairTokenizer.from_directory(work / "repo" / f"{name}_tokenizer" / "1").encode(
            [q for q, _ in pairs], [d for _, d in pairs]).tensors
        encoder.score([batch])  # warm-up
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            encoder.score([batch])
            best = min(best, time.perf_counter() - start)
        times[layer] = best
        print(f"cutoff layer {layer}: {best * 1000:.1f} ms for {len(pairs)} pairs "
              f"({batch['input_ids'].shape[1]} tokens wide)", flush=True)
    top = max(times)
    for layer, seconds in sorted(times.items()):
        print(f"layer {layer}: {times[top] / seconds:.2f}x the speed of layer {top}")


if __name__ == "__main__":
    main()
