"""PNG charts from a results JSON; run with bench/.env's Python (it has matplotlib).

``python bench/plot.py RESULTS.json OUTDIR`` (``python -m bench --plot`` does it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _bar(path: Path, title: str, labels: list[str], values: list[float], ylabel: str) -> None:
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(labels, values)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


def main(src: str, out: str) -> None:
    data = json.loads(Path(src).read_text())["scenarios"]
    folder = Path(out)
    edit = data.get("edit_cost", {}).get("data", {}).get("runs")
    if edit:
        fig, ax = plt.subplots(figsize=(8, 4))
        sizes = list(edit)
        for key in ("local_us", "remote_us", "ack_us"):
            ax.plot(sizes, [edit[s][0][key]["median"] for s in sizes], marker="o", label=key)
        ax.set_yscale("log")
        ax.set_ylabel("µs per edit")
        ax.set_title("Per-edit cost vs document size")
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / "edit_cost.png", dpi=100)
        plt.close(fig)
    tp = data.get("throughput", {}).get("data", {})
    if tp:
        labels, values = [], []
        for shape, d in tp.items():
            for kind, runs in d["runs"].items():
                labels.append(f"{kind}\n{shape[:18]}")
                values.append(sorted(r["msgs_per_s"] for r in runs)[len(runs) // 2])
        _bar(folder / "throughput.png", "Delivered messages/s", labels, values, "msg/s")
    tr = data.get("trace", {}).get("data", {})
    if tr:
        labels, values = [], []
        for trace, d in tr.items():
            for peer, runs in d["runs"].items():
                if runs:
                    labels.append(f"{trace[:12]}\n{peer[:18]}")
                    values.append(sorted(r["edits_per_s"] for r in runs)[len(runs) // 2])
        _bar(
            folder / "trace.png",
            "Trace replay: edits/s until B shows the text",
            labels,
            values,
            "edits/s",
        )
    op = data.get("open", {}).get("data", {})
    if op:
        fig, ax = plt.subplots(figsize=(8, 4))
        ns = list(op)
        for how in ("snapshot", "full"):
            ax.plot(
                [int(n) for n in ns],
                [sorted(r["seconds"] for r in op[n]["runs"][how])[0] * 1000 for n in ns],
                marker="o",
                label=how,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("patches of history")
        ax.set_ylabel("ms to text")
        ax.set_title("Opening a long pad")
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / "open.png", dpi=100)
        plt.close(fig)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
