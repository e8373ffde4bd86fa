"""The version, written once (``ckptlint.__version__`` re-exports it; the build reads it from there).

A module of its own so renderers (SARIF's ``tool.driver.version``) and the command line can
name it without importing the package's API module, which reaches the engine."""

from __future__ import annotations

__version__ = "0.1.0.dev0"
