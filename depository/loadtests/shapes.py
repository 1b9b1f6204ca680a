"""Load shapes as declarative stage tables.

A shape is a table of stages, each holding a user count (and, for paced users, an offered
rate per user) until a point in run time. :meth:`StageTable.tick_at` is a pure function
of run time, so a shape can be tested, plotted and reasoned about without running
locust. The locust files combine a table with locust's ``LoadTestShape``::

    class Shape(StageTable, LoadTestShape):
        stages = ramp_hold(users=100, ramp_s=10, hold_s=180)

This module does not import locust.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Stage:
    """Hold ``users`` users (spawned at ``spawn_rate`` per second) until ``until`` seconds
    after the start; ``rate_per_user`` is the pace of paced users (requests per second
    each), so the offered load of the stage is ``users * rate_per_user``."""

    until: float
    users: int
    spawn_rate: float
    rate_per_user: float | None = None
    label: str = ""

    @property
    def offered_rate(self) -> float | None:
        return None if self.rate_per_user is None else self.users * self.rate_per_user

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Stage:
        return cls(
            until=float(data["until"]), users=int(data["users"]),
            spawn_rate=float(data["spawn_rate"]),
            rate_per_user=None if data.get("rate_per_user") is None
            else float(data["rate_per_user"]),
            label=str(data.get("label", "")),
        )


class StageTable:
    """Mix-in for locust's ``LoadTestShape``: ``tick()`` reads the table at the run time.

    Subclasses set ``stages``. ``get_run_time`` is provided by ``LoadTestShape``.
    """

    stages: Sequence[Stage] = ()

    def tick_at(self, run_time: float) -> tuple[int, float] | None:
        """(users, spawn rate) at ``run_time`` seconds, or None once the table is over."""
        return tick_at(self.stages, run_time)

    def tick(self) -> tuple[int, float] | None:
        get_run_time = getattr(self, "get_run_time", None)
        if get_run_time is None:
            raise TypeError("StageTable.tick needs locust's LoadTestShape (get_run_time)")
        return self.tick_at(float(get_run_time()))


def tick_at(stages: Sequence[Stage], run_time: float) -> tuple[int, float] | None:
    """The stage table's value at ``run_time``: a pure function of its arguments."""
    if run_time < 0:
        raise ValueError(f"run time cannot be negative: {run_time}")
    for stage in stages:
        if run_time < stage.until:
            return stage.users, stage.spawn_rate
    return None


def stage_index(stages: Sequence[Stage], run_time: float) -> int | None:
    """Index of the stage in force at ``run_time`` (None before 0 or after the end)."""
    if run_time < 0:
        return None
    for i, stage in enumerate(stages):
        if run_time < stage.until:
            return i
    return None


def duration(stages: Sequence[Stage]) -> float:
    return stages[-1].until if stages else 0.0


def constant(users: int, seconds: float, *, spawn_rate: float | None = None,
             rate_per_user: float | None = None, label: str = "hold") -> list[Stage]:
    """``users`` users for ``seconds`` (spawned at once unless ``spawn_rate``)."""
    _check(users, seconds)
    return [Stage(until=seconds, users=users, spawn_rate=spawn_rate or float(users),
                  rate_per_user=rate_per_user, label=label)]


def ramp_hold(users: int, ramp_s: float, hold_s: float) -> list[Stage]:
    """Ramp linearly to ``users`` over ``ramp_s`` seconds, then hold for ``hold_s``."""
    _check(users, hold_s)
    if ramp_s <= 0:
        return constant(users, hold_s)
    rate = max(users / ramp_s, 1.0)
    return [
        Stage(until=ramp_s, users=users, spawn_rate=rate, label="ramp"),
        Stage(until=ramp_s + hold_s, users=users, spawn_rate=rate, label="hold"),
    ]


def steps(rates: Sequence[float], step_s: float, rate_per_user: float) -> list[Stage]:
    """Offered load stepped upward: for each rate, ``rate / rate_per_user`` paced users
    for ``step_s`` seconds. Users are added at once at each step boundary."""
    if not rates or rate_per_user <= 0 or step_s <= 0:
        raise ValueError("steps need at least one rate, a positive step and a positive pace")
    if list(rates) != sorted(rates):
        raise ValueError(f"step rates must increase: {list(rates)}")
    out: list[Stage] = []
    for i, rate in enumerate(rates):
        users = max(1, round(rate / rate_per_user))
        out.append(Stage(until=(i + 1) * step_s, users=users, spawn_rate=float(users),
                         rate_per_user=rate_per_user, label=f"{rate:g}/s"))
    return out


def dump(stages: Sequence[Stage]) -> list[dict[str, Any]]:
    return [s.to_json() for s in stages]


def load(data: Sequence[Mapping[str, Any]]) -> list[Stage]:
    stages = [Stage.from_json(d) for d in data]
    last = 0.0
    for s in stages:
        if s.until <= last or s.users < 0 or s.spawn_rate <= 0:
            raise ValueError(f"invalid stage table (until must increase, users >= 0): {s}")
        last = s.until
    return stages


def _check(users: int, seconds: float) -> None:
    if users < 1 or seconds <= 0:
        raise ValueError(f"need at least one user and a positive duration ({users}, {seconds})")
