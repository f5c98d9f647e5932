"""Reads for the review desk: a dataset's agreement per rubric criterion, from the current labels
(gold samples apart, since every annotator labels those and they are scored against gold instead)."""

from __future__ import annotations

import itertools

import numpy as np
from django.db.models import Exists, OuterRef

from annotator.models import Dataset, GoldLabel, Label
from annotator.rubric import SCALES, config_from_settings

from . import agreement

# Cohen's kappa for the 1-5 scales is weighted quadratically (disagreeing by 2 costs four times 1).
ORDINAL_WEIGHTS = "quadratic"


def _criteria(rows: list[tuple], tags: tuple[str, ...], extra: list[str]) -> dict[str, tuple[str, dict]]:
    """{criterion: (level, {(sample, annotator): value})} for every criterion someone gave a value."""
    out: dict[str, tuple[str, dict]] = {}

    def put(name: str, level: str, key, value) -> None:
        if value in (None, ""):
            return
        out.setdefault(name, (level, {}))[1][key] = value

    for sample, user, acc, comp, conc, difficulty, verdict, error_tags, extra_values in rows:
        key = (sample, user)
        for name, value in zip(SCALES, (acc, comp, conc), strict=True):
            put(name, "ordinal", key, value)
        put("difficulty", "nominal", key, difficulty)
        put("verdict", "nominal", key, verdict)
        if verdict:  # a tag left unticked on a judged label means "not this error"
            for tag in tags:
                put(f"tag:{tag}", "nominal", key, int(tag in (error_tags or [])))
        for name in extra:
            put(name, "nominal", key, (extra_values or {}).get(name))
    # a tag nobody ever ticked says nothing about agreement
    return {k: v for k, v in out.items() if not k.startswith("tag:") or any(v[1].values())}


def dataset_agreement(dataset: Dataset, *, resamples: int = 1000, seed: int = 0) -> dict:
    """Per criterion: Krippendorff's alpha (ordinal for the scales, nominal otherwise), Fleiss' kappa
    over the samples every annotator of that criterion labelled, and Cohen's kappa for each pair of
    annotators (quadratic weights for the scales); each with a bootstrap 95% interval and its n."""
    config = config_from_settings(dataset.settings)
    rows = list(
        Label.objects.filter(dataset=dataset, is_current=True)
        .exclude(Exists(GoldLabel.objects.filter(sample=OuterRef("sample"))))
        .values_list("sample_id", "annotator__username", "accuracy", "completeness", "conciseness", "difficulty",
                     "verdict", "error_tags", "extra")
        .order_by("sample_id", "annotator__username")
        .iterator(chunk_size=5000)
    )
    criteria = _criteria(rows, config.tags, [f.name for f in config.extra_fields])
    report = []
    for name, (level, values) in criteria.items():
        users = sorted({u for _s, u in values})
        samples = sorted({s for s, _u in values})
        col = {s: i for i, s in enumerate(samples)}
        raw = [[None] * len(samples) for _ in users]
        for (s, u), v in values.items():
            raw[users.index(u)][col[s]] = v
        if level == "ordinal":
            matrix = np.array([[np.nan if v is None else float(v) for v in row] for row in raw])
        else:
            matrix, _labels = agreement.codes(raw)
        alpha = agreement.bootstrap(matrix, lambda m, lv=level: agreement.krippendorff_alpha(m, lv), resamples=resamples, seed=seed)
        counts = (~np.isnan(matrix)).sum(axis=0)
        fleiss = None
        if len(users) >= 3 and counts.max(initial=0) == len(users):
            full = matrix[:, counts == len(users)]
            fleiss = agreement.bootstrap(full, agreement.fleiss_kappa, resamples=resamples, seed=seed)
        weights = ORDINAL_WEIGHTS if level == "ordinal" else None
        pairs = []
        for (i, a), (j, b) in itertools.combinations(enumerate(users), 2):
            pair = matrix[[i, j]]
            est = agreement.bootstrap(pair, lambda m, w=weights: agreement.cohen_kappa(list(m[0]), list(m[1]), weights=w),
                                      resamples=resamples, seed=seed)
            if est.n:
                pairs.append({"a": a, "b": b, **est.as_dict()})
        report.append({
            "criterion": name, "level": level, "annotators": len(users), "samples": len(samples),
            "alpha": alpha.as_dict(), "fleiss": fleiss.as_dict() if fleiss else None, "cohen": pairs,
            "cohen_weights": weights,
        })
    return {"dataset": dataset.slug, "labels": len(rows), "criteria": report, "resamples": resamples, "seed": seed}
