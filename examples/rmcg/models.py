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
    2x2 maps). ``features(x)`` returns the map; ``forward`` adds global average pooling and ``fc``
    when ``num_classes`` is given.
    """

    def __init__(self, num_classes: int | None = None, feature_level: str = "layer4", in_channels: int = 3) -> None:
        super().__init__()
        if feature_level not in FEATURE_LEVELS:
            raise ValueError(f"Expected feature_level in {FEATURE_LEVELS} (got {feature_level!r})")
        self.feature_level = feature_level
        self.out_channels = _RESNET_CHANNELS[feature_level]
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        depth = FEATURE_LEVELS.index(feature_level) + 1
        inplanes = 64
        for i, planes in enumerate((64, 128, 256, 512)[:depth]):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(inplanes, planes, stride), BasicBlock(planes, planes)))
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
            raise ValueError(
                f"Expected 'image' of shape (B, {self.conv1.in_channels}, H, W) (got {tuple(x.shape)})"
            )
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
            raise ValueError(f"Expected 'image' of shape (B, 3, H, W) with H, W >= 16 for AlexNet (got {tuple(x.shape)})")
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


def build_backbone(arch: str, feature_level: str = "layer3") -> nn.Module:
    """``resnet18`` truncated at ``feature_level`` or ``alexnet`` conv features."""
    if arch == "resnet18":
        return ResNet18(None, feature_level)
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


class _Cache:
    """Small cache of grid edge sets keyed by (h, w, batch, device)."""

    def __init__(self) -> None:
        self.store: dict[tuple, tuple[Tensor, Tensor]] = {}

    def grid(self, h: int, w: int, batch: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """Batched 8-neighbour grid edges (offset per image) and relative offsets (dy, dx) per edge."""
        key = (h, w, batch, str(device))
        if key not in self.store:
            grid_graph = _gv("grid_graph", "functional")
            ei = grid_graph(h, w, connectivity=8, device=device)
            n = h * w
            ys, xs = ei // w, ei % w
            rel = torch.stack([(ys[0] - ys[1]).float(), (xs[0] - xs[1]).float()], dim=1)
            offs = torch.arange(batch, device=device).repeat_interleave(ei.shape[1]) * n
            ei_b = ei.repeat(1, batch) + offs
            rel_b = rel.repeat(batch, 1)
            if len(self.store) > 16:
                self.store.clear()
            self.store[key] = (ei_b, rel_b)
        return self.store[key]


class GraphClassifier(nn.Module):
    """Backbone feature map -> pixel graph -> graph convolutions -> pooling -> linear classifier.

    ``kind`` selects the convolution and graph: ``gcn`` / ``gat`` / ``ecc`` / ``gcnii`` on the 8-neighbour
    pixel grid, ``rmcg`` (multi-channel attention, mutual-information graph, attention GCN, attention
    pooling). ``forward(image, explain=True)`` also returns per-node maps ``(B, h, w)``.
    """

    def __init__(
        self,
        kind: str,
        num_classes: int,
        backbone: str = "resnet18",
        feature_level: str = "layer3",
        hidden: int = 64,
        num_layers: int = 2,
        heads: int = 4,
        dropout: float = 0.1,
        mi_bins: int = 16,
        mi_topk: int = 8,
        attention_heads: int = 4,
        graph: str | None = None,
    ) -> None:
        super().__init__()
        if kind not in ("gcn", "gat", "ecc", "gcnii", "rmcg"):
            raise ValueError(f"Expected kind in ('gcn', 'gat', 'ecc', 'gcnii', 'rmcg') (got {kind!r})")
        self.kind = kind
        self.graph = graph or ("mi" if kind == "rmcg" else "grid")
        if self.graph not in ("grid", "mi"):
            raise ValueError(f"Expected graph in ('grid', 'mi') (got {self.graph!r})")
        self.backbone = build_backbone(backbone, feature_level)
        self.backbone_name = backbone
        c = self.backbone.out_channels
        self.hidden, self.num_layers, self.dropout = hidden, num_layers, dropout
        self.mi_topk = mi_topk
        self.cache = _Cache()
        self.mca = None
        self.mi = None
        if kind == "rmcg":
            self.mca = _gv("MultiChannelAttention")(c, heads=attention_heads)
        if self.graph == "mi":
            self.mi = _gv("MutualInformationAdjacency")(bins=mi_bins, topk=mi_topk, output="sparse")
        convs = nn.ModuleList()
        if kind == "gcnii":
            self.lin_in = nn.Linear(c, hidden)
            conv = _gv("GCN2Conv")
            for layer in range(num_layers):
                convs.append(conv(hidden, alpha=0.1, theta=0.5, layer=layer + 1))
        else:
            dims = [c] + [hidden] * num_layers
            for i in range(num_layers):
                if kind == "gcn":
                    convs.append(_gv("GCNConv")(dims[i], dims[i + 1]))
                elif kind == "gat":
                    convs.append(_gv("GATConv")(dims[i], dims[i + 1] // heads, heads=heads))
                elif kind == "ecc":
                    convs.append(_gv("EdgeConditionedConv")(dims[i], dims[i + 1], edge_dim=2))
                else:  # rmcg
                    convs.append(
                        _gv("AttentionGCNConv")(dims[i], dims[i + 1] // heads, heads=heads)
                    )
        self.convs = convs
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(num_layers))
        if kind == "rmcg":
            self.pool = _gv("AttentionPooling")(hidden)
        else:
            self.pool = None
        self.classifier = nn.Linear(hidden, num_classes)

    @property
    def last_layer(self) -> nn.Linear:
        return self.classifier

    def _graph(self, x: Tensor, h: int, w: int) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Edges over the flattened batch (node ``b*h*w + y*w + x``), edge weights, edge attributes."""
        b, n, _ = x.shape
        if self.graph == "grid":
            ei, rel = self.cache.grid(h, w, b, x.device)
            return ei, None, rel
        ei, ew = self.mi(x)
        return ei, ew, None

    def forward(self, image: Tensor, explain: bool = False):
        fmap = self.backbone.features(image)
        if self.mca is not None:
            fmap = self.mca(fmap)
        b, c, h, w = fmap.shape
        n = h * w
        nodes = fmap.flatten(2).transpose(1, 2)  # (B, N, C)
        edge_index, edge_weight, edge_attr = self._graph(nodes, h, w)
        x = nodes.reshape(b * n, c)
        batch = torch.arange(b, device=x.device).repeat_interleave(n)
        attn_nodes = None
        if self.kind == "gcnii":
            x = x0 = F.relu(self.lin_in(F.dropout(x, self.dropout, self.training)))
            for conv, norm in zip(self.convs, self.norms):
                x = F.dropout(x, self.dropout, self.training)
                x = F.relu(norm(conv(x, x0, edge_index, edge_weight)))
        else:
            for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
                x = F.dropout(x, self.dropout, self.training)
                if self.kind == "gcn":
                    out = conv(x, edge_index, edge_weight)
                elif self.kind == "gat":
                    out = conv(x, edge_index)
                elif self.kind == "ecc":
                    out = conv(x, edge_index, edge_attr)
                else:
                    last = i == len(self.convs) - 1
                    if explain and last:
                        out, (att_ei, att) = conv(x, edge_index, edge_weight, return_attention=True)
                        # attention each node *gives*: mean over heads of the attention on its out-edges
                        a = att.mean(-1) if att.dim() == 2 else att
                        attn_nodes = torch.zeros(b * n, device=x.device, dtype=a.dtype).index_add_(0, att_ei[0], a)
                    else:
                        out = conv(x, edge_index, edge_weight)
                x = F.relu(norm(out))
        if self.pool is not None:
            pooled, scores = self.pool(x, batch, num_graphs=b, return_scores=True)
            scores = scores.mean(-1) if scores.dim() == 2 else scores
        else:
            pooled = _gv("global_mean_pool", "functional")(x, batch, num_graphs=b)
            scores = None
        logits = self.classifier(F.dropout(pooled, self.dropout, self.training))
        if not explain:
            return logits
        maps = {}
        if scores is not None:
            maps["pooling score"] = scores.reshape(b, h, w)
        if attn_nodes is not None:
            maps["node attention"] = attn_nodes.reshape(b, h, w)
        if not maps:  # baselines: feature activation norm per node
            maps["feature norm"] = x.norm(dim=-1).reshape(b, h, w)
        return logits, maps


