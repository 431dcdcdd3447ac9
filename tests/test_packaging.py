"""The package as a user installs it: a wheel, installed into a fresh virtualenv, runs its commands
from any folder with the configs it carries."""

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests_support import TINY_CLASSIFIER

# Every test here starts processes of its own: `make test-full` runs them.
pytestmark = pytest.mark.process

REPO = Path(__file__).resolve().parent.parent


def run(args, cwd, timeout=600):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """bin/ of a new virtualenv holding only the wheel (its dependencies come from the test
    environment's site-packages, which the venv sees through a .pth file)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a copy, so the build writes nothing into the repository
    shutil.copytree(
        REPO / "handwriting_gan", source / "handwriting_gan", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    built = run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(root),
            str(source),
        ],
        root,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = root.glob("handwriting_gan-*.whl")

    venv = root / "venv"
    assert run([sys.executable, "-m", "venv", "--without-pip", str(venv)], root).returncode == 0
    purelib = run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        root,
    )
    Path(purelib.stdout.strip(), "test-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--no-deps",
            "-q",
            str(wheel),
        ],
        root,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    return venv / "bin"


def test_the_wheel_carries_its_configs_and_trains_evaluates_and_exports_from_any_folder(installed, tmp_path):
    where = run(
        [str(installed / "python"), "-c", "import handwriting_gan; print(handwriting_gan.__file__)"], tmp_path
    )
    assert str(installed.parent) in where.stdout, (
        where.stdout + where.stderr
    )  # the wheel, not the source tree

    trained = run([str(installed / "hwgan-train"), "debug=fast"], tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "debug").iterdir()
    assert (run_dir / "generator.pt").is_file()

    tiny = [*TINY_CLASSIFIER, "classifier.epochs=1", "num_samples=40"]
    evaluated = run([str(installed / "hwgan-evaluate"), f"run_dir={run_dir}", *tiny], tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert json.loads(evaluated.stdout)["num_samples"] == 40
    exported = run(
        [str(installed / "hwgan-export"), f"run_dir={run_dir}", f"out={tmp_path / 'synthetic'}", *tiny],
        tmp_path,
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert (tmp_path / "synthetic" / "export.json").is_file()
