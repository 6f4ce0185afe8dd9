"""Does skewless work as a wheel? Built from the checkout, installed in a fresh virtualenv, run
from a folder outside the checkout: `skewless --help`, then a short quickstart (init, build
the tables, apply, materialize, read a real flight's features online, open the registry),
with every file it writes under that folder and nothing under site-packages."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.support.repos import CHECKOUT


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (command, done.stdout[-3000:], done.stderr[-3000:])
    return done.stdout


def test_the_wheel_installs_and_runs_outside_the_checkout(tmp_path: Path) -> None:
    # Built from a copy of the tracked files: setuptools' build folder in the checkout could
    # hold a module deleted since, and ship it.
    source = tmp_path / "source"
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=CHECKOUT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in tracked:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(CHECKOUT / name, source / name)
    for generated in (CHECKOUT / "serving" / "protos").glob("*_pb2*"):
        shutil.copy2(generated, source / "serving" / "protos" / generated.name)
    wheels = tmp_path / "wheels"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(source),
        ],
        tmp_path,
        dict(os.environ),
    )
    (wheel,) = wheels.glob("skewless-*.whl")

    # A fresh virtualenv with the wheel alone; its dependencies are read from this one's
    # site-packages (a path, so its .pth files, this checkout's editable install among them,
    # are not run): nothing of the checkout is importable there.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, dict(os.environ))
    python = venv / "bin" / "python"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "-q",
            str(wheel),
        ],
        tmp_path,
        dict(os.environ),
    )
    purelib = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    ours = [Path(p) for p in site.getsitepackages()] + [Path(sysconfig.get_paths()["purelib"])]
    (purelib / "dependencies.pth").write_text("\n".join(str(p) for p in dict.fromkeys(ours)))

    project = tmp_path / "project"
    project.mkdir()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("SKEWLESS_") and k != "PYTHONPATH"
    }
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    skewless = str(venv / "bin" / "skewless")

    located = _run([str(python), "-c", "import cli, skewless; print(cli.__file__)"], project, env)
    assert located.strip().startswith(str(purelib)), located  # the wheel's, not the checkout's
    assert "Usage" in _run([skewless, "--help"], project, env)

    _run([skewless, "init"], project, env)
    _run([skewless, "build-tables"], project, env)
    _run([skewless, "apply"], project, env)
    assert "materialized up to" in _run([skewless, "materialize"], project, env)
    features = _run([skewless, "online-features"], project, env)
    assert "delay_model_v1 online (sqlite)" in features, features
    _run([skewless, "migrate-registry", "--dry-run"], project, env)

    assert (project / "feature_repo" / "data" / "flight_requests.parquet").is_file()
    assert (project / "feature_repo" / "data" / "online_store.db").is_file()
    assert (project / ".skewless" / "mlflow.db").is_file()
    written = [
        p for p in purelib.rglob("*") if p.suffix in {".parquet", ".db"} or p.name == ".skewless"
    ]
    assert written == [], written  # no state under site-packages
