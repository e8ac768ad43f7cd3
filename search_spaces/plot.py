"""Cell diagrams as PNG (matplotlib, no graphviz needed): one file per cell type."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import SearchSpace


def _draw(edges: list[tuple[str, str, str]], positions: dict[str, tuple[float, float]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    ops = sorted({label for _, _, label in edges if label})
    colors = {op: plt.get_cmap("tab10")(k % 10) for k, op in enumerate(ops)}
    for source, target, label in edges:
        (x0, y0), (x1, y1) = positions[source], positions[target]
        color = colors.get(label, "0.6")
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops=dict(arrowstyle="-|>", color=color, lw=1.8 if label else 1.0, shrinkA=18, shrinkB=18,
                                    connectionstyle="arc3,rad=0.12"))
        if label:
            ax.text(x0 + 0.3 * (x1 - x0), y0 + 0.3 * (y1 - y0), label, fontsize=7, ha="center", va="center",
                    color=color, bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.9))
    for op in ops:
        ax.plot([], [], color=colors[op], lw=2, label=op)
    if ops:
        ax.legend(loc="lower right", fontsize=8, frameon=False)
    for name, (x, y) in positions.items():
        color = "#9ecae1" if name.startswith("c_") else "#fdd0a2"
        ax.text(x, y, name, ha="center", va="center", fontsize=10,
                bbox=dict(boxstyle="round,pad=0.45", fc=color, ec="0.3"))
    ax.set_title(title)
    ax.set_xlim(-0.6, max(x for x, _ in positions.values()) + 0.6)
    ax.set_ylim(-1.4, 1.4)
    ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def plot_genotype(space: SearchSpace, genotype: Any, out_dir: str | Path) -> list[Path]:
    """Write `<cell_type>.png` for each cell type of the genotype; returns the paths."""
    paths = []
    for diagram in space.diagrams(genotype):
        paths.append(Path(out_dir) / f"{diagram.name}.png")
        _draw(list(diagram.edges), dict(diagram.positions), diagram.title, paths[-1])
    return paths
