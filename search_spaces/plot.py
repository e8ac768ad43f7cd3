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
    genotype = space.validate(genotype)
    out_dir = Path(out_dir)
    paths = []
    if space.name == "darts":
        for cell_type in space.cell_types:
            pairs = getattr(genotype, cell_type)
            concat = getattr(genotype, f"{cell_type}_concat")
            names = ["c_{k-2}", "c_{k-1}"] + [str(i) for i in range(len(pairs) // 2)]
            positions = {"c_{k-2}": (0.0, 0.8), "c_{k-1}": (0.0, -0.8), "c_{k}": (len(pairs) // 2 + 1.5, 0.0)}
            for i in range(len(pairs) // 2):
                positions[str(i)] = (1.0 + i, 0.9 if i % 2 == 0 else -0.9)
            edges = [(names[j], str(k // 2), op) for k, (op, j) in enumerate(pairs)]
            edges += [(names[i], "c_{k}", "") for i in concat]
            paths.append(out_dir / f"{cell_type}.png")
            _draw(edges, positions, f"{cell_type} cell", paths[-1])
    else:
        from .nb201 import EDGES

        positions = {str(i): (float(i), 0.9 if i % 2 else -0.9) for i in range(4)}
        edges = [(str(s), str(t), op) for (t, s), op in zip(EDGES, genotype.ops) if op != "none"]
        paths.append(out_dir / "cell.png")
        _draw(edges, positions, space.to_text(genotype), paths[-1])
    return paths
