"""RMCG example models: every model trains a step on real patches; the loss term; batch independence."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from rmcg import models as M  # noqa: E402
from rmcg.data import load_image  # noqa: E402

IDC = Path(os.environ.get("GRAPHVISION_IDC_DATA", ROOT.parent / "shared" / "data" / "breast_idc_patches"))
needs_idc = pytest.mark.skipif(
    not (IDC / "MANIFEST.csv").is_file(), reason="shared breast_idc_patches data not present"
)

TINY = dict(hidden=16, num_layers=2, heads=2, attention_heads=2, dropout=0.1, mi_bins=8, mi_topk=4)


def tiny_model(name: str, num_classes: int = 2, **kw) -> torch.nn.Module:
    extra = dict(TINY) if name in M.GRAPH_MODELS else {}
    extra.update(kw)
    return M.create_model(name, num_classes, width=16, **extra)


@pytest.fixture(scope="module")
def patches() -> tuple[torch.Tensor, torch.Tensor]:
    """Two IDC and two non-IDC real 50x50 patches, normalised floats (B=4)."""
    if not (IDC / "MANIFEST.csv").is_file():
        pytest.skip("shared breast_idc_patches data not present")
    paths = sorted((IDC / "0_non_idc").glob("*.png"))[:2] + sorted((IDC / "1_idc").glob("*.png"))[:2]
    x = torch.stack([load_image(p, None) for p in paths]).float() / 255
    x = (x - x.mean(dim=(0, 2, 3), keepdim=True)) / x.std(dim=(0, 2, 3), keepdim=True)
    return x, torch.tensor([0, 0, 1, 1])


@needs_idc
@pytest.mark.parametrize("name", M.MODELS)
def test_every_model_forward_backward_on_real_patches(name: str, patches) -> None:
    x, y = patches
    torch.manual_seed(0)
    model = tiny_model(name)
    model.train()
    logits = model(x)
    assert logits.shape == (4, 2) and torch.isfinite(logits).all()
    loss = M.regularized_loss(logits, y, model.last_layer, 1e-2)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    # one optimiser step lowers the loss on this batch (the graph path is really trained)
    model.eval()
    with torch.no_grad():
        before = M.regularized_loss(model(x), y, model.last_layer, 1e-2)
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    model.zero_grad()
    M.regularized_loss(model(x), y, model.last_layer, 1e-2).backward()
    opt.step()
    with torch.no_grad():
        after = M.regularized_loss(model(x), y, model.last_layer, 1e-2)
    assert after < before


@needs_idc
@pytest.mark.parametrize("name", M.GRAPH_MODELS)
def test_explain_maps(name: str, patches) -> None:
    x, _ = patches
    model = tiny_model(name).eval()
    with torch.no_grad():
        logits, maps = model(x, explain=True)
    assert logits.shape == (4, 2) and maps
    for m in maps.values():
        assert m.shape == (4, 7, 7)  # 50 px at layer2 (stride 8) -> 7x7 pixel nodes
        assert torch.isfinite(m).all()
    if name == "rmcg":
        assert set(maps) == {"pooling score", "node attention"}
        torch.testing.assert_close(maps["pooling score"].sum(dim=(1, 2)), torch.ones(4))
        assert (maps["node attention"] >= 0).all()


@needs_idc
@pytest.mark.parametrize("name", ["rmcg", "resnet18-gcn", "ecc"])
def test_graph_models_do_not_mix_images(name: str, patches) -> None:
    """Batched per-image graphs (MI) and the shared grid: each image's logits equal its own run."""
    x, _ = patches
    model = tiny_model(name).eval()
    with torch.no_grad():
        together = model(x)
        alone = torch.cat([model(x[i : i + 1]) for i in range(4)])
        flipped = model(x.flip(0)).flip(0)
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(together, flipped, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", M.MODELS)
def test_loss_term_is_half_lambda_squared_norm_of_last_weight(name: str) -> None:
    torch.manual_seed(0)
    model = tiny_model(name, num_classes=3)
    last = model.last_layer
    assert isinstance(last, torch.nn.Linear) and last.out_features == 3
    logits = torch.randn(5, 3, requires_grad=True)
    target = torch.tensor([0, 1, 2, 1, 0])
    lam = 0.37
    ce = torch.nn.functional.cross_entropy(logits, target)
    total = M.regularized_loss(logits, target, last, lam)
    expected = lam / 2 * sum(float(w) ** 2 for w in last.weight.detach().flatten())
    assert (total - ce).item() == pytest.approx(expected, rel=1e-5)
    total.backward()
    torch.testing.assert_close(last.weight.grad, lam * last.weight.detach())  # d/dW of lambda/2 ||W||^2
    assert last.bias.grad is None  # the bias is not regularised
    assert M.regularized_loss(logits, target, last, 0.0).item() == pytest.approx(ce.item())


def test_last_layer_produces_the_logits() -> None:
    torch.manual_seed(0)
    for name in ("resnet18", "alexnet", "rmcg"):
        model = tiny_model(name, num_classes=3).eval()
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            before = model(x)
            model.last_layer.bias.add_(1.5)
            after = model(x)
        torch.testing.assert_close(after - before, torch.full_like(before, 1.5))


def test_resnet18_matches_torchvision_layout() -> None:
    net = M.ResNet18(10, "layer4")
    keys = set(net.state_dict())
    # parameter names of torchvision.models.resnet18 (a sample), so --pretrained copies them by name
    for k in (
        "conv1.weight",
        "bn1.running_mean",
        "layer1.0.conv1.weight",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.bias",
        "layer4.1.bn2.weight",
        "fc.weight",
        "fc.bias",
    ):
        assert k in keys
    assert sum(p.numel() for p in net.parameters()) == 11_181_642  # torchvision resnet18(num_classes=10)
    sizes = {lvl: M.ResNet18(None, lvl).features(torch.randn(1, 3, 50, 50)).shape for lvl in M.FEATURE_LEVELS}
    assert sizes == {
        "layer1": (1, 64, 13, 13),
        "layer2": (1, 128, 7, 7),
        "layer3": (1, 256, 4, 4),
        "layer4": (1, 512, 2, 2),
    }
    alex = M.AlexNet(10)
    assert sum(p.numel() for p in alex.parameters()) == 57_044_810  # torchvision alexnet(num_classes=10)
    assert alex(torch.randn(2, 3, 50, 50)).shape == (2, 10)
    assert alex(torch.randn(2, 3, 16, 16)).shape == (2, 10)


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="Unknown model 'vgg'"):
        M.create_model("vgg", 2)
    with pytest.raises(ValueError, match="num_classes >= 2"):
        M.create_model("rmcg", 1)
    with pytest.raises(ValueError, match="feature_level in"):
        M.create_model("rmcg", 2, feature_level="layer9")
    with pytest.raises(ValueError, match="hidden divisible by heads"):
        M.create_model("rmcg", 2, hidden=10, heads=4)
    with pytest.raises(ValueError, match=r"Expected 'image' of shape \(B, 3, H, W\)"):
        tiny_model("rmcg")(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match="H, W >= 16"):
        M.create_model("alexnet", 2)(torch.randn(1, 3, 8, 8))


def test_pretrained_without_torchvision_says_why() -> None:
    try:
        import torchvision  # noqa: F401

        pytest.skip("torchvision is installed: the fallback message is not exercised")
    except Exception:
        pass
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        model = M.create_model("resnet18", 2, pretrained=True)
    assert "torchvision is not importable" in model.pretrained_status
    assert any("training resnet18 from scratch" in str(w.message) for w in rec)


@pytest.mark.parametrize(
    "ablation",
    [{"mca": False}, {"pool": "mean"}, {"rmcg_conv": "gcn"}, {"graph": "knn"}, {"graph": "grid"}],
    ids=["no-mca", "mean-pool", "gcn-conv", "knn-graph", "grid-graph"],
)
def test_rmcg_ablations_forward_backward_and_explain(ablation):
    """Each RMCG ablation of docs/rmcg_results.md builds, trains one step and draws its maps."""
    torch.manual_seed(0)
    model = M.create_model("rmcg", 2, width=8, **ablation)
    logits, maps = model(torch.rand(3, 3, 32, 32), explain=True)
    assert logits.shape == (3, 2) and maps and all(m.shape == (3, 4, 4) for m in maps.values())
    logits.sum().backward()
    assert all(p.grad is not None for p in model.classifier.parameters())
