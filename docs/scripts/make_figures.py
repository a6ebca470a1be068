"""Draw the graphs of the tutorials on a real histopathology patch (docs/_static/figures/*.png).

The pictures in :doc:`tutorials/image_to_graph` and :doc:`tutorials/mutual_information` are made
by this script from graphvision's own converters, on one 50 x 50 patch of the breast IDC data set
(``../shared/data/breast_idc_patches``, never copied into the repository). Regenerate with::

    python docs/scripts/make_figures.py [--image PATH.png]

It needs the ``examples`` extras (numpy, pillow, matplotlib) and scikit-image for the superpixel
panel. The PNGs are committed so the docs build needs neither the data nor scikit-image.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from PIL import Image  # noqa: E402

import graphvision.functional as GF  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "breast_idc_patches")
OUT = os.path.join(ROOT, "docs", "_static", "figures")


def default_image() -> str:
    """The first IDC-positive test patch listed in the data set's MANIFEST.csv."""
    with open(os.path.join(DATA, "MANIFEST.csv")) as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["path"])
    row = next(r for r in rows if r["label"] == "1" and r["split"] == "test")
    return os.path.join(DATA, row["path"])


def load(path: str) -> torch.Tensor:
    """``(1, 3, H, W)`` float image in [0, 1]."""
    img = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).contiguous()


def show(ax: plt.Axes, image: torch.Tensor, title: str) -> None:
    _, _, h, w = image.shape
    ax.imshow(image[0].permute(1, 2, 0).numpy(), extent=(-0.5, w - 0.5, h - 0.5, -0.5), interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_edges(ax: plt.Axes, pos: np.ndarray, edge_index: torch.Tensor, color: str, lw: float = 0.6,
               alpha: float = 0.8, widths: np.ndarray | None = None) -> None:
    """Edges between node positions ``pos`` given as ``(x, y)`` in pixel coordinates."""
    src, dst = edge_index.numpy()
    keep = src < dst  # draw each undirected pair once
    if widths is not None:
        widths = widths[keep]
    segs = np.stack([pos[src[keep]], pos[dst[keep]]], axis=1)
    ax.add_collection(LineCollection(segs, colors=color, linewidths=lw if widths is None else widths, alpha=alpha))


#: Patch nodes whose neighbours are highlighted (on the 10 x 10 patch grid), and their colours.
HIGHLIGHT = (11, 37, 64, 88)
HIGHLIGHT_COLOURS = ("red", "cyan", "yellow", "orange")


def grid_pos(h: int, w: int, scale: float = 1.0) -> np.ndarray:
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1) * scale + (scale - 1) / 2


