"""Quality metrics as pure functions over plain Python, NumPy or torch values.

This package imports nothing from Django, so it runs and is tested on a GPU box that has only torch
and transformers. The metrics themselves arrive with the scoring issue."""
