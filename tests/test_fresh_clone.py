"""A fresh clone runs the tests whose data it ships: none of them may depend on a file outside the repository."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_lecture_data_tests_run_on_a_fresh_clone_without_shared_data(tmp_path):
    """data/names.txt is in the repository: the tests that need it use it, with no ../shared/data beside the clone."""
    clone = tmp_path / "clone"  # its parent holds no shared/: exactly a clone on a user's machine
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("mlp_core", "tests", "data"):
        shutil.copytree(ROOT / part, clone / part, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", clone)
    files = ["tests/test_model.py", "tests/test_presets.py"]
    # --setup-only: skip marks and fixtures are evaluated (a skip shows), the tests' bodies are not run.
    cmd = [sys.executable, "-m", "pytest", "--setup-only", "-q", "-rs", "-p", "no:cacheprovider", "-m", "lecture_data"]
    out = subprocess.run([*cmd, *files], cwd=clone, capture_output=True, text=True, timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "SKIPPED" not in text and "skipped" not in text, text[-3000:]
    assert text.count("lecture_names_path") >= 5, text[-3000:]  # 3 in test_model.py, 2 in test_presets.py