def figure_converters(image: torch.Tensor, path: str) -> None:
    _, _, h, w = image.shape
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.9), dpi=110, layout="constrained")

    crop = image[:, :, :14, :14]
    _, edge_index, _ = GF.image_to_graph(crop, connectivity=8)
    title = f"image_to_graph, 8-neighbour\n(14 x 14 crop: {crop.shape[-1] ** 2} nodes, {edge_index.shape[1]} edges)"
    show(axes[0], crop, title)
    draw_edges(axes[0], grid_pos(14, 14), edge_index, "white", lw=0.7)
    axes[0].scatter(*grid_pos(14, 14).T, s=4, c="black")

    p = 5
    x, edge_index, _ = GF.patch_graph(image, patch_size=p, connectivity=8)
    pos = grid_pos(h // p, w // p, scale=p)
    show(axes[1], image, f"patch_graph, P={p}, grid edges\n({x.shape[0]} nodes, {edge_index.shape[1]} edges)")
    draw_edges(axes[1], pos, edge_index, "white", lw=0.8)
    axes[1].scatter(*pos.T, s=10, c=x.clamp(0, 1).numpy(), edgecolors="black", linewidths=0.4)

    x, edge_index, _ = GF.patch_graph(image, patch_size=p, k=4)
    title = f"patch_graph, P={p}, k=4 nearest in colour\n({edge_index.shape[1]} edges; 4 nodes highlighted)"
    show(axes[2], image, title)
    src, dst = edge_index.numpy()
    segs = np.stack([pos[src], pos[dst]], axis=1)
    axes[2].add_collection(LineCollection(segs, colors="white", linewidths=0.4, alpha=0.3))
    for node, colour in zip(HIGHLIGHT, HIGHLIGHT_COLOURS):
        for j in src[dst == node]:  # edges point from each neighbour j to the node
            axes[2].annotate("", xy=pos[node], xytext=pos[j],
                             arrowprops={"arrowstyle": "->", "color": colour, "lw": 1.4, "shrinkA": 2, "shrinkB": 3})
        axes[2].scatter(*pos[node], s=50, c=colour, edgecolors="black", zorder=3)
    axes[2].scatter(*pos.T, s=10, c=x.clamp(0, 1).numpy(), edgecolors="black", linewidths=0.4)

    try:
        graph = GF.superpixel_graph(image, n_segments=40, compactness=10.0)
        from skimage.segmentation import find_boundaries

        labels = graph.labels[0].numpy()
        show(axes[3], image, f"superpixel_graph, SLIC\n({graph.x.shape[0]} regions, {graph.edge_index.shape[1]} edges)")
        bound = find_boundaries(labels, mode="inner")
        overlay = np.zeros((*labels.shape, 4))
        overlay[bound] = (1, 1, 1, 0.6)
        axes[3].imshow(overlay, extent=(-0.5, w - 0.5, h - 0.5, -0.5), interpolation="nearest")
        cpos = graph.pos.numpy()[:, ::-1]  # (y, x) -> (x, y)
        draw_edges(axes[3], cpos, graph.edge_index, "cyan", lw=0.9)
        axes[3].scatter(*cpos.T, s=12, c=graph.x.clamp(0, 1).numpy(), edgecolors="black", linewidths=0.4)
    except ImportError:
        axes[3].set_axis_off()
        axes[3].set_title("superpixel_graph\n(needs scikit-image)", fontsize=9)

    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def figure_heatmap(image: torch.Tensor, path: str) -> None:
    """Node values back onto the image: pixel and patch graphs, nearest and bilinear."""
    _, _, h, w = image.shape
    x, _, _ = GF.image_to_graph(image)
    redness = x[:, 0] - x[:, 1:].mean(1)  # a node value: how much redder than green/blue (eosin-ish)
    xp, _, _ = GF.patch_graph(image, patch_size=5)
    redness_p = xp[:, 0] - xp[:, 1:].mean(1)
    maps = [
        ("pixel graph -> image", GF.nodes_to_image(redness, h, w)),
        ("patch graph, nearest", GF.nodes_to_image(redness_p, h, w, patch_size=5)),
        ("patch graph, bilinear", GF.nodes_to_image(redness_p, h, w, patch_size=5, mode="bilinear")),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.3), dpi=110, layout="constrained")
    show(axes[0], image, "input patch (50 x 50)")
    for ax, (title, m) in zip(axes[1:], maps):
        show(ax, image, f"nodes_to_image: {title}")
        ax.imshow(m[0, 0].numpy() if m.dim() == 4 else m[0].numpy(), cmap="magma", alpha=0.75,
                  extent=(-0.5, w - 0.5, h - 0.5, -0.5), interpolation="nearest")
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def figure_mutual_information(image: torch.Tensor, path: str) -> None:
    """MI between patches (each patch's 75 pixel values are the samples), top-3 neighbours."""
    _, _, h, w = image.shape
    p = 5
    x, _, _ = GF.patch_graph(image, patch_size=p, features="flatten")  # (100, 75)
    dense = GF.mutual_information_adjacency(x.unsqueeze(0), bins=8, normalize=True)[0]
    edge_index, _ = GF.mutual_information_adjacency(
        x.unsqueeze(0), bins=8, normalize=True, top_k=3, output="sparse"
    )
    pos = grid_pos(h // p, w // p, scale=p)
    fig, axes = plt.subplots(1, 4, figsize=(14, 4.2), dpi=110, layout="constrained",
                             gridspec_kw={"width_ratios": [1, 1, 1, 1.2]})
    show(axes[0], image, f"MI top-3 neighbours of 4 patches\n(of {edge_index.shape[1]} edges in all)")
    src, dst = edge_index.numpy()
    segs = np.stack([pos[src], pos[dst]], axis=1)
    axes[0].add_collection(LineCollection(segs, colors="white", linewidths=0.4, alpha=0.25))
    for node, colour in zip(HIGHLIGHT, HIGHLIGHT_COLOURS):
        top = torch.topk(dense[node], 3).indices.numpy()
        for j in top:
            axes[0].annotate("", xy=pos[node], xytext=pos[j],
                             arrowprops={"arrowstyle": "->", "color": colour, "lw": 1.6, "shrinkA": 2, "shrinkB": 3})
        axes[0].scatter(*pos[node], s=50, c=colour, edgecolors="black", zorder=3)
    for ax, node, colour in zip(axes[1:3], HIGHLIGHT[:2], HIGHLIGHT_COLOURS[:2]):
        row = GF.nodes_to_image(dense[node].detach(), h, w, patch_size=p)
        show(ax, image, f"normalised MI of the {colour} patch\nto every patch (nodes_to_image)")
        ax.imshow(row.reshape(h, w).numpy(), cmap="viridis", alpha=0.8, extent=(-0.5, w - 0.5, h - 0.5, -0.5),
                  interpolation="nearest")
        ax.scatter(*pos[node], s=50, c=colour, edgecolors="black", zorder=3)
    im = axes[3].imshow(dense.detach().numpy(), cmap="viridis")
    axes[3].set_title("dense normalised MI (100 x 100)", fontsize=9)
    axes[3].set_xlabel("node j (patch index)", fontsize=8)
    axes[3].set_ylabel("node i", fontsize=8)
    fig.colorbar(im, ax=axes[3], fraction=0.046)
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def shrink(path: str) -> None:
    """Re-save a PNG with a 256-colour palette: the committed figures stay small."""
    img = Image.open(path).convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    img.save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", help="a PNG patch (default: the first IDC test patch of the shared data)")
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args(argv)
    path = args.image or default_image()
    image = load(path)
    torch.manual_seed(0)
    os.makedirs(args.out, exist_ok=True)
    figure_converters(image, os.path.join(args.out, "image_to_graph.png"))
    figure_heatmap(image, os.path.join(args.out, "heatmap.png"))
    figure_mutual_information(image, os.path.join(args.out, "mutual_information.png"))
    for name in ("image_to_graph.png", "heatmap.png", "mutual_information.png"):
        shrink(os.path.join(args.out, name))
    print(f"figures of {os.path.relpath(path, ROOT)} written to {os.path.relpath(args.out, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
