"""How far do the shipped models move when torch runs other CPU kernels? (issue 20)

    python benchmarks/kernel_spread.py [--out docs-dev/kernel_spread.json]

Floating-point results of matrix products depend on the kernels a CPU selects, and a few hundred
optimiser steps magnify a last-bit difference. This script retrains every shipped synthetic model
(``max``, ``first``, ``induction``) once per kernel setting, each in a fresh process with the
setting in its environment, and records for each run:

* the largest absolute difference of every weight from the shipped checkpoint;
* the statistics the lessons print and the tests check (held-out accuracy, QK Spearman, copying
  score, OV top-1; for the induction model its accuracy and head scores), next to the shipped
  model's.

The record (JSON, plus a Markdown table on stdout) is what ``tests/test_train.py`` and
``tests/test_induction.py`` set their tolerances from; see ``docs-dev/KERNEL_SPREAD.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: name -> environment variables. "native" is whatever this CPU picks.
SETTINGS: dict[str, dict[str, str]] = {
    "native": {},
    "aten-default": {"ATEN_CPU_CAPABILITY": "default"},
    "aten-avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "mkl-avx2+dnnl-avx2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2"},
    "mkl-sse4_2+aten-default": {
        "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
        "DNNL_MAX_CPU_ISA": "SSE41",
        "ATEN_CPU_CAPABILITY": "default",
    },
}


def worker(out_dir: Path) -> None:
    """Retrain each shipped model here and write its weights and statistics to ``out_dir``."""
    import numpy as np
    import torch

    import toymodel
    from toymodel import induction
    from toymodel.experiments import circuit_stats
    from toymodel.tasks import get_task
    from toymodel.train import LESSON_CONFIGS, evaluate, train

    def stats_of(name, model):
        if name == "induction":
            with torch.no_grad():
                _, pattern = model.run_with_pattern(induction.repeated_tokens(500))
            scores = induction.head_scores(pattern)
            return {
                "accuracy": induction.induction_accuracy(model),
                "prev_score_max": float(scores.previous_token[0].max()),
                "prev_score_min": float(scores.previous_token[0].min()),
                "dup_score_max": float(scores.duplicate_token.max()),
                "induction_score_min": float(scores.induction[1].min()),
            }
        s = circuit_stats(model, get_task(name))
        return {
            "accuracy": evaluate(model, name),
            "qk_spearman": float(s.qk_spearman),
            "copying_score": float(s.copying_score),
            "ov_top1": float(s.ov_top1),
        }

    record = {"capability": torch.backends.cpu.get_cpu_capability(), "models": {}}
    for name in ("max", "first", "induction"):
        if name == "induction":
            model, _ = induction.train_induction(progress=False)
            shipped = induction.load_induction_model()
        else:
            model, _ = train(name, LESSON_CONFIGS[name], progress=False)
            shipped = toymodel.load_pretrained(name)
        diffs = {
            k: float((v - shipped.state_dict()[k]).abs().max())
            for k, v in model.state_dict().items()
        }
        rel = {
            k: float((v - shipped.state_dict()[k]).norm() / shipped.state_dict()[k].norm())
            for k, v in model.state_dict().items()
        }
        np.savez(out_dir / f"{name}.npz", **{k: v.numpy() for k, v in model.state_dict().items()})
        record["models"][name] = {
            "max_abs_weight_diff": diffs,
            "relative_weight_diff": rel,
            "stats": stats_of(name, model),
            "shipped_stats": stats_of(name, shipped),
        }
    (out_dir / "record.json").write_text(json.dumps(record, indent=1))


def run_setting(name: str, env_extra: dict[str, str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, **env_extra}
        subprocess.run(
            [sys.executable, __file__, "--worker", tmp], env=env, check=True, cwd=ROOT
        )
        record = json.loads((Path(tmp) / "record.json").read_text())
        record["env"] = env_extra
        return record


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "docs-dev" / "kernel_spread.json"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--settings", nargs="*", default=list(SETTINGS))
    args = ap.parse_args(argv)
    if args.worker:
        worker(Path(args.worker))
        return
    import platform

    records = {name: run_setting(name, SETTINGS[name]) for name in args.settings}
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
         if ln.startswith("model name")),
        platform.processor(),
    ) if Path("/proc/cpuinfo").exists() else platform.processor()
    Path(args.out).write_text(json.dumps({"cpu": cpu, "records": records}, indent=1))
    print(f"CPU: {cpu}\n")
    print("| setting | capability | model | max abs weight diff | max relative weight diff "
          "| stats (retrained / shipped) |")
    print("|---|---|---|---|---|---|")
    for name, rec in records.items():
        for model, m in rec["models"].items():
            worst = max(m["max_abs_weight_diff"].values())
            worst_rel = max(m["relative_weight_diff"].values())
            st = ", ".join(
                f"{k} {v:.4f}/{m['shipped_stats'][k]:.4f}" for k, v in m["stats"].items()
            )
            cap = rec["capability"]
            print(f"| {name} | {cap} | {model} | {worst:.2e} | {worst_rel:.2e} | {st} |")


if __name__ == "__main__":
    main()
