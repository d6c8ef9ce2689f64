"""When the worker takes work: `hours` ("19:00-08:00", several as "12:00-13:00,19:00-08:00") on
`days` ("mon-fri", "sat,sun"; empty: every day). A window that crosses midnight belongs to the day
it starts on: "fri 22:00-06:00" runs into Saturday morning. Empty hours: always."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _minute(text: str) -> int:
    hh, sep, mm = text.strip().partition(":")
    if not sep or not hh.isdigit() or not mm.isdigit() or len(mm) != 2:
        raise ValueError(f"hours: {text.strip()!r} is not a time like 19:00")
    h, m = int(hh), int(mm)
    if h > 24 or m > 59 or (h == 24 and m):
        raise ValueError(f"hours: {text.strip()!r} is not a time of day")
    return h * 60 + m


def _days(text: str) -> set[int]:
    out: set[int] = set()
    for part in (p.strip().lower() for p in text.split(",")):
        if not part:
            continue
        first, _, last = part.partition("-")
        try:
            a, b = DAYS.index(first[:3]), DAYS.index((last or first)[:3])
        except ValueError:
            raise ValueError(f"days: {part!r} is not a day or a range like mon-fri") from None
        out.update(DAYS.index(d) % 7 for d in (DAYS * 2)[a:a + (b - a) % 7 + 1])
    return out or set(range(7))


@dataclass(frozen=True)
class Schedule:
    windows: tuple[tuple[int, int], ...]  # (start minute, end minute); end <= start crosses midnight
    days: frozenset[int]
    text: str

    @classmethod
    def parse(cls, hours: str, days: str = "") -> Schedule:
        windows = []
        for part in (p for p in hours.split(",") if p.strip()):
            start, sep, end = part.partition("-")
            if not sep:
                raise ValueError(f"hours: {part.strip()!r} is not a window like 19:00-08:00")
            a, b = _minute(start), _minute(end)
            if a == b:
                raise ValueError(f"hours: {part.strip()!r} is an empty window")
            windows.append((a, b))
        text = ", ".join(filter(None, [hours.strip(), days.strip()]))
        return cls(tuple(windows), frozenset(_days(days)), text)

    @property
    def always(self) -> bool:
        return not self.windows and len(self.days) == 7

    def allows(self, when: datetime) -> bool:
        minute = when.hour * 60 + when.minute
        if not self.windows:
            return when.weekday() in self.days
        for a, b in self.windows:
            if a < b and a <= minute < b and when.weekday() in self.days:
                return True
            if b <= a:  # crosses midnight: the evening part today, the morning part from yesterday
                if minute >= a and when.weekday() in self.days:
                    return True
                if minute < b and (when - timedelta(days=1)).weekday() in self.days:
                    return True
        return False
