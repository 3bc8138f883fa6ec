"""The Python distributions an application needs, and whether a node has them.

An application spec names them as PEP 508 requirements (``requires = ["requests>=2.31"]``).
They are not managed code: the code server loads and upgrades the application's own
modules, while these are imported from the node's environment as they are. So a release
whose requirements the node does not meet is refused at unpack and at check, naming each
missing or mismatched distribution, and a release whose requirements differ from the
running one's cannot be installed module by module (``requirements_change``).
"""

from __future__ import annotations

import importlib.metadata
from typing import TYPE_CHECKING

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["check_requirement", "installed_version", "requirements_change", "unmet"]


def check_requirement(text: str) -> str:
    """``text`` if it is a PEP 508 requirement (for pydantic validators).

    Raises:
        ValueError: it is not one.
    """
    try:
        Requirement(text)
    except InvalidRequirement as exc:
        raise ValueError(f"{text!r} is not a requirement such as 'requests>=2.31': {exc}") from None
    return text


def installed_version(distribution: str) -> str | None:
    """The version of ``distribution`` in this interpreter's environment, or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def unmet(
    requires: Iterable[tuple[str, str]],
    version_of: Callable[[str], str | None] = installed_version,
) -> list[str]:
    """What of ``requires`` (``(application, requirement)`` pairs) the environment lacks."""
    problems = []
    for app, text in requires:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue  # not for this platform or interpreter
        found = version_of(requirement.name)
        if found is None:
            problems.append(f"{app} needs {text}: {requirement.name} is not installed")
        elif requirement.specifier and not requirement.specifier.contains(found, prereleases=True):
            problems.append(f"{app} needs {text}: {requirement.name} {found} is installed")
    return problems


def requirements_change(old: Iterable[str], new: Iterable[str]) -> tuple[list[str], list[str]]:
    """``(added, removed)`` requirements between two releases, compared by name and specifier."""

    def key(text: str) -> str:
        requirement = Requirement(text)
        return f"{canonicalize_name(requirement.name)}{requirement.specifier}"

    before = {key(t): t for t in old}
    after = {key(t): t for t in new}
    return sorted(after[k] for k in after.keys() - before), sorted(
        before[k] for k in before.keys() - after
    )
