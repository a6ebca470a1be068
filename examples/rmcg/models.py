"""RMCG and the paper's baselines, assembled from graphvision's public API.

RMCG (residual multi-channel graph) pipeline, per image::

    image (B, 3, S, S)
      -> ResNet18 feature map at ``feature_level`` (layer1..layer4)           (B, C, h, w)
      -> graphvision.nn.MultiChannelAttention (C x C cross-channel attention) (B, C, h, w)
      -> pixel nodes x (B, N = h*w, C)
      -> graphvision.nn.MutualInformationAdjacency (top-k MI neighbours)      edge_index, edge_weight
      -> L x graphvision.nn.AttentionGCNConv (attention x MI weight, initial residual)
      -> graphvision.nn.AttentionPooling (node scores -> heatmaps)            (B, F)
      -> Linear classifier  (W_last, the only weight under the L2 term of the loss)

Baselines (``create_model(name)``): ``resnet18`` and ``alexnet`` (CNN classifiers), and graph heads
on backbone feature maps with an 8-neighbour pixel grid (``graphvision.functional.grid_graph``):
``resnet18-gcn`` (GCNConv), ``resnet18-gat`` (GATConv), ``ecc`` (EdgeConditionedConv on relative
pixel offsets), ``gcnii`` (GCN2Conv; ResNet18 or AlexNet features).

The backbones are written here (torchvision is optional): their parameter names match torchvision's
so ``pretrained=True`` copies torchvision's ImageNet weights when torchvision and the weights are
available, and says clearly why not otherwise.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MODELS = ("resnet18", "alexnet", "resnet18-gcn", "ecc", "resnet18-gat", "gcnii", "rmcg")
GRAPH_MODELS = ("resnet18-gcn", "ecc", "resnet18-gat", "gcnii", "rmcg")
#: How the tables and plots name each model, in the order of the results tables.
DISPLAY_NAMES = {
    "rmcg": "RMCG",
    "resnet18": "ResNet18",
    "alexnet": "AlexNet",
    "resnet18-gcn": "ResNet18-GCN",
    "ecc": "ECC",
    "resnet18-gat": "ResNet18-GAT",
    "gcnii": "GCNII",
}
FEATURE_LEVELS = ("layer1", "layer2", "layer3", "layer4")
_RESNET_CHANNELS = {"layer1": 64, "layer2": 128, "layer3": 256, "layer4": 512}


# ============================================================================================ backbones
class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs, identity or 1x1 projection shortcut)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18 (He et al. 2016) truncated at ``feature_level``; torchvision parameter names.

    Output stride: layer1 4, layer2 8, layer3 16, layer4 32 (a 50x50 patch gives 13x13, 7x7, 4x4,
    2x2 maps). ``width`` is the stem width (64: the standard ResNet18; 32: a half-width variant with
    about a quarter of the compute, for CPU experiments). ``features(x)`` returns the map;
    ``forward`` adds global average pooling and ``fc`` when ``num_classes`` is given.
    """

    def __init__(
        self, num_classes: int | None = None, feature_level: str = "layer4", in_channels: int = 3, width: int = 64
    ) -> None:
        super().__init__()
        if feature_level not in FEATURE_LEVELS:
            raise ValueError(f"Expected feature_level in {FEATURE_LEVELS} (got {feature_level!r})")
        if width < 1:
            raise ValueError(f"Expected width >= 1 (got {width})")
        self.feature_level = feature_level
        self.width = width
        self.out_channels = _RESNET_CHANNELS[feature_level] * width // 64
        self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        depth = FEATURE_LEVELS.index(feature_level) + 1
        inplanes = width
        for i, planes in enumerate(tuple(width * m for m in (1, 2, 4, 8))[:depth]):
            stride = 1 if i == 0 else 2
            setattr(
                self, f"layer{i + 1}", nn.Sequential(BasicBlock(inplanes, planes, stride), BasicBlock(planes, planes))
            )
            inplanes = planes
        self.depth = depth
        self.fc = nn.Linear(self.out_channels, num_classes) if num_classes is not None else None
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():  # zero-init the last BN of each block (torchvision's zero_init_residual)
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def features(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.conv1.in_channels:
            raise ValueError(f"Expected 'image' of shape (B, {self.conv1.in_channels}, H, W) (got {tuple(x.shape)})")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.depth):
            x = getattr(self, f"layer{i + 1}")(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        f = self.features(x)
        if self.fc is None:
            return f
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(f, 1), 1))


