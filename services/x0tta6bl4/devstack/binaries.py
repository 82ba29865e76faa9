"""Where the real parts' executables are: the tools cache (``make tools``) or PATH."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


class MissingTool(RuntimeError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"{name} is not installed: run `make tools` (tools/build.sh) to build or install it"
        )
        self.name = name


def tools_bin_dir() -> Path:
    explicit = os.environ.get("X0_TOOLS_BIN")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("X0_TOOLS_CACHE") or str(Path.home() / ".cache/x0tta6bl4/tools")
    return Path(cache) / "bin"


def find(name: str) -> str:
    """Absolute path of executable ``name``; the tools cache wins over PATH."""
    candidate = tools_bin_dir() / name
    if candidate.exists() and os.access(candidate, os.X_OK):
        return str(candidate)
    on_path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if on_path:
        return on_path
    raise MissingTool(name)
