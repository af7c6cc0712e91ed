"""FID and LPIPS produce numbers when their weights are on the machine (issue 21, section 5).

The tests write each network's weights in exactly the published layout (pytorch-fid's
``pt_inception-2015-12-05-6726825d.pth`` and torchvision's ``alexnet-owt-7be5be79.pth``, the same
key names and float32 tensors, randomly initialised) into a local torch hub folder
(``$TORCH_HOME/hub/checkpoints``), so the metrics load them as they would the real files, with no
download. Values are checked against closed forms computed independently of the metric code."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.methods import Unavailable
from metrics.fid import FID_WEIGHTS, fid, inception_features
from metrics.lpips_distance import ALEXNET_WEIGHTS, lpips_network, nearest_lpips


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A local torch hub whose checkpoints folder the metrics read (nothing downloads)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    assert torch.hub.get_dir() == str(tmp_path / "hub")
    return folder


def write_fid_inception(folder, monkeypatch) -> None:
    """pytorch-fid's FID Inception, built without loading its weights, saved under its name."""
    import torchvision
    from pytorch_fid import inception

    with monkeypatch.context() as patch:
        patch.setattr(inception, "load_state_dict_from_url", lambda *args, **kwargs: None)
        patch.setattr(torchvision.models.Inception3, "load_state_dict", lambda *args, **kw: None)
        torch.manual_seed(0)
        network = inception.fid_inception_v3()
    torch.save(network.state_dict(), folder / FID_WEIGHTS)


def independent_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + tr S_a + tr S_b - 2 sum sqrt(eig(S_a S_b)): the eigenvalues of a
    product of two PSD matrices are real and non-negative, so tr (S_a S_b)^(1/2) is their
    square roots' sum (no matrix square root)."""
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    eig = np.linalg.eigvals(sa @ sb).real.clip(min=0)
    diff = a.mean(0) - b.mean(0)
    return float(diff @ diff + np.trace(sa) + np.trace(sb) - 2 * np.sqrt(eig).sum())


@pytest.mark.slow
def test_fid_with_local_weights_is_the_closed_form_frechet_distance(hub, monkeypatch):
    write_fid_inception(hub, monkeypatch)
    generator = torch.Generator().manual_seed(0)
    private = torch.rand(6, 3, 32, 32, generator=generator)
    shifted = (private * 0.5 + 0.4).clamp(0, 1)

    value = fid(shifted, private, offline=True)
    assert not isinstance(value, Unavailable), value
    a, b = inception_features(shifted), inception_features(private)
    assert a.shape == (6, 2048)
    assert value == pytest.approx(independent_frechet(a, b), rel=1e-3)
    assert value > 0
    same = fid(private, private, offline=True)
    assert abs(same) < 1e-3 * value  # a set against itself: 0 up to the matrix square root


def test_fid_with_a_corrupt_weights_file_is_unavailable_with_the_reason(hub):
    (hub / FID_WEIGHTS).write_bytes(b"not a checkpoint")
    value = fid(torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32), offline=True)
    assert isinstance(value, Unavailable) and "could not be loaded" in value.reason


def test_lpips_with_local_weights_is_zero_on_a_private_image_and_takes_the_nearest(hub):
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet().state_dict(), hub / ALEXNET_WEIGHTS)
    generator = torch.Generator().manual_seed(1)
    private = torch.rand(4, 3, 64, 64, generator=generator)
    private_labels = torch.tensor([0, 0, 1, 1])
    exact = private[1:2]  # identical to a private image of class 0: distance exactly 0
    noisy = (private[2:3] + 0.1 * torch.randn(1, 3, 64, 64, generator=generator)).clamp(0, 1)

    assert nearest_lpips(exact, torch.tensor([0]), private, private_labels, True) == 0.0
    value = nearest_lpips(noisy, torch.tensor([1]), private, private_labels, True)
    model = lpips_network()  # the same network; the nearest-of-its-class mean is under test
    with torch.no_grad():
        to_each = [model(noisy * 2 - 1, private[i : i + 1] * 2 - 1).item() for i in (2, 3)]
    assert value == pytest.approx(min(to_each), rel=1e-5)
    assert 0 < value < max(to_each)  # the nearest of its own class, not the other image
    both = nearest_lpips(
        torch.cat([exact, noisy]), torch.tensor([0, 1]), private, private_labels, True
    )
    assert both == pytest.approx(value / 2, rel=1e-5)  # the mean over reconstructions


def test_lpips_without_weights_offline_is_unavailable_never_a_number(hub):
    value = nearest_lpips(
        torch.rand(1, 3, 64, 64),
        torch.tensor([0]),
        torch.rand(2, 3, 64, 64),
        torch.tensor([0, 0]),
        True,
    )
    assert isinstance(value, Unavailable) and ALEXNET_WEIGHTS in value.reason


def test_a_metric_network_is_built_once_per_weights_file_and_a_failure_is_kept(tmp_path):
    from metrics._pretrained import load_once

    weights, built = tmp_path / "net.pth", []

    def build():
        built.append(weights.exists())
        if not weights.exists():
            raise FileNotFoundError(f"no {weights.name}")
        return object()

    for _ in range(2):  # a second cell of the same worker neither rebuilds nor retries
        with pytest.raises(FileNotFoundError, match="no net.pth"):
            load_once(weights, build)
    assert built == [False]
    weights.write_bytes(b"1")  # the file appears: loaded, then kept
    network = load_once(weights, build)
    assert load_once(weights, build) is network and built == [False, True]
    weights.write_bytes(b"22")  # replaced: loaded anew
    assert load_once(weights, build) is not network and built == [False, True, True]


def test_a_cell_told_not_to_download_is_unavailable_at_once_naming_the_file(hub, monkeypatch):
    """A sweep's cell (``weight_downloads(False)``: its launcher has checked the weights) never
    tries a download, even online; the reason says where to put the file."""
    from metrics._pretrained import weight_downloads

    monkeypatch.setattr(
        torch.hub, "download_url_to_file", lambda *args, **kwargs: pytest.fail("a download")
    )
    images = torch.rand(3, 3, 32, 32)
    with weight_downloads(False):
        value = fid(images, images, offline=False)
        distance = nearest_lpips(images, torch.tensor([0, 0, 0]), images, torch.zeros(3), False)
    assert isinstance(value, Unavailable) and FID_WEIGHTS in value.reason
    assert str(hub) in value.reason and "invbench data fid-inception" in value.reason
    assert isinstance(distance, Unavailable) and ALEXNET_WEIGHTS in distance.reason
    assert "invbench data lpips-alexnet" in distance.reason


def test_the_weights_fetchers_say_where_to_put_the_file_offline(hub, tmp_path):
    from benchmark.errors import MissingDataError
    from metrics.fid import fetch_fid_weights
    from metrics.lpips_distance import fetch_lpips_weights

    for fetch, weights in (
        (fetch_fid_weights, FID_WEIGHTS),
        (fetch_lpips_weights, ALEXNET_WEIGHTS),
    ):
        with pytest.raises(MissingDataError, match=weights) as raised:
            fetch(tmp_path, True)
        assert f"{hub}/" in str(raised.value)
        (hub / weights).write_bytes(b"present")
        assert fetch(tmp_path, True).endswith(f"present at {hub / weights}")