class _MaybeMaxPool(nn.MaxPool2d):
    """AlexNet's 3x3/2 max-pool (ceil mode), skipped on maps smaller than its window (small patches)."""

    def forward(self, x: Tensor) -> Tensor:
        if min(x.shape[-2:]) < 2:
            return x
        return super().forward(x)


class AlexNet(nn.Module):
    """AlexNet (Krizhevsky et al. 2012), torchvision's layout and parameter names.

    The pools use ceil mode and are skipped on 1-pixel maps, so small patches (>= 16 px) work.
    ``features(x)`` returns the conv5 map before the last pool (output stride about 16, 256
    channels) for graph heads; ``forward`` is the full classifier (adaptive pool to 6x6, two
    dropout + 4096 fully connected layers).
    """

    out_channels = 256

    def __init__(self, num_classes: int | None = None, dropout: float = 0.5, hidden: int = 4096) -> None:
        super().__init__()
        self.features_body = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2),
            nn.ReLU(inplace=True),
            _MaybeMaxPool(3, 2, ceil_mode=True),
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(inplace=True),
            _MaybeMaxPool(3, 2, ceil_mode=True),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.last_pool = _MaybeMaxPool(3, 2, ceil_mode=True)
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = None
        if num_classes is not None:
            self.classifier = nn.Sequential(
                nn.Dropout(dropout),
                nn.Linear(256 * 36, hidden),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
                nn.Linear(hidden, hidden),
                nn.ReLU(inplace=True),
                nn.Linear(hidden, num_classes),
            )

    def features(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3 or min(x.shape[-2:]) < 16:
            raise ValueError(
                f"Expected 'image' of shape (B, 3, H, W) with H, W >= 16 for AlexNet (got {tuple(x.shape)})"
            )
        return self.features_body(x)

    def forward(self, x: Tensor) -> Tensor:
        f = self.features(x)
        if self.classifier is None:
            return f
        return self.classifier(torch.flatten(self.avgpool(self.last_pool(f)), 1))


def load_pretrained(backbone: nn.Module, arch: str) -> str:
    """Copy torchvision's ImageNet weights into ``backbone`` (matching names); returns a status line."""
    try:
        import torchvision  # noqa: F401
        from torchvision import models as tvm
    except Exception as exc:  # noqa: BLE001 - ImportError or a broken torchvision build
        msg = (
            f"--pretrained: torchvision is not importable ({type(exc).__name__}: {exc}); training {arch} from "
            "scratch. Install a torchvision that matches your torch to use ImageNet weights."
        )
        warnings.warn(msg, stacklevel=2)
        return msg
    try:
        ctor = {"resnet18": tvm.resnet18, "alexnet": tvm.alexnet}[arch]
        state = ctor(weights="DEFAULT").state_dict()
    except Exception as exc:  # noqa: BLE001 - no network / no cached weights
        msg = f"--pretrained: could not get torchvision's {arch} ImageNet weights ({exc}); training from scratch."
        warnings.warn(msg, stacklevel=2)
        return msg
    if arch == "alexnet":
        state = {k.replace("features.", "features_body.", 1): v for k, v in state.items() if k.startswith("features.")}
    own = backbone.state_dict()
    loadable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    backbone.load_state_dict(loadable, strict=False)
    return f"--pretrained: loaded {len(loadable)} ImageNet tensors from torchvision into {arch}"


def build_backbone(arch: str, feature_level: str = "layer2", width: int = 64) -> nn.Module:
    """``resnet18`` truncated at ``feature_level`` (stem width ``width``) or ``alexnet`` conv features."""
    if arch == "resnet18":
        return ResNet18(None, feature_level, width=width)
    if arch == "alexnet":
        return AlexNet(None)
    raise ValueError(f"Expected backbone in ('resnet18', 'alexnet') (got {arch!r})")


# ============================================================================================ graph API
def _gv(name: str, module: str = "nn"):
    """A public graphvision name, with a clear error if this graphvision does not have it yet."""
    import graphvision.functional as gvf
    import graphvision.nn as gvn

    mod = gvn if module == "nn" else gvf
    if not hasattr(mod, name):
        raise ImportError(
            f"The RMCG example needs graphvision.{module}.{name}, which this graphvision does not provide "
            f"(available: {sorted(getattr(mod, '__all__', []))})"
        )
    return getattr(mod, name)


class _GridCache:
    """8-neighbour grid of one ``h x w`` map as a cached :class:`graphvision.GraphStructure`.

    One graph shared by every image of the batch (batched ``(B, N, F)`` input), with the relative
    offset ``(dy, dx)`` of each edge's source as edge attributes (for ECC).
    """

    def __init__(self) -> None:
        self.store: dict[tuple, tuple[object, Tensor]] = {}

    def get(self, h: int, w: int, device: torch.device) -> tuple[object, Tensor]:
        key = (h, w, str(device))
        if key not in self.store:
            import graphvision

            grid_graph = _gv("grid_graph", "functional")
            ei = grid_graph(h, w, connectivity=8, device=device)
            ys, xs = ei // w, ei % w
            rel = torch.stack([(ys[0] - ys[1]).float(), (xs[0] - xs[1]).float()], dim=1)
            if len(self.store) > 16:
                self.store.clear()
            self.store[key] = (graphvision.GraphStructure(ei, num_nodes=h * w), rel)
        return self.store[key]


class GraphClassifier(nn.Module):
    """Backbone feature map -> pixel graph -> graph convolutions -> pooling -> linear classifier.

    ``mi_grad``: back-propagate through the mutual-information estimator into the features (off by
    default: the graph is a function of the current features, as a kNN graph would be; on CPU the
    MI backward costs about as much as the backbone's).

    ``kind``:

    * ``gcn`` / ``gat`` (``GCNConv`` / ``GATConv`` from the backbone channels), ``ecc``
      (``EdgeConditionedConv`` with an edge network on the relative pixel offset) and ``gcnii``
      (linear input layer, ``GCN2Conv`` layers with initial residual): 8-neighbour pixel grid shared
      by the batch, global mean pooling.
    * ``rmcg``: ``MultiChannelAttention`` on the feature map, ``MutualInformationAdjacency``
      (top-k neighbours per node, MI edge weights; one graph per image), linear input layer,
      ``AttentionGCNConv`` layers with initial residual, ``AttentionPooling``.

    ``forward(image, explain=True)`` also returns per-node maps ``(B, h, w)``: the pooling scores and the
    total attention the other nodes pay to each node in the last convolution (rmcg; mean over
    heads, self-loops excluded), the node feature norm (grid baselines).
    """

    def __init__(
        self,
        kind: str,
        num_classes: int,
        backbone: str = "resnet18",
        feature_level: str = "layer2",
        hidden: int = 64,
        num_layers: int = 2,
        heads: int = 4,
        dropout: float = 0.1,
        mi_bins: int = 8,
        mi_topk: int = 8,
        attention_heads: int = 4,
        residual_alpha: float = 0.1,
        graph: str | None = None,
        mi_grad: bool = False,
        width: int = 64,
        mca: bool = True,
        pool: str = "attention",
        rmcg_conv: str = "attention",
    ) -> None:
        super().__init__()
        if pool not in ("attention", "mean") or rmcg_conv not in ("attention", "gcn"):
            raise ValueError(
                f"Expected pool in ('attention', 'mean') and rmcg_conv in ('attention', 'gcn') "
                f"(got pool={pool!r}, rmcg_conv={rmcg_conv!r})"
            )
        self.rmcg_conv = rmcg_conv
        if kind not in ("gcn", "gat", "ecc", "gcnii", "rmcg"):
            raise ValueError(f"Expected kind in ('gcn', 'gat', 'ecc', 'gcnii', 'rmcg') (got {kind!r})")
        if hidden % heads:
            raise ValueError(f"Expected hidden divisible by heads (got hidden={hidden}, heads={heads})")
        if num_layers < 1:
            raise ValueError(f"Expected num_layers >= 1 (got {num_layers})")
        self.kind = kind
        self.mi_grad = mi_grad
        self.graph = graph or ("mi" if kind == "rmcg" else "grid")
        if self.graph not in ("grid", "mi", "knn"):
            raise ValueError(f"Expected graph in ('grid', 'mi', 'knn') (got {self.graph!r})")
        self.knn_k = mi_topk
        if kind == "ecc" and self.graph != "grid":
            raise ValueError("Expected graph='grid' for ecc (its edge attributes are pixel offsets)")
        self.backbone = build_backbone(backbone, feature_level, width)
        c = self.backbone.out_channels
        self.hidden, self.num_layers, self.dropout = hidden, num_layers, dropout
        self.grid = _GridCache()
        self.mca = _gv("MultiChannelAttention")(c, heads=attention_heads) if kind == "rmcg" and mca else None
        self.mi = (
            _gv("MutualInformationAdjacency")(bins=mi_bins, top_k=mi_topk, output="sparse")
            if self.graph == "mi"
            else None
        )
        self.lin_in = nn.Linear(c, hidden) if kind in ("ecc", "gcnii", "rmcg") else None
        dims = [hidden if self.lin_in is not None else c] + [hidden] * num_layers
        convs = nn.ModuleList()
        for i in range(num_layers):
            if kind == "gcn":
                convs.append(_gv("GCNConv")(dims[i], dims[i + 1]))
            elif kind == "gat":
                convs.append(_gv("GATConv")(dims[i], dims[i + 1] // heads, heads=heads))
            elif kind == "ecc":
                edge_nn = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, dims[i] * dims[i + 1]))
                convs.append(_gv("EdgeConditionedConv")(dims[i], dims[i + 1], edge_nn, aggr="mean"))
            elif kind == "gcnii":
                convs.append(_gv("GCN2Conv")(hidden, alpha=residual_alpha, theta=0.5, layer=i + 1))
            elif rmcg_conv == "gcn":  # ablation: plain GCN in place of the attention-based GCN
                convs.append(_gv("GCNConv")(dims[i], dims[i + 1]))
            else:
                convs.append(_gv("AttentionGCNConv")(dims[i], dims[i + 1] // heads, heads=heads, alpha=residual_alpha))
        self.convs = convs
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(num_layers))
        self.pool = (
            _gv("AttentionPooling")(hidden, hidden_channels=hidden) if kind == "rmcg" and pool == "attention" else None
        )
        self.classifier = nn.Linear(hidden, num_classes)

    @property
    def last_layer(self) -> nn.Linear:
        """The final linear layer (its weight is the ``W_last`` of the loss)."""
        return self.classifier

    def forward(self, image: Tensor, explain: bool = False):
        fmap = self.backbone.features(image)
        if self.mca is not None:
            fmap = self.mca(fmap)
        b, c, h, w = fmap.shape
        n = h * w
        x = fmap.flatten(2).transpose(1, 2)  # (B, N, C): node b*N + y*w + x is pixel (y, x) of image b
        edge_weight = edge_attr = None
        if self.graph == "grid":
            edge_index, edge_attr = self.grid.get(h, w, x.device)  # one graph shared by the batch
        elif self.graph == "knn":  # ablation: kNN in feature space (per image, offset over B*N nodes)
            edge_index = _gv("knn_graph", "functional")(x.detach(), self.knn_k)
            x = x.reshape(b * n, c)
        else:
            # per-image graphs, offset over the flat B*N nodes; by default the graph is built from the
            # features without back-propagating through the MI estimator (mi_grad=True does)
            edge_index, edge_weight = self.mi(x if self.mi_grad else x.detach())
            x = x.reshape(b * n, c)
        if self.lin_in is not None:
            x = F.relu(self.lin_in(F.dropout(x, self.dropout, self.training)))
        x0 = x
        node_attention = None
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            h_in = F.dropout(x, self.dropout, self.training)
            if self.kind == "gcn":
                out = conv(h_in, edge_index)
            elif self.kind == "gat":
                out = conv(h_in, edge_index)
            elif self.kind == "ecc":
                out = conv(h_in, edge_index, edge_attr)
            elif self.kind == "gcnii":
                out = conv(h_in, x0, edge_index)
            elif self.rmcg_conv == "gcn":
                out = conv(h_in, edge_index, edge_weight)
            elif explain and i == len(self.convs) - 1:
                out, (att_ei, att) = conv(h_in, edge_index, edge_weight, x0=x0, return_attention_weights=True)
                a = att.mean(-1)  # mean over heads: (E + N,), or (B, E + N) for the grid shared by the batch
                keep = att_ei[0] != att_ei[1]  # attention the other nodes pay to each node (as a source)
                if a.dim() == 2:
                    node_attention = torch.zeros(b, n, device=x.device, dtype=a.dtype).index_add_(
                        1, att_ei[0][keep], a[:, keep]
                    ).reshape(b * n)
                else:
                    node_attention = torch.zeros(b * n, device=x.device, dtype=a.dtype).index_add_(
                        0, att_ei[0][keep], a[keep]
                    )
            else:
                out = conv(h_in, edge_index, edge_weight, x0=x0)
            x = F.relu(norm(out))
        scores = None
        if self.pool is not None:
            pooled, scores = self.pool(
                x.reshape(b * n, -1),
                torch.arange(b, device=x.device).repeat_interleave(n),
                size=b,
                return_attention_weights=True,
            )
            scores = scores.mean(-1)
        else:
            pooled = _gv("global_mean_pool", "functional")(x.reshape(b, n, -1))  # (B, N, C) -> (B, C)
        logits = self.classifier(F.dropout(pooled, self.dropout, self.training))
        if not explain:
            return logits
        maps: dict[str, Tensor] = {}
        if scores is not None:
            maps["pooling score"] = scores.reshape(b, h, w)
        if node_attention is not None:
            maps["node attention"] = node_attention.reshape(b, h, w)
        if not maps:
            maps["node feature norm"] = x.reshape(b, n, -1).norm(dim=-1).reshape(b, h, w)
        return logits, maps


class CNNClassifier(nn.Module):
    """The CNN baselines: ResNet18 (global average pool + fc) and AlexNet."""

    def __init__(self, arch: str, num_classes: int, width: int = 64) -> None:
        super().__init__()
        self.arch = arch
        if arch == "resnet18":
            self.net = ResNet18(num_classes, "layer4", width=width)
        elif arch == "alexnet":
            self.net = AlexNet(num_classes)
        else:
            raise ValueError(f"Expected arch in ('resnet18', 'alexnet') (got {arch!r})")

    @property
    def backbone(self) -> nn.Module:
        return self.net

    @property
    def last_layer(self) -> nn.Linear:
        return self.net.fc if self.arch == "resnet18" else self.net.classifier[-1]

    def forward(self, image: Tensor, explain: bool = False):
        logits = self.net(image)
        if not explain:
            return logits
        return logits, {}


def create_model(
    name: str,
    num_classes: int,
    backbone: str = "resnet18",
    feature_level: str = "layer2",
    pretrained: bool = False,
    width: int = 64,
    **kwargs,
) -> nn.Module:
    """Build ``name`` (one of :data:`MODELS`) for ``num_classes`` classes.

    Args:
        name: ``resnet18``, ``alexnet``, ``resnet18-gcn``, ``ecc``, ``resnet18-gat``, ``gcnii`` or ``rmcg``.
        num_classes: Number of classes.
        backbone: Feature extractor of the graph models: ``resnet18`` or ``alexnet`` (``gcnii`` and
            ``ecc`` accept both; the ``resnet18-*`` models and ``rmcg`` use ResNet18).
        feature_level: ResNet18 stage whose map becomes the pixel graph (``layer1``..``layer4``).
        pretrained: copy torchvision's ImageNet weights into the backbone when possible.
        width: ResNet18 stem width (64 standard; smaller for cheap CPU runs; pretrained needs 64).
        **kwargs: graph-head options (``hidden``, ``num_layers``, ``heads``, ``dropout``, ``mi_bins``,
            ``mi_topk``, ``attention_heads``, ``graph``).

    The returned module maps ``(B, 3, S, S)`` float images to ``(B, num_classes)`` logits and has a
    ``last_layer`` (the final :class:`torch.nn.Linear`, whose weight the loss regularises) and a
    ``pretrained_status`` string.
    """
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; expected one of {MODELS}")
    if num_classes < 2:
        raise ValueError(f"Expected num_classes >= 2 (got {num_classes})")
    if name in ("resnet18", "alexnet"):
        model: nn.Module = CNNClassifier(name, num_classes, width=width)
        arch = name
    else:
        if name.startswith("resnet18-") or name == "rmcg":
            backbone = "resnet18"
        kind = {"resnet18-gcn": "gcn", "resnet18-gat": "gat", "ecc": "ecc", "gcnii": "gcnii", "rmcg": "rmcg"}[name]
        model = GraphClassifier(
            kind, num_classes, backbone=backbone, feature_level=feature_level, width=width, **kwargs
        )
        arch = backbone
    model.pretrained_status = load_pretrained(model.backbone, arch) if pretrained else "random init"
    return model


def regularized_loss(
    logits: Tensor, target: Tensor, last_layer: nn.Linear, lambda_l2: float, weight: Tensor | None = None
) -> Tensor:
    """Cross-entropy (optionally class-``weight``-ed) + ``lambda_l2 / 2 * ||W_last||_F^2`` (final weight only)."""
    ce = F.cross_entropy(logits, target, weight=weight)
    if lambda_l2 == 0:
        return ce
    return ce + 0.5 * lambda_l2 * last_layer.weight.pow(2).sum()


ModelFactory = Callable[..., nn.Module]
