"""Policy evaluation for ``http.accessControl``, with zot's semantics.

The longest repository glob matching a name decides (ties go to the first in lexical
order, so the outcome never depends on the order of keys in the file). Within it, a
user's own policies, then its groups' policies, then ``defaultPolicy`` (any authenticated
user) or ``anonymousPolicy`` (no credentials) grant actions; grants add up, nothing
denies. ``adminPolicy`` then grants its actions on every repository. Without an
``accessControl`` section an authenticated user may do everything and an anonymous one
nothing. A bearer token carries its own grants, which replace the policies entirely.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from dockyard.auth.identity import Identity
from dockyard.config.access_control import AccessControl, PolicyGroup
from dockyard.util.globs import compile_glob

READ, CREATE, UPDATE, DELETE = "read", "create", "update", "delete"

#: Our actions as a Docker token's repository actions ("*" grants them all).
TOKEN_ACTIONS = {READ: "pull", CREATE: "push", UPDATE: "push", DELETE: "delete"}

_MEMO_LIMIT = 4096


@dataclass(frozen=True)
class _Rule:
    pattern: str
    regex: re.Pattern[str]
    policies: PolicyGroup


class AccessPolicy:
    """Answers "may this identity do this action on this repository?"."""

    def __init__(self, config: AccessControl | None) -> None:
        self.config = config
        rules = sorted((config.repositories if config else {}).items(), key=_longest_first)
        self._rules = [_Rule(p, compile_glob(p), group) for p, group in rules]
        self._groups: dict[str, frozenset[str]] = {}
        if config is not None:
            for name, group in config.groups.items():
                for user in group.users:
                    self._groups[user] = self._groups.get(user, frozenset()) | {name}
        self._matched: dict[str, PolicyGroup | None] = {}

    def groups_of(self, user: str) -> frozenset[str]:
        """The ``accessControl.groups`` a user belongs to."""
        return self._groups.get(user, frozenset())

    def anonymous_allowed(self) -> bool:
        return self.config is not None and self.config.anonymous_allowed()

    def rule_for(self, repo: str) -> PolicyGroup | None:
        """The policies of the longest glob matching ``repo`` (memoised per name)."""
        try:
            return self._matched[repo]
        except KeyError:
            pass
        found = next((r.policies for r in self._rules if r.regex.match(repo)), None)
        if len(self._matched) >= _MEMO_LIMIT:
            self._matched.clear()
        self._matched[repo] = found
        return found

    def allows(self, who: Identity, action: str, repo: str) -> bool:
        if not who.in_scope(repo):
            return False
        if who.grants is not None:
            return _token_allows(who, action, repo)
        if self.config is None:
            return not who.anonymous
        group = self.rule_for(repo)
        if group is not None and _group_allows(group, who, action):
            return True
        return self.is_admin(who) and action in self.config.admin_policy.actions

    def is_admin(self, who: Identity) -> bool:
        """Whether ``adminPolicy`` names ``who`` or one of its groups (a bearer token
        never counts: its rights are the grants it carries)."""
        if self.config is None or who.grants is not None:
            return False
        admin = self.config.admin_policy
        return (who.user is not None and who.user in admin.users) or bool(
            who.groups & set(admin.groups)
        )

    def may_read_metrics(self, who: Identity) -> bool:
        """Whether ``who`` may read ``/metrics``, whose labels name every repository.

        Listed in ``accessControl.metrics.users`` when that is set; otherwise only who may
        read every repository anyway: ``adminPolicy`` users with ``read``, any user when
        there is no ``accessControl``, a token with ``registry:catalog:*``. An API key
        limited to some repositories never may.
        """
        if who.anonymous or who.scopes is not None:
            return False
        if who.grants is not None:
            return "*" in who.grants.get(("registry", "catalog"), frozenset())
        if self.config is None:
            return True
        if self.config.metrics is not None:
            return who.user in self.config.metrics.users
        admin = self.config.admin_policy
        is_admin = who.user in admin.users or bool(who.groups & set(admin.groups))
        return is_admin and READ in admin.actions

    def reader(self, who: Identity) -> Callable[[str], bool]:
        """``repo -> may who read it``, memoised for the life of one request."""
        seen: dict[str, bool] = {}

        def can_read(repo: str) -> bool:
            try:
                return seen[repo]
            except KeyError:
                seen[repo] = ok = self.allows(who, READ, repo)
                return ok

        return can_read


def _longest_first(item: tuple[str, PolicyGroup]) -> tuple[int, str]:
    return (-len(item[0]), item[0])


def _group_allows(group: PolicyGroup, who: Identity, action: str) -> bool:
    for policy in group.policies:
        if action not in policy.actions:
            continue
        if who.user is not None and who.user in policy.users:
            return True
        if who.groups & set(policy.groups):
            return True
    if who.anonymous:
        return action in group.anonymous_policy
    return action in group.default_policy


def _token_allows(who: Identity, action: str, repo: str) -> bool:
    granted = (who.grants or {}).get(("repository", repo), frozenset())
    return "*" in granted or TOKEN_ACTIONS[action] in granted
