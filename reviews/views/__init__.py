"""HTML pages of the review desk: the conflict queue and adjudication (desk.py), dashboards (dashboard.py)."""
