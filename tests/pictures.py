"""What a plot test can say about a PNG beyond its size: that lines of given
colours are drawn across it. C0 is the first colour of matplotlib's cycle and
of the report palette (rnnlab/report/plots.py COLORS); RED is the palette's second."""

import numpy as np
from PIL import Image

C0, C1, RED = (31, 119, 180), (255, 127, 14), (214, 39, 40)


def colour_pixels(png_path, rgb, tolerance: int = 40) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(rows, columns) of the pixels within `tolerance` of a colour, and the image's (height, width)."""
    img = np.asarray(Image.open(png_path).convert("RGB")).astype(int)
    rows, cols = np.nonzero(np.abs(img - np.array(rgb)).max(-1) < tolerance)
    return rows, cols, img.shape[:2]


def assert_lines_drawn(png_path, colours=(C0,), pixels: int = 100, span: float = 0.3) -> None:
    """Each colour covers at least `pixels` pixels spread over `span` of the
    image's width: a curve across the axes, not just its legend swatch
    (measured: a legend entry alone spans ~5 % of the width, a curve ~75 %)."""
    for rgb in colours:
        rows, cols, (height, width) = colour_pixels(png_path, rgb)
        assert len(rows) >= pixels, f"{png_path}: {len(rows)} pixels of {rgb}"
        assert cols.max() - cols.min() > span * width, (
            f"{png_path}: {rgb} spans {cols.max() - cols.min()} of {width} px"
        )
