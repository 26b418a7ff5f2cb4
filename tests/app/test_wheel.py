"""The wheel carries the bundled model: installed outside the checkout, it renders with it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "studio" / "resources" / "models" / "noise-world"

PIP = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy of the checkout: an in-tree build would leave build/ and egg-info
    # behind in it, under the feet of other runs.
    source = out / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "runs", "build", "dist", "*.egg-info", "__pycache__", ".*cache"
        ),
    )
    subprocess.run(
        [*PIP, "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("noise_studio-*.whl")
    return built


@pytest.fixture(scope="module")
def site(wheel: Path) -> Path:
    target = wheel.parent / "site"
    subprocess.run(
        [*PIP, "install", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


def test_wheel_contains_every_file_of_the_bundled_model_and_the_desktop_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    model_files = sorted(p.relative_to(ROOT).as_posix() for p in MODEL.rglob("*") if p.is_file())
    assert "studio/resources/models/noise-world/unet/diffusion_pytorch_model.safetensors" in (
        model_files
    )
    assert "studio/resources/models/noise-world/preview_decoder/config.json" in model_files
    assert [name for name in model_files if name not in names] == []
    for name in ("noise-studio.desktop", "noise-studio.png", "noise-studio.xml"):
        assert f"studio/resources/desktop/{name}" in names
    entry_points = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points[0]).decode()
    assert "noise-studio = studio.app:main" in text


def run_installed(site: Path, cwd: Path, call: str, args: list[str]) -> subprocess.CompletedProcess:
    """Run ``call(args)`` in a fresh Python with ``studio`` imported from ``site``, not the
    checkout (the editable install's finder comes after the path finder)."""
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        site = Path({str(site)!r})
        sys.path.insert(0, str(site))
        import studio
        assert site in Path(studio.__file__).resolve().parents, studio.__file__
        from studio.engine.models import BUNDLED_PATH
        assert site in BUNDLED_PATH.resolve().parents, BUNDLED_PATH
        module, _, name = {call!r}.partition(":")
        entry = getattr(__import__(module, fromlist=[name]), name)
        sys.exit(entry({args!r}))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("call", ["studio.cli:main", "studio.app:main"])
def test_installed_wheel_renders_with_the_bundled_model_outside_the_checkout(site, tmp_path, call):
    from PIL import Image

    from studio.engine.recipe import Recipe

    away = tmp_path / "elsewhere"
    away.mkdir()
    assert ROOT not in away.resolve().parents
    out = away / "car.png"
    args = ["--prompt", "a red car on a mountain road at sunset", "--seed", "1", "--steps", "2"]
    args += ["--out", str(out), "--json"]
    if call == "studio.app:main":  # the console script: `noise-studio render …`
        args = ["render", *args]
    result = run_installed(site, away, call, args)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["steps_run"] == 2
    with Image.open(out) as image:
        recipe = Recipe.from_parameters(image.text["parameters"])
    assert recipe.seed == 1 and recipe.prompt == "a red car on a mountain road at sunset"
    assert recipe.model == "bundled"


def test_the_installed_console_script_takes_the_render_subcommand(site, tmp_path):
    """``noise-studio render …`` as a user types it: the script pip wrote for the entry point."""
    from PIL import Image

    script = site / "bin" / "noise-studio"
    assert script.is_file() and os.access(script, os.X_OK)
    away = tmp_path / "elsewhere"
    away.mkdir()
    out = away / "boat.png"
    # The installed package comes first on the path, before the checkout's editable finder.
    env = {**os.environ, "PYTHONPATH": str(site)}
    args = ["render", "--prompt", "a boat", "--seed", "2", "--steps", "1", "--out", str(out)]
    result = subprocess.run(
        [str(script), *args], cwd=away, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    with Image.open(out) as image:
        assert image.size == (64, 64) and "a boat" in image.text["parameters"]
