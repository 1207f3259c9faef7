"""$JAXNAS_REQUIRE_DATA=1 turns the skip of a data-dependent test into a failure."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(tmp_path, require):
    test = tmp_path / "test_needs_data.py"
    test.write_text("def test_needs_data(shared_data):\n    pass\n")
    env = {
        **os.environ,
        "JAXNAS_SHARED_DATA": str(tmp_path / "absent"),
        "JAXNAS_REQUIRE_DATA": "1" if require else "0",
        # The project's conftest.py, loaded as a plugin into a bare pytest run.
        "PYTHONPATH": os.pathsep.join([os.path.join(ROOT, "tests"), ROOT]),
    }
    flags = ["-q", "-rs", "-p", "no:cacheprovider", "-c", os.devnull, "-p", "conftest"]
    cmd = [sys.executable, "-m", "pytest", *flags, "--rootdir", str(tmp_path), str(test)]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)


def test_without_the_data_a_skip_with_its_reason_or_a_failure_when_required(tmp_path):
    skipped = _run(tmp_path, require=False)
    assert skipped.returncode == 0, skipped.stdout
    assert "1 skipped" in skipped.stdout and "shared data not found" in skipped.stdout
    failed = _run(tmp_path, require=True)
    assert failed.returncode == 1, failed.stdout
    assert "1 error" in failed.stdout or "1 failed" in failed.stdout, failed.stdout
    assert "JAXNAS_REQUIRE_DATA=1 requires it" in failed.stdout
