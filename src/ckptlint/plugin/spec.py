"""pluggy hook specifications, typed: how rules, output formats and target resolvers plug in.

Built-in rules and reporters are registered through these very hooks, exactly
like third-party plugins (entry-point group ``ckptlint``). Hooks are called
with keyword arguments only; implementations run in LIFO registration order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

from .marker import PROJECT as PROJECT  # also exported from here: hookspecs.py (the old path) re-exports them
from .marker import Reporter as Reporter
from .marker import hookimpl as hookimpl

if TYPE_CHECKING:
    from ..context import FileContext
    from ..findings import Finding
    from ..rule import Rule
    from ..targets.signature import Signature

hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def ckptlint_rules() -> list[Rule]:  # type: ignore[empty-body]
    """Declare rules.

    Called once when the plugin manager is built. Each plugin returns the
    :class:`ckptlint.rule.Rule` objects it owns (code, name, default severity,
    summary, documentation). Codes must be unique across plugins and follow
    ``^[A-Z]{1,3}[0-9]{3}$``; ckptlint's own use ``CK`` (CK1xx safety, CK2xx
    compatibility, CK3xx device, CK4xx hygiene, CK9xx input).

    :return: a list of Rule.
    """


@hookspec
def ckptlint_check_file(context: FileContext) -> list[Finding] | None:
    """Report findings for one readable checkpoint.

    Called once per file after it was read and its weights_only verdict and
    (with a target) compatibility were computed. ``context`` holds the
    inventory, verdict, compat report, target, trusted globals and the
    effective configuration. Return findings only for codes your plugin
    declared (make them with ``RULE.finding(message, key=..., fix=...)``,
    which fills in the code and the rule's default severity); a code no
    plugin declared is a PluginError naming your plugin. Selection, severity overrides,
    per-file ignores and the baseline are applied afterwards by ckptlint.

    :param context: the file being checked.
    :return: a list of Finding, or None.
    """


@hookspec
def ckptlint_reporters() -> dict[str, Reporter]:  # type: ignore[empty-body]
    """Declare output formats for ``--format``.

    :return: a mapping of format name to a callable ``render(report, options) -> str``
        where ``report`` is a :class:`ckptlint.results.Report` and ``options`` a dict
        (``rules``: code -> Rule, ``color``: bool).
    """


@hookspec(firstresult=True)
def ckptlint_resolve_target(spec: str, kwargs: dict[str, Any]) -> tuple[Signature, Any] | None:
    """Turn a target spec into ``(Signature, live_model_or_None)``.

    Called for every ``--model`` / configured ``model`` spec; the first
    implementation that returns non-None wins, so a plugin can claim its own
    spec syntax (e.g. ``hf:bert-base-uncased``) and leave the rest to the
    built-in ``package.module:callable`` resolver, which runs last.

    :param spec: the spec text as the user wrote it.
    :param kwargs: keyword arguments for the target (may be empty).
    :return: ``(Signature, model or None)``, or None to pass.
    """
