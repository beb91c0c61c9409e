"""``tune``: search a spec's randomizers against a small real set, attribute their effects, report on held-out data.

The phases (each a method of :class:`Tuner`, run in order by :func:`tune`):

1. **prepare**: load the spec, claim the output folder (``tune.json`` records what the run depends on;
   a rerun with the same settings resumes), split the real set once into ``real/tune`` and
   ``real/heldout`` (:func:`~simgen.tune.split.split_real`), load the feature extractor and the tuning
   part's crop features (cached), build the search space and open the Optuna study in ``study.db``.
2. **search**: trials one after another, each a normal ``generate`` into ``trials/NNN/`` scored by the crop
   probe's TSTR on the tuning part (KID beside it). Trial 0 is the spec as written. Each trial's TPE
   sampler is seeded from ``(seed, trial number)``, so a study killed and resumed proposes exactly what an
   uninterrupted one would; a trial that was running when the process died is proposed again.
3. **attribute**: leave-one-out on the best spec: each randomizer switched the other way (off if the
   best spec has it, on with its spec values if not), over several generation seeds, on the tuning part;
   effects with paired bootstrap intervals.
4. **final**: the first and only use of ``real/heldout``: the original and the tuned spec, each over
   several generation seeds, TSTR and KID on held-out crops, TRTR from the tuning part, and the verdict.
5. **report**: ``best.yaml``, ``report.json``, ``report.html``.

Why trials run one at a time, each generate using ``workers`` processes (default 1), rather than as
parallel Optuna jobs: TPE proposes from the finished trials, so parallel trials make the proposals depend
on timing, and the study would stop being reproducible (a resumed study would not match an uninterrupted
one). It costs little on a small machine: both halves of a trial already use every core (PyBullet's EGL
renderer runs Mesa llvmpipe, which is multi-threaded, and torch's intra-op threads run the features).
Measured on a shared 2-core machine, two 60-frame generates of the hand-written real-like spec took 18.0 s
one after the other with ``workers=1``, 21.4 s with ``workers=2`` and 14.9 s as two concurrent
processes: parallel trials would save about a fifth of the generation time, at the price of
reproducibility.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simgen.errors import DependencyMissing, OutputExistsError, SimgenError
from simgen.sampling import rng_for
from simgen.spec.loader import LoadedSpec, dump_spec, load_spec
from simgen.tune.objective import Crops, kid_score, probe_score, real_crops, synthetic_crops
from simgen.tune.space import WINDOW, SearchSpace, build_space
from simgen.tune.split import RealSplit, real_digest, split_real

__all__ = ["OBJECTIVE", "Effect", "TuneConfig", "TuneResult", "Tuner", "tune"]

log = logging.getLogger(__name__)

STUDY_NAME = "simgen-tune"
SETTINGS_FILE = "tune.json"
#: What the search maximises.
OBJECTIVE = "TSTR accuracy of a linear probe (standardisation + logistic regression) on frozen crop features"
#: Keys of ``tune.json`` a resumed run must share (the budget, workers and report settings may change).
RESUME_KEYS = (
    "add",
    "spec_sha256",
    "real_sha256",
    "seed",
    "frames",
    "resolution",
    "holdout",
    "renderer",
    "extractor",
    "window",
    "objective",
)
#: Outputs of the datasets a tune generates: RGB and COCO are all its scoring reads.
TRIAL_OUTPUTS = {"rgb": True, "depth": False, "instances": False, "coco": True, "yolo": False, "bop": False}


def _require_optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise DependencyMissing("optuna", "tune", "simgen tune") from exc
    return optuna


@dataclass
class TuneConfig:
    """How a tune runs.

    Attributes:
        budget: Trials in the study in all (a resumed study continues up to it).
        frames: Frames per generated dataset.
        resolution: ``(width, height)`` of the generated datasets (None: the spec's).
        seed: Seed of the split, the study, every generated dataset and every bootstrap.
        workers: Worker processes per generate.
        renderer: ``auto``, ``egl`` or ``tiny``.
        holdout: Fraction of real images held out for the final report.
        extractor: Feature extractor (see :func:`simgen.validators.pipeline.resolve_extractor`).
        crop_size: Side of the square crops fed to it (None: the extractor's own size).
        window: Multiplicative search window around the spec's values (None: the declared bounds).
        add_randomizers: Candidates the spec does not list, to try too (registry names or spec entries); off
            in the spec as written.
        attribution_seeds: Generation seeds per ablated spec (0 skips the attribution).
        eval_seeds: Generation seeds per spec in the held-out comparison.
        n_boot: Bootstrap resamples.
        level: Confidence level.
        keep_datasets: Keep every generated dataset (by default each is removed once scored).
        asset_roots: Extra folders assets may come from.
        runner: ``local`` or ``ray`` (for each generate).
        ray_address: A Ray cluster's address.
        batch_size: Crops per forward pass.
        device: Torch device.
    """

    budget: int = 40
    frames: int = 120
    resolution: tuple[int, int] | None = (320, 240)
    seed: int = 0
    workers: int = 1
    renderer: str = "auto"
    holdout: float = 0.3
    extractor: Any = "efficientnet-lite0"
    crop_size: int | None = 128
    window: float | None = WINDOW
    add_randomizers: Sequence[str | dict[str, Any]] = ()
    attribution_seeds: int = 3
    eval_seeds: int = 3
    n_boot: int = 1000
    level: float = 0.95
    keep_datasets: bool = False
    asset_roots: Sequence[str | Path] = ()
    runner: str = "local"
    ray_address: str | None = None
    batch_size: int = 32
    device: str = "cpu"

    def check(self) -> None:
        """Raise :class:`SimgenError` naming the first setting out of range."""
        checks = [
            (self.budget >= 0, f"budget must be >= 0, got {self.budget}"),
            (self.frames >= 1, f"frames must be >= 1, got {self.frames}"),
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (self.workers >= 1, f"workers must be >= 1, got {self.workers}"),
            (0.0 < self.holdout < 1.0, f"holdout must be in (0, 1), got {self.holdout}"),
            (self.attribution_seeds >= 0, f"attribution_seeds must be >= 0, got {self.attribution_seeds}"),
            (self.eval_seeds >= 1, f"eval_seeds must be >= 1, got {self.eval_seeds}"),
            (self.n_boot >= 10, f"n_boot must be >= 10, got {self.n_boot}"),
            (0.0 < self.level < 1.0, f"level must be in (0, 1), got {self.level}"),
            (self.crop_size is None or self.crop_size >= 16, f"crop_size must be >= 16, got {self.crop_size}"),
        ]
        for ok, message in checks:
            if not ok:
                raise SimgenError(message)


@dataclass
class Effect:
    """One randomizer's effect: the score with it minus the score without it (the rest as in the best spec).

    Attributes:
        randomizer: ``"<index>:<type>"``.
        type: Its registry name.
        in_best: Whether the best spec has it switched on.
        tstr: Effect on TSTR (positive: it helps), with its interval.
        kid: Effect on KID (negative: it brings the crops closer to the real ones), with its interval.
        tstr_with: TSTR with it, averaged over seeds.
        tstr_without: TSTR without it.
    """

    randomizer: str
    type: str
    in_best: bool
    tstr: Any
    kid: Any
    tstr_with: float
    tstr_without: float

    def line(self) -> str:
        """``"appearance/color-v1: -0.12 TSTR [-0.15, -0.09], KID +0.031 [+0.020, +0.044]"``."""
        t, k = self.tstr, self.kid
        return (
            f"{self.type}: {_signed(t.value, 2)} TSTR [{_signed(t.low, 2)}, {_signed(t.high, 2)}], "
            f"KID {_signed(k.value, 4)} [{_signed(k.low, 4)}, {_signed(k.high, 4)}]"
            f"{'' if self.in_best else ' (off in the best spec)'}"
        )

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "randomizer": self.randomizer,
            "type": self.type,
            "in_best": self.in_best,
            "tstr": self.tstr.as_dict(),
            "kid": self.kid.as_dict(),
            "tstr_with": self.tstr_with,
            "tstr_without": self.tstr_without,
            "line": self.line(),
        }


def _signed(v: float, digits: int) -> str:
    if not math.isfinite(v):
        return "nan"
    text = f"{v:+.{digits}f}"
    return text.replace("-", "\u2212")


@dataclass
class TuneResult:
    """What a tune produced.

    Attributes:
        out: The output folder.
        best_yaml: The tuned spec.
        report_json: Machine-readable report.
        report_html: The report for people.
        report: The report document (``report.json``'s content).
        verdict: The final line comparing held-out TSTR of the original and the tuned spec.
        asset_roots: Folders to pass as ``--asset-root`` to load ``best.yaml`` (empty when it needs none).
    """

    out: Path
    best_yaml: Path
    report_json: Path
    report_html: Path
    report: dict[str, Any]
    verdict: str
    asset_roots: list[Path] = field(default_factory=list)


def _derived_seed(seed: int, *keys: int | str) -> int:
    return int(rng_for(seed, "tune", *keys).integers(2**31 - 1))


class Tuner:
    """One tune, phase by phase (see the module docstring); :meth:`run` does them all.

    Args:
        spec: The spec to tune (a file or a loaded spec).
        real: The labeled real set (COCO folder or file).
        out: The output folder (created; a folder holding a tune with the same settings is resumed).
        config: The settings.
        progress: Called with a one-line message at each step (a trial done, a dataset generated).
    """

    def __init__(
        self,
        spec: str | Path | LoadedSpec,
        real: str | Path,
        out: str | Path,
        config: TuneConfig | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.spec_arg = spec
        self.real = Path(real)
        self.out = Path(out)
        self.cfg = config or TuneConfig()
        self.cfg.check()
        self._progress = progress
        self.timings: dict[str, float] = {}
        self._probe_cache: dict[tuple[str, int, str], Any] = {}
        self.loaded: LoadedSpec
        self.split: RealSplit
        self.space: SearchSpace
        self.study: Any = None
        self.extractor: Any = None
        self.tune_crops: Crops
        self.effects: list[Effect] = []
        self.heldout: dict[str, Any] = {}

    # --- helpers -------------------------------------------------------------------------------------------

    def say(self, message: str) -> None:
        """Report progress (logged, and passed to the ``progress`` callback)."""
        log.info("%s", message)
        if self._progress is not None:
            self._progress(message)

    @property
    def classes(self) -> list[str]:
        """The categories scored."""
        return self.split.classes

    def _seeds(self, n: int) -> list[int]:
        """The generation seeds of the attribution and the final comparison (never the search's own seed)."""
        return [_derived_seed(self.cfg.seed, "eval", k) for k in range(n)]

    def _settings(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "spec": str(self.loaded.source) if self.loaded.source else None,
            "spec_sha256": self.loaded.digest(),
            "real": str(self.real),
            "real_sha256": real_digest(self.real),
            "seed": cfg.seed,
            "frames": cfg.frames,
            "resolution": list(cfg.resolution) if cfg.resolution else None,
            "holdout": cfg.holdout,
            "renderer": cfg.renderer,
            "extractor": self.extractor.cache_id,
            "window": cfg.window,
            "add": [a if isinstance(a, str) else dict(a) for a in cfg.add_randomizers],
            "objective": OBJECTIVE,
        }

    def _check_out(self, settings: dict[str, Any]) -> bool:
        """Whether ``out`` holds a tune with the same settings (to resume); raise if it holds anything else."""
        record = self.out / SETTINGS_FILE
        if record.is_file():
            previous = json.loads(record.read_text(encoding="utf-8"))
            changed = [k for k in RESUME_KEYS if previous.get(k) != settings.get(k)]
            if changed:
                raise OutputExistsError(
                    f"{self.out} holds a tune with a different {', '.join(changed)}; a tune resumes only with the "
                    "same spec, real set, seed, frames, resolution, holdout, renderer, extractor, window and added "
                    "randomizers: use a "
                    "new output folder"
                )
            return True
        if self.out.is_symlink() or (self.out.exists() and not self.out.is_dir()):
            raise OutputExistsError(f"{self.out} is not a folder")
        if self.out.exists() and {p.name for p in self.out.iterdir()} - {"real"}:  # real/: a split made before a kill
            raise OutputExistsError(f"{self.out} is not empty and holds no tune ({SETTINGS_FILE}); use a new folder")
        return False

    def _extractor(self) -> Any:
        from simgen.validators.pipeline import resolve_extractor

        cfg = self.cfg
        if cfg.extractor == "efficientnet-lite0":
            from simgen.validators.utility import efficientnet_lite0_extractor

            ext = efficientnet_lite0_extractor(
                image_size=cfg.crop_size or 224, batch_size=cfg.batch_size, device=cfg.device
            )
        else:
            ext = resolve_extractor(cfg.extractor, batch_size=cfg.batch_size, device=cfg.device)
            if cfg.crop_size:
                ext = dataclasses.replace(ext, image_size=cfg.crop_size)
        return ext

    def _trial_spec(self, loaded: LoadedSpec) -> LoadedSpec:
        """``loaded`` writing only RGB and COCO (what scoring reads)."""
        raw = dump_spec(loaded)
        raw["outputs"] = dict(TRIAL_OUTPUTS)
        return load_spec(raw, base_dir=loaded.base_dir, asset_roots=loaded.roots, check_assets=False)

    def _generate(self, loaded: LoadedSpec, folder: Path, seed: int, *, keep: bool) -> Crops:
        """Generate ``loaded`` into ``folder`` (resuming a run left there) and return its crop features."""
        from simgen.engine import generate

        cfg = self.cfg
        resume = folder.is_dir() and (folder / ".simgen" / "run.json").is_file()  # a run a kill interrupted
        t0 = time.perf_counter()
        generate(
            self._trial_spec(loaded),
            folder,
            n_frames=cfg.frames,
            seed=seed,
            workers=cfg.workers,
            renderer=cfg.renderer,
            resolution=cfg.resolution,
            resume=resume,
            overwrite=folder.exists() and not resume,
            runner=cfg.runner,
            ray_address=cfg.ray_address,
        )
        t1 = time.perf_counter()
        crops = synthetic_crops(folder, self.extractor, self.classes)
        t2 = time.perf_counter()
        self.timings["generate"] = self.timings.get("generate", 0.0) + t1 - t0
        self.timings["features"] = self.timings.get("features", 0.0) + t2 - t1
        if not keep and not self.cfg.keep_datasets:
            shutil.rmtree(folder)
        return crops

    def _run_crops(self, params: dict[str, Any], seed: int, *, keep: bool = False) -> tuple[str, Crops]:
        """The crops of ``params``' spec generated with ``seed``: from ``runs/<digest>/`` if done before."""
        loaded = self.space.load(params)
        digest = loaded.digest()
        base = self.out / "runs" / digest[:16]
        meta = {
            "spec": digest,
            "frames": str(self.cfg.frames),
            "resolution": str(self.cfg.resolution),
            "renderer": self.cfg.renderer,
            "extractor": self.extractor.cache_id,
            "classes": ",".join(self.classes),
        }
        npz = base / f"seed-{seed}.npz"
        crops = Crops.load(npz, **meta)
        if crops is None:
            base.mkdir(parents=True, exist_ok=True)
            spec_file = base / "spec.yaml"
            if not spec_file.is_file():
                from simgen.spec.loader import dump_spec_yaml

                spec_file.write_text(dump_spec_yaml(loaded), encoding="utf-8")
            crops = self._generate(loaded, base / f"seed-{seed}", seed, keep=keep)
            crops.save(npz, **meta)
        return digest, crops

    def _probe(self, key: str, seed: int, crops: Crops, test: Crops, test_name: str) -> Any:
        """The probe's score of ``crops`` on ``test`` (cached); a set with fewer than 2 classes scores 0."""
        cache_key = (key, seed, test_name)
        if cache_key not in self._probe_cache:
            try:
                self._probe_cache[cache_key] = probe_score(crops, test, self.classes, seed=self.cfg.seed)
            except SimgenError as exc:
                log.warning("%s", exc)
                from simgen.tune.objective import ProbeScore

                self._probe_cache[cache_key] = ProbeScore(0.0, 0.0, {}, np.zeros(len(test), bool))
        return self._probe_cache[cache_key]

    # --- 1. prepare ---------------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Load, claim the folder, split the real set, load the tuning crops, open the study."""
        t0 = time.perf_counter()
        cfg = self.cfg
        spec = self.spec_arg
        self.loaded = spec if isinstance(spec, LoadedSpec) else load_spec(spec, asset_roots=cfg.asset_roots)
        self.space = build_space(self.loaded, window=cfg.window, add=cfg.add_randomizers)
        optuna = _require_optuna()
        self.extractor = self._extractor()
        settings = self._settings()
        resumed = self._check_out(settings)
        from simgen.engine import categories

        # The split checks the real set before writing anything; tune.json comes after it, so a refused real set
        # leaves an empty folder that a corrected run can use.
        self.split = split_real(
            self.real, self.out / "real", classes=categories(self.loaded), seed=cfg.seed, holdout=cfg.holdout
        )
        if not resumed:
            from simgen.writers.atomic import atomic_write_json

            atomic_write_json(self.out / SETTINGS_FILE, settings)
        self.say(
            f"real set split: {self.split.images['tune']} tuning images, {self.split.images['heldout']} held out "
            f"(classes: {', '.join(self.classes)})"
        )
        self.tune_crops = real_crops(self.split.tune, self.extractor, self.classes)
        storage = f"sqlite:///{(self.out / 'study.db').resolve()}"
        self.study = optuna.create_study(
            study_name=STUDY_NAME, storage=storage, direction="maximize", load_if_exists=True, sampler=self._sampler(0)
        )
        self.timings["prepare"] = time.perf_counter() - t0

    def _sampler(self, n: int) -> Any:
        optuna = _require_optuna()
        return optuna.samplers.TPESampler(seed=_derived_seed(self.cfg.seed, "sampler", n))

    # --- 2. search ----------------------------------------------------------------------------------------

    def _counted(self) -> list[Any]:
        """Trials that count towards the budget: finished, or failed in the objective (not interrupted)."""
        from optuna.trial import TrialState

        return [
            t
            for t in self.study.get_trials(deepcopy=False)
            if t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL and "error" in t.user_attrs)
        ]

    def _recover(self) -> None:
        """Propose again what a killed run left running (its dataset, partial, is removed)."""
        from optuna.trial import TrialState

        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            self.say(f"trial {t.number} was interrupted; proposing its candidate again")
            self.study.enqueue_trial(t.params)
            self.study.tell(t.number, state=TrialState.FAIL)
            folder = self.out / "trials" / f"{t.number:03d}"
            if folder.is_dir() and not folder.is_symlink():
                shutil.rmtree(folder)

    def _objective(self, trial: Any) -> float:
        t0 = time.perf_counter()
        params = self.space.suggest(trial)
        folder = self.out / "trials" / f"{trial.number:03d}"
        try:
            crops = self._generate(self.space.load(params), folder, self.cfg.seed, keep=False)
        except SimgenError as exc:
            trial.set_user_attr("error", str(exc))
            raise
        try:
            score = probe_score(crops, self.tune_crops, self.classes, seed=self.cfg.seed)
            value, f1 = score.accuracy, score.macro_f1
        except SimgenError as exc:  # a candidate that makes fewer than two classes visible: the worst score
            trial.set_user_attr("error", str(exc))
            value, f1 = 0.0, 0.0
        kid = kid_score(crops, self.tune_crops, seed=self.cfg.seed)
        trial.set_user_attr("tstr", value)
        trial.set_user_attr("macro_f1", f1)
        trial.set_user_attr("kid", kid if math.isfinite(kid) else None)
        trial.set_user_attr("synthetic_crops", len(crops))
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
        return value

    def search(self, budget: int | None = None) -> None:
        """Run trials until the study holds ``budget`` (default: the config's) counted trials."""
        optuna = _require_optuna()
        budget = self.cfg.budget if budget is None else budget
        t0 = time.perf_counter()
        self._recover()
        if not self.study.get_trials(deepcopy=False):
            self.study.enqueue_trial(self.space.initial())  # trial 0: the spec as written
        while (done := len(self._counted())) < budget:
            self.study.sampler = self._sampler(len(self.study.get_trials(deepcopy=False)))
            self.study.optimize(self._objective, n_trials=1, catch=(SimgenError,), gc_after_trial=True)
            last = self.study.get_trials(deepcopy=False)[-1]
            best = self._best_trial()
            if last.state == optuna.trial.TrialState.COMPLETE:
                kid = last.user_attrs.get("kid")
                self.say(
                    f"trial {last.number} ({done + 1}/{budget}): TSTR {last.value:.3f}"
                    f"{f', KID {kid:.4f}' if kid is not None else ''} in {last.user_attrs.get('seconds', 0):.0f} s; "
                    f"best {best.value:.3f} (trial {best.number})"
                )
            else:
                self.say(f"trial {last.number} ({done + 1}/{budget}) failed: {last.user_attrs.get('error', '?')}")
        self.timings["search"] = self.timings.get("search", 0.0) + time.perf_counter() - t0

    def _best_trial(self) -> Any:
        from optuna.trial import TrialState

        done = [t for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
        if not done:
            return None
        return max(done, key=lambda t: (t.value, -t.number))  # the earliest of equal scores

    def best_params(self) -> dict[str, Any]:
        """The best trial's candidate, or the spec as written when no trial finished."""
        best = self._best_trial()
        return dict(best.params) if best is not None else self.space.initial()

    # --- 3. attribute -------------------------------------------------------------------------------------

    def attribute(self) -> list[Effect]:
        """Leave-one-out on the best spec, on the tuning part: each randomizer's effect on TSTR and KID."""
        from simgen.tune.stats import cluster_mean_ci

        n = self.cfg.attribution_seeds
        if n == 0:
            self.effects = []
            return self.effects
        t0 = time.perf_counter()
        best = self.best_params()
        seeds = self._seeds(n)
        real = self.tune_crops
        base = [self._run_crops(best, s) for s in seeds]
        self.say(f"attribution: best spec generated with {n} seeds")
        effects = []
        for r in self.space.randomizers:
            on = bool(best.get(r.enabled_name, True))
            other = [self._run_crops(self.space.toggled(best, r, not on), s) for s in seeds]
            with_, without = (base, other) if on else (other, base)
            cw = np.array([self._probe(d, s, c, real, "tune").correct for (d, c), s in zip(with_, seeds, strict=True)])
            cwo = np.array(
                [self._probe(d, s, c, real, "tune").correct for (d, c), s in zip(without, seeds, strict=True)]
            )
            rng = rng_for(self.cfg.seed, "tune", "bootstrap", "attribution", r.key)
            tstr = cluster_mean_ci(
                cw.astype(float) - cwo, real.images, rng=rng, n_boot=self.cfg.n_boot, level=self.cfg.level
            )
            kid = self._kid_effect([c for _, c in with_], [c for _, c in without], real, rng)
            effect = Effect(r.key, r.type, on, tstr, kid, float(cw.mean()), float(cwo.mean()))
            effects.append(effect)
            self.say(f"attribution: {effect.line()}")
        self.effects = sorted(effects, key=lambda e: e.tstr.value)
        self.timings["attribution"] = time.perf_counter() - t0
        return self.effects

    def _kid_effect(self, with_: list[Crops], without: list[Crops], real: Crops, rng: np.random.Generator) -> Any:
        from simgen.tune.stats import kid_ci, kid_terms
        from simgen.validators.functional import BootstrapResult

        if any(len(c) < 2 for c in (*with_, *without)):
            return BootstrapResult(float("nan"), float("nan"), float("nan"), self.cfg.level, 0, "none: < 2 crops")
        return kid_ci(
            kid_terms([c.features for c in with_], real.features),
            real.images,
            baseline=kid_terms([c.features for c in without], real.features),
            rng=rng,
            n_boot=self.cfg.n_boot,
            level=self.cfg.level,
        )

    # --- 4. final -----------------------------------------------------------------------------------------

    def final(self) -> dict[str, Any]:
        """The held-out comparison of the original and the tuned spec: the only read of ``real/heldout``."""
        from simgen.tune.stats import cluster_mean_ci, kid_ci, kid_terms
        from simgen.validators.functional import BootstrapResult

        t0 = time.perf_counter()
        cfg = self.cfg
        heldout = real_crops(self.split.heldout, self.extractor, self.classes)
        seeds = self._seeds(cfg.eval_seeds)
        rng = lambda name: rng_for(cfg.seed, "tune", "bootstrap", "final", name)  # noqa: E731
        ci = {"n_boot": cfg.n_boot, "level": cfg.level}
        trtr = probe_score(self.tune_crops, heldout, self.classes, seed=cfg.seed)
        trtr_ci = cluster_mean_ci(trtr.correct[None].astype(float), heldout.images, rng=rng("trtr"), **ci)
        sides: dict[str, Any] = {}
        correct: dict[str, np.ndarray] = {}
        terms: dict[str, Any] = {}
        for name, params in (("original", self.space.initial()), ("tuned", self.best_params())):
            runs = [self._run_crops(params, s) for s in seeds]
            self.say(f"held-out: {name} spec generated with {len(seeds)} seeds")
            correct[name] = np.array(
                [self._probe(d, s, c, heldout, "heldout").correct for (d, c), s in zip(runs, seeds, strict=True)],
                dtype=float,
            )
            ok = all(len(c) >= 2 for _, c in runs)
            terms[name] = kid_terms([c.features for _, c in runs], heldout.features) if ok else None
            tstr = cluster_mean_ci(correct[name], heldout.images, rng=rng(f"tstr-{name}"), **ci)
            kid = (
                kid_ci(terms[name], heldout.images, rng=rng(f"kid-{name}"), **ci)
                if ok
                else BootstrapResult(float("nan"), float("nan"), float("nan"), cfg.level, 0, "none: < 2 crops")
            )
            sides[name] = {
                "tstr": tstr.as_dict(),
                "kid": kid.as_dict(),
                "spec_sha256": runs[0][0],
                "synthetic_crops": [len(c) for _, c in runs],
            }
        gain = cluster_mean_ci(correct["tuned"] - correct["original"], heldout.images, rng=rng("gain"), **ci)
        if terms["original"] is not None and terms["tuned"] is not None:
            kid_gain = kid_ci(terms["tuned"], heldout.images, baseline=terms["original"], rng=rng("kid-gain"), **ci)
        else:
            kid_gain = BootstrapResult(float("nan"), float("nan"), float("nan"), cfg.level, 0, "none: < 2 crops")
        significant = bool(gain.low > 0.0)
        self.heldout = {
            "images": self.split.images["heldout"],
            "crops": len(heldout),
            "class_counts": heldout.class_counts(),
            "seeds": seeds,
            "trtr": trtr_ci.as_dict(),
            **sides,
            "gain": gain.as_dict(),
            "kid_gain": kid_gain.as_dict(),
            "significant": significant,
            "ratio_to_trtr": _ratio(sides["tuned"]["tstr"]["value"], trtr_ci.value),
        }
        self.heldout["verdict"] = self._verdict()
        self.timings["final"] = time.perf_counter() - t0
        return self.heldout

    def _verdict(self) -> str:
        h = self.heldout
        o, t, g, r = h["original"]["tstr"], h["tuned"]["tstr"], h["gain"], h["trtr"]
        level = f"{100 * self.cfg.level:.0f}%"

        def v(x: dict[str, Any]) -> str:
            return f"{x['value']:.3f} [{x['ci'][0]:.3f}, {x['ci'][1]:.3f}]"

        detail = (
            f"held-out TSTR {v(o)} (original spec) -> {v(t)} (tuned), difference {_signed(g['value'], 3)} "
            f"[{_signed(g['ci'][0], 3)}, {_signed(g['ci'][1], 3)}]; TRTR {v(r)}; {level} intervals over "
            f"{len(h['seeds'])} generation seeds and {h['images']} held-out images ({h['crops']} crops)"
        )
        if h["significant"]:
            return f"gain: {detail}"
        return f"no significant gain: the tuned spec is not better than the original on held-out data; {detail}"

    # --- 5. report ----------------------------------------------------------------------------------------

    def report(self) -> TuneResult:
        """Write ``best.yaml``, ``report.json`` and ``report.html``."""
        from simgen.tune.report import write_best_yaml, write_reports

        t0 = time.perf_counter()
        best_yaml, roots = write_best_yaml(self)
        preview = self._preview()
        self.timings["report"] = time.perf_counter() - t0
        document = self.document(best_yaml, roots)
        json_path, html_path = write_reports(self, document, preview)
        return TuneResult(self.out, best_yaml, json_path, html_path, document, self.heldout.get("verdict", ""), roots)

    def _preview(self) -> Path | None:
        """A few frames of the best spec at the tune's resolution, for the report's grid."""
        from simgen.engine import generate

        folder = self.out / "preview"
        try:
            generate(
                self.space.load(self.best_params()),
                folder,
                n_frames=9,
                seed=self._seeds(1)[0],
                workers=1,
                renderer=self.cfg.renderer,
                resolution=self.cfg.resolution,
                overwrite=folder.exists(),
            )
        except SimgenError as exc:
            log.warning("no preview of the best spec: %s", exc)
            return None
        return folder

    def trials(self) -> list[dict[str, Any]]:
        """Every trial as JSON: number, state, objective, KID, switches and numbers."""
        out = []
        for t in self.study.get_trials(deepcopy=False):
            out.append(
                {
                    "number": t.number,
                    "state": t.state.name,
                    "tstr": t.value,
                    "kid": t.user_attrs.get("kid"),
                    "macro_f1": t.user_attrs.get("macro_f1"),
                    "synthetic_crops": t.user_attrs.get("synthetic_crops"),
                    "seconds": t.user_attrs.get("seconds"),
                    "error": t.user_attrs.get("error"),
                    "params": dict(t.params),
                }
            )
        return out

    def importances(self) -> dict[str, Any]:
        """Optuna's fANOVA parameter importances (mean decrease in impurity as a fallback)."""
        optuna = _require_optuna()
        from optuna.importance import FanovaImportanceEvaluator, MeanDecreaseImpurityImportanceEvaluator

        if len([t for t in self.trials() if t["state"] == "COMPLETE"]) < 3:
            return {"method": None, "values": {}, "note": "fewer than 3 finished trials"}
        notes = []
        for name, evaluator in (
            ("fanova", FanovaImportanceEvaluator(seed=self.cfg.seed)),
            ("mean-decrease-impurity", MeanDecreaseImpurityImportanceEvaluator(seed=self.cfg.seed)),
        ):
            try:
                values = optuna.importance.get_param_importances(self.study, evaluator=evaluator)
                return {
                    "method": name,
                    "values": {k: float(v) for k, v in values.items()},
                    "note": "over the parameters every finished trial has (switches; numbers of randomizers "
                    "never switched off)",
                }
            except (ImportError, RuntimeError, ValueError) as exc:
                notes.append(f"{name}: {exc}")
        return {"method": None, "values": {}, "note": "; ".join(notes)}

    def document(self, best_yaml: Path, roots: list[Path]) -> dict[str, Any]:
        """The ``report.json`` document."""
        from simgen import __version__

        best = self._best_trial()
        trials = self.trials()
        return {
            "simgen_version": __version__,
            "spec": str(self.loaded.source) if self.loaded.source else None,
            "real": str(self.real),
            "out": str(self.out),
            "best_yaml": str(best_yaml),
            "asset_roots": [str(r) for r in roots],
            "settings": {
                **self._settings(),
                "budget": self.cfg.budget,
                "workers": self.cfg.workers,
                "crop_size": self.cfg.crop_size,
                "attribution_seeds": self.cfg.attribution_seeds,
                "eval_seeds": self.cfg.eval_seeds,
                "n_boot": self.cfg.n_boot,
                "level": self.cfg.level,
            },
            "split": self.split.as_dict(),
            "tuning_crops": {"crops": len(self.tune_crops), "class_counts": self.tune_crops.class_counts()},
            "study": {
                "name": STUDY_NAME,
                "storage": str(self.out / "study.db"),
                "sampler": "TPE, seeded per trial",
                "objective": OBJECTIVE,
                "n_trials": len(trials),
                "n_complete": sum(t["state"] == "COMPLETE" for t in trials),
                "best_trial": best.number if best is not None else None,
                "best_value": best.value if best is not None else None,
                "best_params": self.best_params(),
            },
            "search_space": self.space.describe(),
            "importances": self.importances(),
            "trials": trials,
            "attribution": {
                "seeds": self._seeds(self.cfg.attribution_seeds),
                "on": "the tuning part",
                "effects": [e.as_dict() for e in self.effects],
            },
            "heldout": self.heldout,
            "verdict": self.heldout.get("verdict", ""),
            "timings_s": {k: round(v, 2) for k, v in self.timings.items()},
        }

    # --- all of it -----------------------------------------------------------------------------------------

    def run(self, *, search: bool = True) -> TuneResult:
        """Prepare, search (unless ``search`` is False), attribute, compare on held-out data, report."""
        self.prepare()
        if search:
            self.search()
        self.attribute()
        self.final()
        return self.report()


def _ratio(a: float, b: float) -> float | None:
    return a / b if b and math.isfinite(a) and math.isfinite(b) else None


def tune(
    spec: str | Path | LoadedSpec,
    real: str | Path,
    out: str | Path,
    *,
    search: bool = True,
    progress: Callable[[str], None] | None = None,
    **settings: Any,
) -> TuneResult:
    """Tune a spec's randomizers against a small labeled real set (see :mod:`simgen.tune.study`).

    Args:
        spec: The spec (a file or a loaded spec).
        real: The real set: a COCO folder or file, tens to a few hundred images.
        out: The output folder; rerunning with the same settings resumes the study in ``out/study.db``.
        search: Run trials up to the budget; False only attributes and reports (``simgen tune --attribute``).
        progress: Called with a one-line message at each step.
        **settings: Fields of :class:`TuneConfig` (``budget``, ``frames``, ``resolution``, ``seed``, ...).

    Returns:
        The paths written, the report and the verdict line.

    Raises:
        SimgenError: A bad setting, spec or real set (too few images: the message states the minimum).
        OutputExistsError: ``out`` holds something else, or a tune with other settings.
        DependencyMissing: optuna (``simgen[tune]``) or torch (``simgen[metrics]``) is not installed.
    """
    unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(TuneConfig)})
    if unknown:
        from simgen.errors import did_you_mean

        names = [f.name for f in dataclasses.fields(TuneConfig)]
        raise SimgenError(f"unknown tune setting {unknown[0]!r}{did_you_mean(unknown[0], names)}")
    return Tuner(spec, real, out, TuneConfig(**settings), progress).run(search=search)
