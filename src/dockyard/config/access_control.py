"""``http.accessControl``: who may do what to which repositories, in zot's format.

``repositories`` maps globs (``**`` any depth, ``*`` one level) to policies; the longest
matching glob decides. Actions are ``read``, ``create``, ``update`` and ``delete``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from dockyard.config.section import ZotSection

#: Every action a policy may grant. ``detectManifestCollision`` is zot's; dockyard never
#: stores two manifests under one digest, so it is accepted and grants nothing more.
ACTIONS = frozenset({"read", "create", "update", "delete", "detectManifestCollision"})


def _known_actions(value: list[str]) -> list[str]:
    unknown = sorted(set(value) - ACTIONS)
    if unknown:
        raise ValueError(
            f"unknown action {unknown[0]!r}; actions are read, create, update and delete"
        )
    return value


class Policy(ZotSection):
    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    actions: list[str] = Field(default_factory=list)

    _actions = field_validator("actions")(_known_actions)


class PolicyGroup(ZotSection):
    policies: list[Policy] = Field(default_factory=list)
    #: For any authenticated user no policy names.
    default_policy: list[str] = Field(default_factory=list, alias="defaultPolicy")
    #: For requests without credentials.
    anonymous_policy: list[str] = Field(default_factory=list, alias="anonymousPolicy")

    _actions = field_validator("default_policy", "anonymous_policy")(_known_actions)


class Group(ZotSection):
    users: list[str] = Field(default_factory=list)


class MetricsAccess(ZotSection):
    """zot's ``accessControl.metrics``: the users who may read ``/metrics``."""

    users: list[str] = Field(default_factory=list)


class AccessControl(ZotSection):
    repositories: dict[str, PolicyGroup] = Field(default_factory=dict)
    #: Who may read the metrics (which name every repository); None: who reads everything.
    metrics: MetricsAccess | None = None
    #: Granted on every repository, whatever its own policies say.
    admin_policy: Policy = Field(default_factory=Policy, alias="adminPolicy")
    groups: dict[str, Group] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _old_layout(cls, data: Any) -> Any:
        """zot before 2.0 put the repository globs directly under ``accessControl``."""
        if isinstance(data, dict):
            for key, value in data.items():
                looks_like_repo = isinstance(value, dict) and bool(
                    {"policies", "defaultPolicy", "anonymousPolicy"} & set(value)
                )
                if looks_like_repo and key.lower() not in ("repositories", "adminpolicy"):
                    raise ValueError(
                        f"repository policies go under accessControl.repositories "
                        f"(zot 2.0 format); found {key!r} directly under accessControl"
                    )
        return data

    def anonymous_allowed(self) -> bool:
        """Whether some repository grants something to requests without credentials."""
        return any(group.anonymous_policy for group in self.repositories.values())

    def only_anonymous(self) -> bool:
        """Whether nothing here needs a user name: no user, group or default policies."""
        admin = self.admin_policy
        if admin.users or admin.groups:
            return False
        return all(
            not group.default_policy and not any(p.users or p.groups for p in group.policies)
            for group in self.repositories.values()
        )
