"""Key matching that ignores case, as zot's own loader does.

zot reads its config through viper, which lower-cases every key, so zot's own examples
write ``"Ratelimit": {"Rate": 10}`` as readily as ``"ratelimit": {"rate": 10}``. Sections
built on :class:`ZotSection` accept either spelling, so such a file loads unchanged. Only
a section's own keys are matched this way; the keys of a mapping inside it (repository
globs, group names) keep their case.
"""

from __future__ import annotations

from typing import Any

from pydantic import model_validator

from dockyard.config.section import Section


class ZotSection(Section):
    """A section whose declared keys match in any case (``failDelay``, ``faildelay`` ...)."""

    @model_validator(mode="before")
    @classmethod
    def _any_case(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        canonical: dict[str, str] = {}
        for name, field in cls.model_fields.items():
            key = field.alias or name
            canonical.setdefault(key.lower(), key)
            canonical.setdefault(name.lower(), key)
        out: dict[Any, Any] = {}
        for key, value in data.items():
            target = canonical.get(key.lower()) if isinstance(key, str) else None
            if target is not None and target not in data and target not in out:
                out[target] = value
            else:
                out[key] = value
        return out
