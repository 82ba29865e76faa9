"""The bootstrap's Debian step (`tools/build.sh debian`) on the path a brand-new machine takes:
a listed package that is not installed gets installed and reported, and a failure says why.

Issue 9: the not-installed answer of ``dpkg-query`` once ended the script silently under
``set -e``, and CI never saw it because its machine had every package. These tests point the
script at a list of their own (``X0_DEBIAN_PACKAGES``) naming GNU ``hello``, a tiny package
nothing else needs, removed first, so the install branch runs on every run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "tools" / "build.sh"
PACKAGE = "hello"

pytestmark = pytest.mark.skipif(
    shutil.which("dpkg-query") is None or shutil.which("apt-get") is None,
    reason="the Debian bootstrap step needs dpkg and apt (Debian machines only)",
)


def _installed_version(pkg: str) -> str | None:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status} ${Version}", pkg],
        capture_output=True,
        text=True,
        check=False,
    )
    words = out.stdout.split()
    if out.returncode != 0 or len(words) < 4 or words[2] != "installed":
        return None
    return words[3]


def _remove(pkg: str) -> None:
    subprocess.run(
        ["apt-get", "remove", "-y", "-q", pkg],
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        capture_output=True,
        check=True,
    )


def _run_debian_step(listing: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "X0_APT_UPDATE"}
    env["X0_DEBIAN_PACKAGES"] = str(listing)
    return subprocess.run(
        ["bash", str(BUILD), "debian"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture
def absent_package() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("installing Debian packages needs root (CI and the dev machines are root)")
    if _installed_version(PACKAGE) is not None:
        _remove(PACKAGE)
    assert _installed_version(PACKAGE) is None
    yield PACKAGE
    if _installed_version(PACKAGE) is not None:
        _remove(PACKAGE)


def test_a_listed_package_that_is_not_installed_gets_installed_and_reported(
    absent_package: str, tmp_path: Path
) -> None:
    listing = tmp_path / "packages.txt"
    listing.write_text(f"# a list of one\n{absent_package}   2.\n")

    done = _run_debian_step(listing)

    assert done.returncode == 0, done.stderr
    assert f"installing Debian packages: {absent_package}" in done.stderr
    assert f"installed Debian packages: {absent_package}" in done.stderr
    assert "Debian packages: present" in done.stderr
    version = _installed_version(absent_package)
    assert version is not None and version.startswith("2.")


def test_a_version_that_breaks_the_pin_is_named(absent_package: str, tmp_path: Path) -> None:
    listing = tmp_path / "packages.txt"
    listing.write_text(f"{absent_package} 99.\n")

    done = _run_debian_step(listing)

    assert done.returncode != 0
    version = _installed_version(absent_package)
    assert version is not None
    assert f"{absent_package} is {version} but {listing} pins 99.*" in done.stderr


def test_a_package_that_cannot_be_installed_says_so(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("installing Debian packages needs root (CI and the dev machines are root)")
    listing = tmp_path / "packages.txt"
    listing.write_text("x0tta6bl4-no-such-package 1.\n")

    done = _run_debian_step(listing)

    assert done.returncode != 0
    assert "apt-get install x0tta6bl4-no-such-package failed" in done.stderr


def test_a_failing_command_names_its_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    done = subprocess.run(
        ["bash", str(BUILD), "debian"],
        env={**os.environ, "X0_TOOLS_CACHE": str(blocker / "tools")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "[tools] FAILED (exit 1) at tools/build.sh line" in done.stderr
    assert "mkdir -p" in done.stderr


def test_an_unreadable_list_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here.txt"
    done = _run_debian_step(missing)
    assert done.returncode != 0
    assert f"cannot read the Debian package list {missing}" in done.stderr
