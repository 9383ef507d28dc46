"""When to record: small, serializable step schedules.

A schedule answers `schedule(step) -> bool` for the global training step
(0-based, counted across epochs), and `schedule.epoch_due(epoch)` for
per-epoch recorders. Every schedule round-trips through `to_config` /
`from_config` so the run manifest says exactly what was recorded.
"""

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A recording schedule.

    Attributes:
        kind: "every_k_steps", "log_spaced", "at_steps" or "epochs".
        every: Period for "every_k_steps" and "epochs".
        start: First step (or epoch) that may be recorded.
        stop: Steps (or epochs) at or after `stop` are never recorded; None: no end.
        per_decade: Points per factor of 10 for "log_spaced".
        steps: The explicit steps of "at_steps".
    """

    kind: str
    every: int = 1
    start: int = 0
    stop: int | None = None
    per_decade: int = 20
    steps: tuple = ()

    def __post_init__(self):
        if self.kind not in ("every_k_steps", "log_spaced", "at_steps", "epochs"):
            raise ValueError(f"Unknown schedule kind. Received: kind={self.kind!r}")
        if self.every < 1:
            raise ValueError(f"Schedules need every >= 1. Received: every={self.every}")
        if self.per_decade < 1:
            raise ValueError(f"log_spaced needs per_decade >= 1. Received: per_decade={self.per_decade}")
        if self.start < 0 or (self.stop is not None and self.stop < self.start):
            raise ValueError(f"Schedules need 0 <= start <= stop. Received: start={self.start}, stop={self.stop}")

    def _in_range(self, index: int) -> bool:
        return index >= self.start and (self.stop is None or index < self.stop)

    def __call__(self, step: int) -> bool:
        """Whether global step `step` (0-based) is recorded."""
        if self.kind == "epochs" or not self._in_range(step):
            return False
        if self.kind == "every_k_steps":
            return (step - self.start) % self.every == 0
        if self.kind == "at_steps":
            return step in self.steps
        return _is_log_point(step - self.start, self.per_decade)

    def epoch_due(self, epoch: int) -> bool:
        """Whether the end of epoch `epoch` (0-based) is recorded (kind "epochs" only)."""
        return self.kind == "epochs" and self._in_range(epoch) and (epoch - self.start) % self.every == 0

    def to_config(self) -> dict:
        config = dataclasses.asdict(self)
        config["steps"] = list(self.steps)
        return config

    @classmethod
    def from_config(cls, config: dict) -> "Schedule":
        return cls(**{**config, "steps": tuple(config.get("steps", ()))})


def _is_log_point(offset: int, per_decade: int) -> bool:
    """Offsets 0, 1 and every integer nearest to 10^(k / per_decade), k = 0, 1, ..."""
    if offset <= 1:
        return offset >= 0
    k = round(per_decade * math.log10(offset))
    return any(round(10 ** (j / per_decade)) == offset for j in (k - 1, k, k + 1))


def every_step(start: int = 0, stop: int | None = None) -> Schedule:
    """Record every step."""
    return Schedule("every_k_steps", every=1, start=start, stop=stop)


def every_k_steps(k: int, start: int = 0, stop: int | None = None) -> Schedule:
    """Record steps start, start + k, start + 2k, ..."""
    return Schedule("every_k_steps", every=k, start=start, stop=stop)


def log_spaced(per_decade: int = 20, start: int = 0, stop: int | None = None) -> Schedule:
    """Record steps start + round(10^(j / per_decade)) (and start, start + 1): dense early, sparse late."""
    return Schedule("log_spaced", per_decade=per_decade, start=start, stop=stop)


def at_steps(steps) -> Schedule:
    """Record exactly the given global steps."""
    return Schedule("at_steps", steps=tuple(sorted({int(step) for step in steps})))


def every_epoch(k: int = 1, start: int = 0, stop: int | None = None) -> Schedule:
    """Record at the end of every k-th epoch."""
    return Schedule("epochs", every=k, start=start, stop=stop)
