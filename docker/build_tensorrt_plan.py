#!/usr/bin/env python3
"""Builds a TensorRT plan from a crossrank-exported ONNX encoder with trtexec, on a GPU node inside the NGC
Triton image (which ships trtexec and the TensorRT backend).

FP16 everywhere except LayerNormalization, which stays FP32 (fp16 LayerNorm is where rerankers lose their
score parity), and one optimization profile over batch and sequence length:

    python3 docker/build_tensorrt_plan.py model_repository/NAME_encoder/1/model.onnx \\
        --output model_repository/NAME_encoder/1/model.plan --max-batch 256 --max-length 512

`--dry-run` prints the trtexec command without running it (used by the tests, which have no GPU).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys


def layer_norm_nodes(onnx_path: str) -> list[str]:
    import onnx

    model = onnx.load(onnx_path, load_external_data=False)
    return [node.name for node in model.graph.node if node.op_type == "LayerNormalization" and node.name]


def input_names(onnx_path: str) -> list[str]:
    import onnx

    return [i.name for i in onnx.load(onnx_path, load_external_data=False).graph.input]


def trtexec_command(args: argparse.Namespace) -> list[str]:
    def shapes(batch: int, length: int) -> str:
        return ",".join(f"{name}:{batch}x{length}" for name in input_names(args.onnx))

    command = [
        args.trtexec, f"--onnx={args.onnx}", f"--saveEngine={args.output}",
        f"--minShapes={shapes(1, 1)}",
        f"--optShapes={shapes(args.opt_batch, args.opt_length)}",
        f"--maxShapes={shapes(args.max_batch, args.max_length)}",
    ]
    if args.precision == "fp16":
        command += ["--fp16", "--precisionConstraints=obey"]
        fp32 = layer_norm_nodes(args.onnx)
        if fp32:
            command.append("--layerPrecisions=" + ",".join(f"{name}:fp32" for name in fp32))
    return command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("onnx", help="the encoder's model.onnx written by `crossrank export`")
    parser.add_argument("--output", required=True, help="where to write the plan (model.plan)")
    parser.add_argument("--precision", choices=["fp16", "fp32"], default="fp16")
    parser.add_argument("--opt-batch", type=int, default=64)
    parser.add_argument("--opt-length", type=int, default=128)
    parser.add_argument("--max-batch", type=int, default=256)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--trtexec", default="trtexec")
    parser.add_argument("--dry-run", action="store_true", help="print the command only")
    args = parser.parse_args(argv)
    command = trtexec_command(args)
    print(shlex.join(command))
    if args.dry_run:
        return 0
    return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
