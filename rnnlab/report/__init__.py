"""Reports: plots and a self-contained HTML (or markdown + PNG) page for any
set of run directories and experiment output directories.

    collect.py   find runs and experiment outputs, read what they left behind
    plots.py     matplotlib figures in one house style (plot_run_curves, ...)
    document.py  what a report contains, independent of its format
    build.py     assemble a report (summary table, figures, samples) and write it
    html.py      render it as one HTML file with images inlined
    markdown.py  render it as markdown with PNG files beside it

This package imports nothing at import time, so that `rnnlab.report.kgate`
and friends stay cheap to import.
"""
