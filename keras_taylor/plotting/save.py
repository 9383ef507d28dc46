"""Writing a figure to files, one per format."""

import os
import pathlib
from collections.abc import Sequence

import matplotlib.figure


def save_figure(
    fig: matplotlib.figure.Figure,
    path_stem: str | os.PathLike,
    formats: Sequence[str] = ("png", "pdf"),
    dpi: float = 150,
) -> list[pathlib.Path]:
    """Writes `fig` once per format, as `<path_stem>.<format>`, creating parent directories.

    The figure's size is kept as set (no tight bounding box), so a PNG is exactly
    `figsize × dpi` pixels.

    Args:
        fig: The figure.
        path_stem: Path without extension; a dot in its name is kept, not replaced.
        formats: File formats matplotlib can write, e.g. "png", "pdf", "svg".
        dpi: Resolution of raster formats.

    Returns:
        The written paths, in `formats` order.

    Raises:
        ValueError: If `formats` is empty or `dpi` is not positive.
    """
    if not formats:
        raise ValueError(f"Expected at least one format. Received: formats={formats!r}")
    if not dpi > 0:
        raise ValueError(f"Expected a positive dpi. Received: dpi={dpi}")
    stem = pathlib.Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for file_format in formats:
        path = stem.with_name(f"{stem.name}.{file_format}")
        fig.savefig(path, format=file_format, dpi=dpi)
        paths.append(path)
    return paths
