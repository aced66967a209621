"""Run reports: matplotlib figures (figures.py) and the self-contained HTML page (html.py)."""
