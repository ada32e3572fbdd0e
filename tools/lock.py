"""Keep requirements.lock in step with pyproject.toml.

    python tools/lock.py            # regenerate the lock, keeping every pin that still fits
    python tools/lock.py --upgrade  # regenerate it with the newest versions the ranges allow
    python tools/lock.py --check    # exit 1 when pyproject.toml changed since the last lock
    python tools/lock.py --extract pip  # print one pin with its hashes (make install: pip first)

The lock is written by uv (pinned in the dev extra, so everyone resolves with the same uv) as one
universal resolution: environment markers instead of this machine's answers, and the hashes of
every wheel of each pinned version, so it installs on any Linux or macOS machine too. It holds the
runtime dependencies, every extra, the build backend from [build-system] and pip itself, which is
everything `make install` puts into .venv.

Its first line is a fingerprint of the parts of pyproject.toml that the resolution depends on,
plus the resolver options below. --check compares only that: it reads no network and so cannot
fail because a new release appeared on PyPI.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "requirements.lock"
FINGERPRINT_PREFIX = "# pyproject-sha256: "
STALE = "requirements.lock is out of date with pyproject.toml: run make lock"

# Packages that .venv needs besides the project's own dependencies: installing the project with
# --no-build-isolation takes the build backend from the venv, and pip is pinned like the rest.
TOOLING = ["pip"]

UV_OPTIONS = [
    "--universal",
    "--python-version",
    "3.11",
    "--all-extras",
    "--generate-hashes",
    "--custom-compile-command",
    "make lock",
]


def lock_inputs(pyproject: dict[str, object]) -> dict[str, object]:
    """What the resolution reads from pyproject.toml, in a canonical order."""
    project = pyproject.get("project", {})
    build = pyproject.get("build-system", {})
    assert isinstance(project, dict) and isinstance(build, dict)
    extras = project.get("optional-dependencies", {})
    return {
        "requires-python": project.get("requires-python"),
        "dependencies": sorted(project.get("dependencies", [])),
        "optional-dependencies": {name: sorted(reqs) for name, reqs in sorted(extras.items())},
        "build-system.requires": sorted(build.get("requires", [])),
        "tooling": TOOLING,
        "uv-options": UV_OPTIONS,
    }


def fingerprint() -> str:
    inputs = lock_inputs(tomllib.loads(PYPROJECT.read_text(encoding="utf-8")))
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def recorded_fingerprint() -> str | None:
    if not LOCK.exists():
        return None
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if line.startswith(FINGERPRINT_PREFIX):
            return line.removeprefix(FINGERPRINT_PREFIX).strip()
        if not line.startswith("#"):
            break
    return None


def check() -> int:
    if recorded_fingerprint() != fingerprint():
        print(STALE, file=sys.stderr)
        return 1
    return 0


def extract(name: str) -> int:
    """Print one package's pin and hashes, to install it (pip itself) before the rest."""
    lines = LOCK.read_text(encoding="utf-8").splitlines()
    for start, line in enumerate(lines):
        if line.startswith(f"{name}=="):
            end = start
            while lines[end].endswith("\\"):
                end += 1
            print("\n".join(lines[start : end + 1]))
            return 0
    print(f"{name} is not pinned in {LOCK.name}", file=sys.stderr)
    return 1


def lock(upgrade: bool) -> int:
    pyproject = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    build = pyproject.get("build-system", {})
    extra_inputs = "".join(f"{req}\n" for req in [*build.get("requires", []), *TOOLING])
    with tempfile.TemporaryDirectory() as scratch:
        # uv keeps the pins it finds in its output file, so it starts from a copy of the lock;
        # the lock is rewritten only when its text changes, so .venv is reinstalled only then.
        output = Path(scratch, LOCK.name)
        if LOCK.exists():
            shutil.copyfile(LOCK, output)
        command = [
            sys.executable,
            "-m",
            "uv",
            "pip",
            "compile",
            "--quiet",
            *UV_OPTIONS,
            *(["--upgrade"] if upgrade else []),
            "--output-file",
            str(output),
            "pyproject.toml",
            "-",  # the build backend and pip, from standard input
        ]
        done = subprocess.run(command, cwd=ROOT, input=extra_inputs, text=True, check=False)
        if done.returncode != 0:
            return done.returncode
        body = output.read_text(encoding="utf-8")
    header = (
        f"{FINGERPRINT_PREFIX}{fingerprint()}\n"
        "#    (of pyproject.toml's dependencies, extras and build requirements; "
        "`make lint` compares it)\n"
    )
    text = header + body
    if not LOCK.exists() or LOCK.read_text(encoding="utf-8") != text:
        LOCK.write_text(text, encoding="utf-8")
        print(f"{LOCK.name} updated")
    else:
        print(f"{LOCK.name} already up to date")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="fail when the lock is out of date")
    mode.add_argument("--upgrade", action="store_true", help="move every pin to the newest")
    mode.add_argument("--extract", metavar="NAME", help="print the pin and hashes of one package")
    args = parser.parse_args()
    if args.check:
        return check()
    if args.extract:
        return extract(args.extract)
    return lock(upgrade=args.upgrade)


if __name__ == "__main__":
    sys.exit(main())
