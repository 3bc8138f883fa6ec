"""A release spec seen with the application specs of exactly the versions it lists."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, final

if TYPE_CHECKING:
    from collections.abc import Mapping

    from server.spec.app_spec import AppSpec
    from server.spec.release_spec import ReleaseSpec

__all__ = ["ReleaseView"]


@final
@dataclass(frozen=True, slots=True)
class ReleaseView:
    """A release spec with the application specs of exactly the versions it lists."""

    spec: ReleaseSpec
    apps: Mapping[str, AppSpec]

    def app(self, name: str) -> AppSpec:
        """The spec of application ``name`` in this release."""
        return self.apps[name]

    def owner_of(self, module: str) -> AppSpec | None:
        """The application of this release that lists ``module``."""
        for entry in self.spec.applications:
            spec = self.apps[entry.name]
            if module in spec.modules:
                return spec
        return None
