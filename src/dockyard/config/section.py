"""The base of every config section, and the value types sections share."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict

from dockyard.config.durations import parse_duration


class Section(BaseModel):
    """A config section: zot's camelCase keys, unknown keys kept so they can be reported."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


#: Seconds, written in the config as a duration string (``"90s"``, ``"1h"``).
Duration = Annotated[float, BeforeValidator(parse_duration)]