class CNNClassifier(nn.Module):
    """The CNN baselines: ResNet18 (global average pool + fc) and AlexNet."""

    def __init__(self, arch: str, num_classes: int) -> None:
        super().__init__()
        self.arch = arch
        if arch == "resnet18":
            self.net = ResNet18(num_classes, "layer4")
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
    feature_level: str = "layer3",
    pretrained: bool = False,
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
        model: nn.Module = CNNClassifier(name, num_classes)
        arch = name
    else:
        if name.startswith("resnet18-") or name == "rmcg":
            backbone = "resnet18"
        kind = {"resnet18-gcn": "gcn", "resnet18-gat": "gat", "ecc": "ecc", "gcnii": "gcnii", "rmcg": "rmcg"}[name]
        model = GraphClassifier(kind, num_classes, backbone=backbone, feature_level=feature_level, **kwargs)
        arch = backbone
    model.pretrained_status = load_pretrained(model.backbone, arch) if pretrained else "random init"
    return model


def regularized_loss(logits: Tensor, target: Tensor, last_layer: nn.Linear, lambda_l2: float) -> Tensor:
    """Cross-entropy + ``lambda_l2 / 2 * ||W_last||_F^2`` (final layer's weight only, not its bias)."""
    ce = F.cross_entropy(logits, target)
    if lambda_l2 == 0:
        return ce
    return ce + 0.5 * lambda_l2 * last_layer.weight.pow(2).sum()


ModelFactory = Callable[..., nn.Module]
