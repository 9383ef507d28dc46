"""Each optimizer's color, the same in every figure of a paper or report."""

import types
import zlib
from collections.abc import Mapping

OPTIMIZER_COLORS: Mapping[str, str] = types.MappingProxyType(
    {
        "sgd": "tab:blue",
        "rmsprop": "tab:orange",
        "adam": "tab:green",
        "momentum": "tab:red",
        "signsgd": "tab:purple",
    }
)
# For names outside OPTIMIZER_COLORS; none of these is one of its colors.
_FALLBACK_COLORS = ("tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan", "black")


def optimizer_color(name: str) -> str:
    """The color of an optimizer in every figure.

    Args:
        name: Optimizer name, matched case-insensitively against `OPTIMIZER_COLORS`.

    Returns:
        A matplotlib color. Names outside `OPTIMIZER_COLORS` get a color from a fixed
        cycle chosen by a CRC32 of the lower-cased name, so that the choice is the same
        in every call and every process (Python's `hash` of a string is salted per
        process). Two unknown names can share a color.
    """
    key = name.strip().lower()
    if key in OPTIMIZER_COLORS:
        return OPTIMIZER_COLORS[key]
    return _FALLBACK_COLORS[zlib.crc32(key.encode()) % len(_FALLBACK_COLORS)]
