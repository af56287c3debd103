"""``sgap doctor``: which propagation backend is in use (fused CUDA/C++ kernels or plain
torch) and why, what became of the CUDA build (built, skipped without a GPU, failed with its
cause), and the seconds spent; builds the kernels if that has not happened yet."""

from __future__ import annotations

import argparse
import json

from .. import ops


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "doctor", help="report the propagation backend (cuda/cpp/torch), the reason and the build"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def run(args: argparse.Namespace) -> int:
    report = ops.info()
    if args.json:
        print(json.dumps(report))
        return 0
    width = max(len(key) for key in report)
    for key, value in report.items():
        shown = f"{value:.1f} s" if isinstance(value, float) else value
        print(f"{key:<{width}}  {shown}")
    return 0
