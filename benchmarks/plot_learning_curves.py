"""Quick-protocol P1 against CPU-minutes of training, for the MLP reference and PoseMamba runs.

    python benchmarks/plot_learning_curves.py --mlp runs/mlp10.json \\
        --run "recipe A (GT 2D)=runs/a_gt" --run "recipe B (SH 2D)=runs/b_sh" -o docs/learning_curves.png

``--mlp``: the JSON of benchmarks/baseline_mlp.py (its curves, one per 2D input). ``--run``:
LABEL=RUN_FOLDER of a ``pose3d train`` run with ``budget_clock = "cpu"`` (its metrics.jsonl
has ``cpu_minutes`` and ``val_p1`` per epoch); the 2D input is read from the run's config.json.
A run in stages is LABEL=FOLDER1+FOLDER2: each stage's minutes continue from where the one
before stopped (its last ``cpu_minutes``), so the curve shows the whole recipe's budget.
Solid lines: Stacked-Hourglass 2D; dashed: ground-truth 2D. Also prints the points as a table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def run_curve(folders: list[Path]) -> tuple[str, list[float], list[float]]:
    """(2D input, CPU-minutes, P1) of a run, or of its stages one after another."""
    minutes, p1, before = [], [], 0.0
    for folder in folders:
        input_2d = json.loads((folder / "config.json").read_text())["input_2d"]
        records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        for record in records:
            if "val_p1" in record and "cpu_minutes" in record:
                minutes.append(before + record["cpu_minutes"])
                p1.append(record["val_p1"])
        before += records[-1]["cpu_minutes"]
    return input_2d, minutes, p1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mlp", action="append", default=[], help="baseline_mlp.py --json output")
    parser.add_argument("--run", action="append", default=[], help="LABEL=RUN_FOLDER or LABEL=STAGE1+STAGE2")
    parser.add_argument("-o", "--out", required=True, help="PNG to write")
    parser.add_argument("--title", default="Human3.6M quick protocol, one CPU core (AMD EPYC)")
    args = parser.parse_args()
    curves = []  # (label, input_2d, minutes, p1)
    for path in args.mlp:
        report = json.loads(Path(path).read_text())
        for input_2d, result in report["results"].items():
            curve = result["curve"]
            curves.append((f"single-frame MLP, {report['minutes']:g} min budget", input_2d,
                           [c["cpu_minutes"] for c in curve], [c["p1"] for c in curve]))
    for item in args.run:
        label, folder = item.split("=", 1)
        curves.append((label, *run_curve([Path(f) for f in folder.split("+")])))
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    labels = sorted({c[0] for c in curves}, key=[c[0] for c in curves].index)
    for label, input_2d, minutes, p1 in curves:
        ax.plot(minutes, p1, marker="o", markersize=3, color=colours[labels.index(label) % len(colours)],
                linestyle="-" if input_2d == "sh" else "--", label=f"{label} [{input_2d.upper()} 2D]")
        print(f"{label} [{input_2d}]: " + ", ".join(f"{m:.1f} min {p:.1f}" for m, p in zip(minutes, p1)))
    ax.set_xlabel("training, CPU-minutes (process time, one thread)")
    ax.set_ylabel("P1 (mm), quick protocol, flip")
    ax.set_title(args.title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out)


if __name__ == "__main__":
    main()
