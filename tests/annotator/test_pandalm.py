"""The README's example of moving labels in: PandaLM's human test set (three annotators per item)
converted by examples/pandalm_to_sftdesk.py and loaded with import_samples + import_labels. The
stored labels reproduce the pairwise Cohen's kappa the PandaLM authors report (0.85, 0.88, 0.86).
Skipped when ../shared/data is absent."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from sklearn.metrics import cohen_kappa_score

from annotator.models import Dataset, Label, Sample

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pandalm_human_3x999.json"


@pytest.mark.skipif(not DATA.exists(), reason=f"{DATA} is absent")
def test_pandalm_labels_move_in_and_keep_their_agreement(db, owner, tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
    try:
        import pandalm_to_sftdesk
    finally:
        sys.path.pop(0)
    import json

    n_items, n_labels = pandalm_to_sftdesk.convert(json.loads(DATA.read_text(encoding="utf-8")), tmp_path)
    call_command("import_samples", "pandalm", str(tmp_path / "samples.jsonl"), "--create", "--owner", owner.username)
    call_command("import_labels", "pandalm", str(tmp_path / "labels.csv"), "--field", "preference=0,1,2")
    assert "2997 labels imported for 999 samples (3 new users)" in capsys.readouterr().out

    dataset = Dataset.objects.get(slug="pandalm")
    assert (n_items, n_labels) == (999, 2997)
    assert Sample.objects.filter(dataset=dataset).count() == 999
    prefs: dict[str, dict[str, str]] = {}
    for ext, user, extra in Label.objects.filter(dataset=dataset, is_current=True).values_list("sample__external_id", "annotator__username", "extra"):
        prefs.setdefault(user, {})[ext] = extra["preference"]
    kappas = {}
    for a, b in itertools.combinations(sorted(prefs), 2):
        ids = sorted(prefs[a].keys() & prefs[b].keys())
        kappas[(a[-1], b[-1])] = round(cohen_kappa_score([prefs[a][i] for i in ids], [prefs[b][i] for i in ids]), 2)
    assert kappas == {("1", "2"): 0.85, ("1", "3"): 0.88, ("2", "3"): 0.86}

    # and sftdesk's own agreement report gives the same figures
    call_command("agreement", "pandalm", "--format", "json", "--resamples", "20")
    report = json.loads(capsys.readouterr().out)
    preference = next(c for c in report["criteria"] if c["criterion"] == "preference")
    assert [round(p["value"], 2) for p in preference["cohen"]] == [0.85, 0.88, 0.86]
    assert all(p["n"] == 999 for p in preference["cohen"])
