"""`save_figure`: one file per format, at the figure's size times the dpi."""

import struct

import matplotlib.figure
import numpy as np
import pytest

from keras_taylor import plotting


# ---------------------------------------------------------------------------
# Files.


def _png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR"
    return struct.unpack(">II", header[16:24])


@pytest.mark.parametrize("dpi", [72, 150], ids=["dpi72", "dpi150"])
def test_save_figure_writes_png_and_pdf_at_the_given_dpi(tmp_path, rng, dpi):
    figure = matplotlib.figure.Figure(figsize=(4.0, 2.5))
    plotting.plot_training_loss(figure.add_subplot(), {"adam": (np.arange(8), rng.uniform(size=8))})
    paths = plotting.save_figure(figure, tmp_path / "figures" / "fig6.v1", dpi=dpi)
    assert paths == [tmp_path / "figures" / "fig6.v1.png", tmp_path / "figures" / "fig6.v1.pdf"]
    assert all(path.stat().st_size > 0 for path in paths)
    assert _png_size(paths[0]) == (round(4.0 * dpi), round(2.5 * dpi))
    assert paths[1].read_bytes()[:5] == b"%PDF-"


def test_save_figure_refuses_no_formats_and_nonpositive_dpi(tmp_path):
    figure = matplotlib.figure.Figure()
    with pytest.raises(ValueError, match="format"):
        plotting.save_figure(figure, tmp_path / "fig", formats=())
    with pytest.raises(ValueError, match="dpi"):
        plotting.save_figure(figure, tmp_path / "fig", dpi=0)
    assert list(tmp_path.iterdir()) == []
