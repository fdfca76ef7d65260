"""Shared pieces of the policy model: strict models, times of day, recurring days."""

from __future__ import annotations

import re
from datetime import date, time
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTH_DAY = re.compile(r"^(\d{2})-(\d{2})$")
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _parse_time_of_day(value: object) -> object:
    if isinstance(value, str):
        match = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
        if not match or int(match[1]) > 23 or int(match[2]) > 59:
            raise ValueError(f"expected a time of day as HH:MM, got {value!r}")
        return time(int(match[1]), int(match[2]))
    if isinstance(value, int):
        # YAML 1.1 reads an unquoted 02:00 as the sexagesimal number 120.
        raise ValueError(f"quote times of day (\"HH:MM\"); YAML read this one as the number {value}")
    return value


TimeOfDay = Annotated[time, BeforeValidator(_parse_time_of_day)]


class MonthDay(_Strict):
    """A day of the year that recurs: month and day, written ``MM-DD``."""

    month: int = Field(ge=1, le=12)
    day: int = Field(ge=1, le=31)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: object) -> object:
        if isinstance(value, str):
            match = _MONTH_DAY.match(value.strip())
            if not match:
                raise ValueError(f"expected a month and day as MM-DD, got {value!r}")
            return {"month": int(match[1]), "day": int(match[2])}
        return value

    @model_validator(mode="after")
    def _real_day(self) -> MonthDay:
        if self.day > _DAYS_IN_MONTH[self.month - 1]:
            raise ValueError(f"{self.month:02d}-{self.day:02d} is not a day of the year")
        return self

    def in_year(self, year: int) -> date:
        """This day in ``year``; 02-29 is read as 02-28 in common years."""
        try:
            return date(year, self.month, self.day)
        except ValueError:
            return date(year, 2, 28)

    def __str__(self) -> str:
        return f"{self.month:02d}-{self.day:02d}"

    def key(self) -> tuple[int, int]:
        return (self.month, self.day)
