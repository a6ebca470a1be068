"""Plain-PyTorch Vision GNN blocks written the way the ViG reference code does them (never edited to match).

Follows ``gcn_lib`` of https://github.com/huawei-noah/Efficient-AI-Backbones (vig_pytorch):
features in ``(B, C, N, 1)`` layout, ``pairwise_distance`` of L2-normalised features +
``topk(-dist)``, ``edge_index[:, :, :, ::dilation]``, ``batched_index_select`` gathers of both
``x_i`` and ``x_j``, ``BasicConv`` = grouped 1x1 conv + BN + act. Same module names, so a
``graphvision.nn.Grapher`` state_dict loads with ``strict=True``. Used by the tests and by
``benchmarks/bench_vig.py`` (the baseline cannot drift from what is tested).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pairwise_distance(x):
    with torch.no_grad():
        x_inner = -2 * torch.matmul(x, x.transpose(2, 1))
        x_square = torch.sum(torch.mul(x, x), dim=-1, keepdim=True)
        return x_square + x_inner + x_square.transpose(2, 1)


def dense_knn_matrix(x, k=16, relative_pos=None):
    """x (B, C, N, 1) -> edge_index (2, B, N, k): [0] neighbours, [1] centres."""
    with torch.no_grad():
        x = x.transpose(2, 1).squeeze(-1)
        batch_size, n_points, _ = x.shape
        dist = pairwise_distance(x.detach())
        if relative_pos is not None:
            dist += relative_pos
        _, nn_idx = torch.topk(-dist, k=k)
        center_idx = torch.arange(0, n_points, device=x.device).repeat(batch_size, k, 1).transpose(2, 1)
    return torch.stack((nn_idx, center_idx), dim=0)


class DenseDilatedKnnGraph(nn.Module):
    def __init__(self, k=9, dilation=1):
        super().__init__()
        self.k, self.dilation = k, dilation

    def forward(self, x, relative_pos=None):
        x = F.normalize(x, p=2.0, dim=1)
        edge_index = dense_knn_matrix(x, self.k * self.dilation, relative_pos)
        return edge_index[:, :, :, :: self.dilation]


def batched_index_select(x, idx):
    """x (B, C, N, 1), idx (B, N, k) -> (B, C, N, k)."""
    batch_size, num_dims, num_vertices_reduced = x.shape[:3]
    _, num_vertices, k = idx.shape
    idx_base = torch.arange(0, batch_size, device=idx.device).view(-1, 1, 1) * num_vertices_reduced
    idx = (idx + idx_base).contiguous().view(-1)
    x = x.transpose(2, 1)
    feature = x.contiguous().view(batch_size * num_vertices_reduced, -1)[idx, :]
    return feature.view(batch_size, num_vertices, k, num_dims).permute(0, 3, 1, 2).contiguous()


def act_layer(act):
    return {"relu": nn.ReLU(), "gelu": nn.GELU()}[act]


class BasicConv(nn.Sequential):
    def __init__(self, channels, act="relu", norm=None, bias=True):
        m = []
        for i in range(1, len(channels)):
            m.append(nn.Conv2d(channels[i - 1], channels[i], 1, bias=bias, groups=4))
            if norm == "batch":
                m.append(nn.BatchNorm2d(channels[-1], affine=True))
            if act is not None:
                m.append(act_layer(act))
        super().__init__(*m)


class MRConv2d(nn.Module):
    def __init__(self, in_channels, out_channels, act="relu", norm=None, bias=True):
        super().__init__()
        self.nn = BasicConv([in_channels * 2, out_channels], act, norm, bias)

    def forward(self, x, edge_index):
        x_i = batched_index_select(x, edge_index[1])
        x_j = batched_index_select(x, edge_index[0])
        x_j, _ = torch.max(x_j - x_i, -1, keepdim=True)
        b, c, n, _ = x.shape
        x = torch.cat([x.unsqueeze(2), x_j.unsqueeze(2)], dim=2).reshape(b, 2 * c, n, _)
        return self.nn(x)


class EdgeConv2d(nn.Module):
    def __init__(self, in_channels, out_channels, act="relu", norm=None, bias=True):
        super().__init__()
        self.nn = BasicConv([in_channels * 2, out_channels], act, norm, bias)

    def forward(self, x, edge_index):
        x_i = batched_index_select(x, edge_index[1])
        x_j = batched_index_select(x, edge_index[0])
        max_value, _ = torch.max(self.nn(torch.cat([x_i, x_j - x_i], dim=1)), -1, keepdim=True)
        return max_value


class DyGraphConv2d(nn.Module):
    def __init__(self, in_channels, out_channels, k=9, dilation=1, conv="mr", act="gelu", norm="batch", bias=True):
        super().__init__()
        self.gconv = (MRConv2d if conv == "mr" else EdgeConv2d)(in_channels, out_channels, act, norm, bias)
        self.dilated_knn_graph = DenseDilatedKnnGraph(k, dilation)

    def forward(self, x, relative_pos=None):
        b, c, h, w = x.shape
        x = x.reshape(b, c, -1, 1).contiguous()
        edge_index = self.dilated_knn_graph(x, relative_pos)
        x = self.gconv(x, edge_index)
        return x.reshape(b, -1, h, w).contiguous()


class Grapher(nn.Module):
    """ViG's Grapher (r=1, no drop path); ``relative_pos`` is the (N, N) term added to distances."""

    def __init__(self, in_channels, kernel_size=9, dilation=1, conv="mr", act="gelu", norm="batch", bias=True):
        super().__init__()
        self.fc1 = nn.Sequential(nn.Conv2d(in_channels, in_channels, 1), nn.BatchNorm2d(in_channels))
        self.graph_conv = DyGraphConv2d(in_channels, in_channels * 2, kernel_size, dilation, conv, act, norm, bias)
        self.fc2 = nn.Sequential(nn.Conv2d(in_channels * 2, in_channels, 1), nn.BatchNorm2d(in_channels))

    def forward(self, x, relative_pos=None):
        tmp = x
        x = self.fc1(x)
        x = self.graph_conv(x, None if relative_pos is None else relative_pos.unsqueeze(0))
        x = self.fc2(x)
        return x + tmp


class FFN(nn.Module):
    def __init__(self, in_features, hidden_features=None, act="gelu"):
        super().__init__()
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Sequential(nn.Conv2d(in_features, hidden_features, 1), nn.BatchNorm2d(hidden_features))
        self.act = act_layer(act)
        self.fc2 = nn.Sequential(nn.Conv2d(hidden_features, in_features, 1), nn.BatchNorm2d(in_features))

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x))) + x
