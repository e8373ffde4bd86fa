"""The argument parser of every subcommand: argparse, with a usage error as one line (cli_support)."""

from __future__ import annotations

import argparse
from typing import NoReturn

from .cli_support import EXIT_ERROR, one_line


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``ckptlint: check: argument --fail-on: invalid choice …``)
    and exit 2, like every other error; ``--help`` shows the usage."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.split(" ", 1)[1] if " " in self.prog else None
        where = f"{command}: " if command else ""
        hint = f"ckptlint {command} --help" if command else "ckptlint --help"
        self.exit(EXIT_ERROR, f"ckptlint: {where}{one_line(message)} (see {hint})\n")
