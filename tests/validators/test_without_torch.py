"""``import simgen.validators`` and the label validator work without the metrics extra; torch paths say what to install."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

BLOCK = textwrap.dedent(
    """
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"torch", "torchvision", "torchmetrics", "matplotlib", "sklearn", "scipy"}:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Block())
    """
)


def test_labels_and_datasets_work_without_torch(make_dataset):
    root = make_dataset("ds", n_frames=2)
    code = BLOCK + textwrap.dedent(
        f"""
        import json
        import simgen.validators as v
        from simgen.errors import DependencyMissing
        problems = v.validate_labels({str(root)!r})
        images = v.load_image_set({str(root)!r})
        out = {{"problems": len(problems), "images": len(images), "torch": "torch" in sys.modules}}
        try:
            import simgen.validators.metrics
        except DependencyMissing as exc:
            out["metrics_error"] = str(exc)
        try:
            v.load_inception()
        except DependencyMissing as exc:
            out["inception_error"] = str(exc)
        print(json.dumps(out))
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["problems"] == 0 and out["images"] == 2 and out["torch"] is False
    assert "pip install 'simgen[metrics]'" in out["metrics_error"]
    assert "torch" in out["inception_error"] and "simgen[metrics]" in out["inception_error"]
