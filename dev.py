#!/usr/bin/env python3
"""One entry point for the quick start; needs only Python 3.11.

    python3 dev.py demo   # install, migrate, run the main job on the embedded default
    python3 dev.py test   # install test dependencies, run the whole test suite

Dependencies go into ``.venv`` (re-installed when ``pyproject.toml`` changes).  With no
environment set, SQLite and in-process tasks are used; ``DATABASE_URL`` and ``REDIS_URL``
switch to PostgreSQL and Redis.  Extra arguments are passed on (``dev.py test -k vee``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"


def ensure_venv(extras: str = "") -> None:
    if not PYTHON.exists():
        print("creating .venv …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    stamp = VENV / f".installed{extras}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    print(f"installing heatutility{extras} into .venv …", flush=True)
    subprocess.run(
        [
            str(PYTHON),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-e",
            f".{extras}",
        ],
        cwd=ROOT,
        check=True,
    )
    stamp.write_text(digest)


def run(*args: str) -> int:
    return subprocess.run([str(PYTHON), *args], cwd=ROOT, env=os.environ.copy()).returncode


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if command == "demo":
        ensure_venv()
        if "DATABASE_URL" not in os.environ:
            # Embedded default: a fresh SQLite demo database on every run.
            demo_db = ROOT / "var" / "demo.sqlite3"
            demo_db.parent.mkdir(exist_ok=True)
            demo_db.unlink(missing_ok=True)
            os.environ["DATABASE_URL"] = f"sqlite:///{demo_db}"
        return run("manage.py", "migrate", "--no-input", "-v", "0") or run(
            "manage.py", "demo", *rest
        )
    if command == "test":
        ensure_venv("[test]")
        return run("-m", "pytest", *rest)
    if command == "install":
        ensure_venv("[test]")
        return 0
    print(__doc__)
    return 0 if command == "help" else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
