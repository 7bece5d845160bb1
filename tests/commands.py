"""Commands the subprocess tests run: ``train.py`` with the tiny overrides, in a quiet offline environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, tiny_overrides


def train_cmd(tmp_path: Path, data_root: Path, *overrides: str) -> list[str]:
    flags = [o for o in overrides if o.startswith("-")]  # Hydra's flags (-m) go before the overrides
    values = [o for o in overrides if not o.startswith("-")]
    return [sys.executable, str(ROOT / "train.py"), *flags, *tiny_overrides(tmp_path, data_root), *values]


def subprocess_env() -> dict[str, str]:
    """A quiet, offline environment for ``train.py`` / ``evaluate.py`` subprocesses (1 OpenMP thread)."""
    env = dict(
        os.environ,
        PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}",
        WANDB_MODE="offline",
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        PROJECT_ROOT=str(ROOT),
    )
    env.pop("WANDB_API_KEY", None)
    return env


def run_train(
    tmp_path: Path, data_root: Path, *overrides: str, timeout: int = 600
) -> subprocess.CompletedProcess:
    """Run ``train.py`` to the end (tiny overrides, quiet offline environment); stdout/stderr captured."""
    return subprocess.run(
        train_cmd(tmp_path, data_root, *overrides),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def modules_loaded_by(code: str) -> list[str]:
    """The sorted names in ``sys.modules`` after running ``code`` in a fresh interpreter: what an import
    really pulls in (lazy imports that ran included), for tests that keep a layer free of another."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
