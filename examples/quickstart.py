"""graphvision quickstart: turn a real histology image into each kind of graph and draw them.

The default image is ``skimage.data.immunohistochemistry()``, a real IHC-stained section of
colon tissue bundled with scikit-image (no download). ``--image PATH`` uses any image instead.
The script builds, on one small image (``--size``, default 64x64):

1. 4-neighbour and 8-neighbour pixel grids (``image_to_graph``),
2. a patch graph on the patch grid (``patch_graph``, ViG-style nodes),
3. a kNN graph of the patches in colour space (``patch_graph(k=...)`` / ``knn_graph``),
4. a SLIC superpixel region-adjacency graph (``superpixel_graph``),
5. and the way back: node values painted onto the image (``nodes_to_image``),

prints the size of each graph and the time it took, and writes one PNG with every graph drawn
over the image (``--out``, default ``quickstart_graphs.png``)::

    python examples/quickstart.py
    python examples/quickstart.py --image my_patch.png --size 96 --out graphs.png
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import graphvision.functional as GF


def load_image(path: str | None, size: int) -> tuple[torch.Tensor, str]:
    """Return a ``(1, 3, size, size)`` float image in [0, 1] and a short description."""
    if path is None:
        from skimage import data

        array = data.immunohistochemistry()  # (512, 512, 3) uint8, real IHC histology
        name = "skimage.data.immunohistochemistry()"
    else:
        from PIL import Image

        array = np.asarray(Image.open(path).convert("RGB"))
        name = Path(path).name
    image = torch.from_numpy(np.array(array, copy=True)).permute(2, 0, 1).float().div(255.0)
    side = min(image.shape[1:])  # centre crop to a square, then area-downsample
    top, left = (image.shape[1] - side) // 2, (image.shape[2] - side) // 2
    image = image[:, top : top + side, left : left + side].unsqueeze(0)
    image = torch.nn.functional.interpolate(image, size=(size, size), mode="area")
    return image.clamp(0, 1), name


def timed(fn, *args, **kwargs):
    fn(*args, **kwargs)  # warm-up: the first call pays one-off library initialisation
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, (time.perf_counter() - start) * 1e3


def draw_edges(ax, edge_index: torch.Tensor, pos: np.ndarray, color, width=0.6, alpha=0.8) -> None:
    """Draw undirected edges (each pair once) between node positions ``pos (N, 2)`` in (x, y)."""
    from matplotlib.collections import LineCollection

    ei = edge_index.cpu()
    if ei.numel() == 0:
        return
    keep = ei[0] < ei[1]
    src, dst = ei[0][keep].numpy(), ei[1][keep].numpy()
    # Directed-only pairs (kNN) are drawn too.
    if not bool(keep.all()):
        pairs = set(map(tuple, ei.t().tolist()))
        extra = [(s, d) for s, d in pairs if s > d and (d, s) not in pairs]
        if extra:
            es = np.array(extra)
            src, dst = np.concatenate([src, es[:, 0]]), np.concatenate([dst, es[:, 1]])
    segments = np.stack([pos[src], pos[dst]], axis=1)
    ax.add_collection(LineCollection(segments, colors=color, linewidths=width, alpha=alpha))


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default=None, help="image file (default: scikit-image's IHC sample)")
    parser.add_argument("--size", type=int, default=64, help="side of the square image the graphs are built on")
    parser.add_argument("--patch-size", type=int, default=8, help="patch side for the patch graphs")
    parser.add_argument("--k", type=int, default=4, help="neighbours per patch in the kNN graph")
    parser.add_argument("--n-segments", type=int, default=60, help="approximate number of SLIC superpixels")
    parser.add_argument("--zoom", type=int, default=12, help="side of the crop on which pixel grids are drawn")
    parser.add_argument("--out", default="quickstart_graphs.png", help="output PNG")
    args = parser.parse_args(argv)
    if args.size % args.patch_size:
        parser.error(f"--size ({args.size}) must be a multiple of --patch-size ({args.patch_size})")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from skimage.segmentation import find_boundaries

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    image, name = load_image(args.image, args.size)
    image = image.to(device)
    _, _, h, w = image.shape
    p = args.patch_size
    print(f"image: {name} -> {tuple(image.shape)} on {device}")

    # 1. Pixel grids.
    grid4, t4 = timed(GF.image_to_graph, image, connectivity=4)
    grid8, t8 = timed(GF.image_to_graph, image, connectivity=8, similarity="gaussian", sigma=0.1)
    # 2-3. Patch graphs: grid edges, and kNN in colour space (ViG).
    patches, tp = timed(GF.patch_graph, image, p, connectivity=8)
    knn, tk = timed(GF.patch_graph, image, p // 2, k=args.k)
    # 4. Superpixels (SLIC needs scikit-image; any label map works too).
    regions, ts = timed(GF.superpixel_graph, image, n_segments=args.n_segments, compactness=10.0)
    # 5. The way back: mean similarity of each pixel to its 8 neighbours (an edge map), and the
    #    superpixel mean colours painted back.
    x8, ei8, _, w8 = grid8
    n_pix = x8.size(0)
    sim = torch.zeros(n_pix, device=device).index_add_(0, ei8[1], w8)
    sim = sim / torch.bincount(ei8[1], minlength=n_pix).clamp_min(1)
    edge_map = GF.nodes_to_image(1.0 - sim, h, w)[0]
    painted = GF.nodes_to_image(regions.x, h, w, labels=regions.labels)[0]

    rows = [
        ("4-neighbour grid", grid4.x.size(0), grid4.edge_index.size(1), t4),
        ("8-neighbour grid + gaussian weights", x8.size(0), ei8.size(1), t8),
        (f"{p}x{p} patch grid", patches.x.size(0), patches.edge_index.size(1), tp),
        (f"{p // 2}x{p // 2} patches, kNN (k={args.k}) in colour", knn.x.size(0), knn.edge_index.size(1), tk),
        ("SLIC superpixels, region adjacency", regions.x.size(0), regions.edge_index.size(1), ts),
    ]
    for label, n, e, t in rows:
        print(f"  {label:<40s} {n:6d} nodes {e:7d} edges {t:8.1f} ms")

    # ------------------------------------------------------------------ figure
    rgb = image[0].permute(1, 2, 0).cpu().numpy()
    z = min(args.zoom, h, w)
    y0, x0 = (h - z) // 2, (w - z) // 2
    fig, axes = plt.subplots(2, 4, figsize=(16, 8.4))
    axes = axes.ravel()
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])

    axes[0].imshow(rgb)
    axes[0].add_patch(Rectangle((x0 - 0.5, y0 - 0.5), z, z, fill=False, edgecolor="yellow", linewidth=1.5))
    axes[0].set_title(f"input {h}x{w} (yellow: zoomed crop)")

    def pixel_pos(width: int) -> np.ndarray:
        idx = np.arange(h * width)
        return np.stack([idx % width, idx // width], axis=1).astype(float)

    for ax, conn in ((axes[1], 4), (axes[2], 8)):
        crop = image[:, :, y0 : y0 + z, x0 : x0 + z]
        _, ei, _ = GF.image_to_graph(crop, connectivity=conn)
        ax.imshow(crop[0].permute(1, 2, 0).cpu().numpy())
        cpos = np.stack([np.arange(z * z) % z, np.arange(z * z) // z], axis=1).astype(float)
        draw_edges(ax, ei, cpos, "black", width=0.8)
        ax.scatter(cpos[:, 0], cpos[:, 1], s=6, c="white", edgecolors="black", linewidths=0.4, zorder=3)
        ax.set_title(f"{conn}-neighbour pixel grid (crop {z}x{z})")

    def patch_centres(size: int) -> np.ndarray:
        wp = w // size
        idx = np.arange((h // size) * wp)
        return np.stack([(idx % wp) * size + (size - 1) / 2, (idx // wp) * size + (size - 1) / 2], axis=1)

    axes[3].imshow(rgb)
    cpos = patch_centres(p)
    draw_edges(axes[3], patches.edge_index, cpos, "black", width=0.8)
    axes[3].scatter(cpos[:, 0], cpos[:, 1], s=28, c=patches.x.cpu().numpy(), edgecolors="black", zorder=3)
    axes[3].set_title(f"patch graph ({p}x{p} patches, 8-grid)")

    axes[4].imshow(rgb, alpha=0.55)
    cpos = patch_centres(p // 2)
    draw_edges(axes[4], knn.edge_index, cpos, "tab:gray", width=0.4, alpha=0.25)
    # Highlight the neighbourhoods of a few patches: neighbours in colour space can be far apart.
    kei = knn.edge_index.cpu()
    n_knn = knn.x.size(0)
    for node, colour in zip((n_knn // 4 + 3, n_knn // 2 + 5, 3 * n_knn // 4 + 9), ("tab:red", "tab:blue", "tab:green")):
        sub = kei[:, kei[1] == node]
        draw_edges(axes[4], sub, cpos, colour, width=2.0, alpha=0.95)
        axes[4].scatter(*cpos[node], s=90, c=colour, edgecolors="black", zorder=4)
    axes[4].scatter(cpos[:, 0], cpos[:, 1], s=10, c=knn.x.cpu().numpy(), edgecolors="black", linewidths=0.3, zorder=3)
    axes[4].set_title(f"kNN in colour space (k={args.k}), 3 highlighted")

    up = 4  # draw region boundaries on a 4x upsampled copy so they stay thin
    labels_up = regions.labels[0].repeat_interleave(up, 0).repeat_interleave(up, 1).cpu().numpy()
    overlay = np.repeat(np.repeat(rgb, up, axis=0), up, axis=1)
    overlay[find_boundaries(labels_up, mode="inner")] = [1.0, 0.9, 0.0]
    axes[5].imshow(overlay, extent=(-0.5, w - 0.5, h - 0.5, -0.5))
    rpos = regions.pos.cpu().numpy()[:, ::-1]  # (y, x) -> (x, y)
    draw_edges(axes[5], regions.edge_index, rpos, "black", width=0.9)
    axes[5].scatter(rpos[:, 0], rpos[:, 1], s=24, c=regions.x.cpu().numpy(), edgecolors="black", zorder=3)
    axes[5].set_title(f"superpixel graph ({regions.x.size(0)} SLIC regions)")

    axes[6].imshow(painted.permute(1, 2, 0).cpu().numpy())
    axes[6].set_title("nodes_to_image: region means")
    im = axes[7].imshow(edge_map.cpu().numpy(), cmap="magma")
    axes[7].set_title("nodes_to_image: 1 - mean edge weight")
    fig.colorbar(im, ax=axes[7], fraction=0.046, pad=0.02)
    fig.suptitle(f"graphvision: graphs built from {name}", fontsize=13)
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print(f"wrote {out.resolve()}")
    return out


if __name__ == "__main__":
    main()
