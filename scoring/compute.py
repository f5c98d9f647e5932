"""Glue between stored samples and the pure metric functions in scoring/metrics: what each stage
computes for a list of samples, with reuse of unchanged work. Reads the database (embeddings kept
from earlier runs, earlier metric values); writing is left to services.write_results."""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from annotator.models import Sample
from scoring.metrics import cleaning, duplicates
from scoring.metrics.base import Flag, MetricResult

from .models import SampleEmbedding, SampleMetric

RULES_VERSION = "rules-1"
# The metric whose stored input hash tells whether a sample's rules must be computed again. A result
# that carries an input hash is always stored, even when its value is empty.
REUSE_MARKER = cleaning.RULES[0]


class ModelMissing(Exception):
    """A configured model cannot be loaded: the metrics that need it fail, the run goes on."""


@dataclass
class Outcome:
    results: dict[int, list[MetricResult]] = field(default_factory=dict)
    metrics: list[str] = field(default_factory=list)  # metric names this outcome replaces
    computed: int = 0
    reused: int = 0
    errors: list[dict] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)
    sample_ids: list[int] = field(default_factory=list)  # samples whose rows of `metrics` are replaced


def config_params() -> dict[str, Any]:
    return {"rules_version": RULES_VERSION, "cleaning": jsonable(cleaning.CleaningConfig().__dict__),
            "duplicates": jsonable(duplicates.DuplicateConfig().__dict__)}


def jsonable(value: Any) -> Any:
    """Metric details made JSON-safe (NumPy scalars, tuples, sets, non-finite floats)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def instruction_of(messages: Sequence[dict]) -> str:
    return "\n".join(m["content"] for m in messages if m.get("role") == "user")


def answer_of(messages: Sequence[dict]) -> str:
    return next((m["content"] for m in reversed(messages) if m.get("role") == "assistant"), "")


def last_instruction_of(messages: Sequence[dict]) -> str:
    """The user turn the last answer replies to (multi-turn samples: not the earlier questions)."""
    last_answer = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=len(messages))
    return next((messages[i]["content"] for i in range(last_answer - 1, -1, -1) if messages[i].get("role") == "user"), "")


def parse_languages(value: str) -> list[str]:
    """SFTDESK_EMBEDDER_LANGUAGES as a sorted list of language codes; ["*"] for every language."""
    codes = sorted({c.strip().lower() for c in (value or "").split(",") if c.strip()})
    return ["*"] if not codes or "*" in codes else codes


def embedder_covers(run, samples: Sequence[Sample]) -> list[bool]:
    """Whether the run's embedder understands each sample's language (Sample.language). A sample with
    no detected language (no letters: code, numbers) counts as covered; a run made before languages
    were recorded covers everything."""
    languages = set(run.params.get("embedder_languages") or ["*"])
    if "*" in languages:
        return [True] * len(samples)
    return [not s.language or s.language in languages for s in samples]


def coverage_summary(run, samples: Sequence[Sample], covered: Sequence[bool], skipped: Sequence[str]) -> dict[str, Any] | None:
    """What the embedder could not judge, for the report: {"languages", "not_covered": {language: n},
    "metrics": [...]}; None when it covers every sample."""
    missing: dict[str, int] = defaultdict(int)
    for s, ok in zip(samples, covered, strict=True):
        if not ok:
            missing[s.language] += 1
    if not missing:
        return None
    return {"languages": run.params.get("embedder_languages"), "not_covered": dict(sorted(missing.items(), key=lambda kv: -kv[1])),
            "metrics": sorted(skipped)}


def _h(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _reusable(samples: Sequence[Sample], metric: str, key: Callable[[Sample], str]) -> set[int]:
    """Ids of samples whose stored `metric` row was computed from the same input (content + config/model)."""
    stored = dict(SampleMetric.objects.filter(sample_id__in=[s.id for s in samples], metric=metric).values_list("sample_id", "input_hash"))
    return {s.id for s in samples if stored.get(s.id) == key(s)}


# ---------------------------------------------------------------------------------------------
# rules (cpu, chunked)
# ---------------------------------------------------------------------------------------------

def rules_stage(run, samples: Sequence[Sample]) -> Outcome:
    out = Outcome()
    want_rules = "rules" in run.metrics
    want_heuristic = "difficulty" in run.metrics and not run.params.get("causal_lm")
    if want_rules:
        out.metrics += [name for name in cleaning.RULES]
    if want_heuristic:
        from scoring.metrics import difficulty

        out.metrics.append(difficulty.HEURISTIC_METRIC)
    key = lambda s: _h(s.content_hash, RULES_VERSION, s.task_type, str(want_heuristic))  # noqa: E731
    reuse = _reusable(samples, REUSE_MARKER, key) if want_rules else set()
    for s in samples:
        if s.id in reuse:
            out.reused += 1
            continue
        items: list[MetricResult] = []
        if want_rules:
            for r in cleaning.clean_sample(s.messages, task_type=s.task_type):
                if r.name == REUSE_MARKER:
                    r.details = {**(r.details or {}), "_input_hash": key(s)}
                items.append(r)
        if want_heuristic:
            items += difficulty.heuristic_results([(last_instruction_of(s.messages), answer_of(s.messages))])
        out.results[s.id] = items
        out.computed += 1
    out.sample_ids = [s.id for s in samples if s.id not in reuse]  # reused samples keep their rows
    return out


# ---------------------------------------------------------------------------------------------
# embeddings (gpu, chunked)
# ---------------------------------------------------------------------------------------------

def _embedder(run):
    from scoring import encoders

    path = run.params.get("embedder")
    try:
        return encoders.get_embedder(None if path in (None, "", "default") else path)
    except encoders.ModelUnavailable as exc:
        raise ModelMissing(f"embedder: {exc}") from exc


def embedder_key(embedder) -> str:
    info = embedder.info()
    return _h(str(info.get("name")), str(info.get("weights_sha256") or info.get("sha256") or info.get("path")))[:32]


def embed_texts(samples: Sequence[Sample], kind: str, texts: dict[int, str], embedder, key: str) -> tuple[dict[int, np.ndarray], int, int]:
    """Vectors for `texts` (sample id -> text), reusing stored ones whose content is unchanged."""
    hashes = {sid: _h(t) for sid, t in texts.items()}
    stored = SampleEmbedding.objects.filter(sample_id__in=list(texts), kind=kind, model_key=key).values_list("sample_id", "content_hash", "vector")
    vectors = {sid: np.frombuffer(bytes(vec), dtype=np.float32) for sid, h, vec in stored if hashes.get(sid) == h}
    missing = [sid for sid in texts if sid not in vectors]
    if missing:
        fresh = embedder.encode([texts[sid] for sid in missing])
        rows = []
        for sid, vec in zip(missing, fresh, strict=True):
            vec = np.ascontiguousarray(vec, dtype=np.float32)
            vectors[sid] = vec
            rows.append(SampleEmbedding(sample_id=sid, kind=kind, model_key=key, content_hash=hashes[sid], vector=vec.tobytes()))
        SampleEmbedding.objects.bulk_create(rows, batch_size=500, update_conflicts=True, unique_fields=["sample", "kind", "model_key"],
                                            update_fields=["content_hash", "vector"])
    return vectors, len(missing), len(texts) - len(missing)


def embed_stage(run, samples: Sequence[Sample]) -> Outcome:
    """Instruction and answer embeddings (kept for reuse), completeness and reference similarity.
    Samples in a language the embedder does not cover are not embedded: their similarities would be
    noise, and nothing downstream may use them (they count as `skipped`)."""
    out = Outcome()
    embedder = _embedder(run)
    key = embedder_key(embedder)
    out.models["embedder"] = jsonable(embedder.info())
    out.models["embedder_key"] = key
    out.sample_ids = [s.id for s in samples]  # every sample's rows of the stage's metrics are replaced
    samples = [s for s, ok in zip(samples, embedder_covers(run, samples), strict=True) if ok]
    _vi, computed, reused = embed_texts(samples, "instruction", {s.id: instruction_of(s.messages) for s in samples}, embedder, key)
    answers, c2, r2 = embed_texts(samples, "answer", {s.id: answer_of(s.messages) for s in samples}, embedder, key)
    out.computed, out.reused = computed + c2, reused + r2
    refs = {s.id: s.meta.get("reference_answer") for s in samples if isinstance(s.meta, dict) and s.meta.get("reference_answer")}
    if "accuracy" in run.metrics and "completeness" not in run.metrics:
        from scoring.metrics import consistency

        out.metrics.append("reference_similarity")
        ref_vecs = embed_texts(samples, "reference", refs, embedder, key)[0] if refs else {}
        for sid, vec in ref_vecs.items():
            out.results[sid] = [consistency.reference_similarity(answers[sid], vec)]
    if "completeness" in run.metrics:
        from scoring.metrics import completeness, consistency

        out.metrics += ["completeness", "reference_similarity"]
        asks = {s.id: completeness.split_asks(last_instruction_of(s.messages)) for s in samples}
        sentences = {s.id: completeness.split_sentences(answer_of(s.messages)) for s in samples}
        flat = [t for sid in asks for t in asks[sid]] + [t for sid in sentences for t in sentences[sid]]
        vecs = embedder.encode(flat) if flat else np.zeros((0, embedder.dim), dtype=np.float32)
        pos = 0
        ask_vecs, sent_vecs = {}, {}
        for sid in asks:
            ask_vecs[sid] = vecs[pos:pos + len(asks[sid])]
            pos += len(asks[sid])
        for sid in sentences:
            sent_vecs[sid] = vecs[pos:pos + len(sentences[sid])]
            pos += len(sentences[sid])
        ref_vecs, _c, _r = embed_texts(samples, "reference", refs, embedder, key) if refs else ({}, 0, 0)
        for s in samples:
            # an empty answer covers nothing, and the empty_answer rule already says so
            items = [completeness.completeness(asks[s.id], ask_vecs[s.id], sent_vecs[s.id])] if sentences[s.id] else []
            if s.id in ref_vecs:
                items.append(consistency.reference_similarity(answers[s.id], ref_vecs[s.id]))
            out.results[s.id] = items
    return out


# ---------------------------------------------------------------------------------------------
# IFD (gpu, chunked)
# ---------------------------------------------------------------------------------------------

def _model_pair_stage(run, samples: Sequence[Sample], *, metric: str, model_kind: str, load: Callable, extra_key: str,
                      score: Callable) -> Outcome:
    """A gpu stage that scores (instruction, answer) pairs with one local model: load it (a missing
    model fails only this metric), skip samples whose content and model are unchanged, score the rest.
    `score(model, info, pairs)` returns one MetricResult per pair."""
    from scoring import encoders

    out = Outcome(metrics=[metric])
    try:
        model = load()
    except encoders.ModelUnavailable as exc:
        raise ModelMissing(f"{model_kind.replace('_', ' ')}: {exc}") from exc
    info = model.info()
    out.models[model_kind] = jsonable(info)
    model_hash = str(info.get("weights_sha256") or info.get("path"))
    key = lambda s: _h(s.content_hash, model_hash, extra_key)  # noqa: E731
    reuse = _reusable(samples, metric, key)
    todo = [s for s in samples if s.id not in reuse]
    results = score(model, info, [(last_instruction_of(s.messages), answer_of(s.messages)) for s in todo]) if todo else []
    for s, r in zip(todo, results, strict=True):
        r.details = {**(r.details or {}), "_input_hash": key(s)}
        out.results[s.id] = [r]
    out.computed, out.reused = len(todo), len(reuse)
    out.sample_ids = [s.id for s in todo]
    return out


def ifd_stage(run, samples: Sequence[Sample]) -> Outcome:
    from scoring import encoders
    from scoring.metrics import difficulty

    return _model_pair_stage(
        run, samples, metric="ifd", model_kind="causal_lm", extra_key="",
        load=lambda: encoders.get_causal_lm(run.params.get("causal_lm")),
        score=lambda lm, _info, pairs: difficulty.ifd_results(lm, pairs),
    )


def judge_stage(run, samples: Sequence[Sample]) -> Outcome:
    """Accuracy as a reward/judge model scores it (SFTDESK_REWARD_MODEL), reused while unchanged."""
    from scoring import encoders
    from scoring.metrics import accuracy

    threshold = run.params.get("reward_threshold")
    return _model_pair_stage(
        run, samples, metric=accuracy.METRIC, model_kind="reward_model", extra_key=str(threshold),
        load=lambda: encoders.get_reward_model(run.params.get("reward_model")),
        score=lambda judge, info, pairs: accuracy.reward_results(judge.score(pairs), threshold=threshold, model=str(info.get("name"))),
    )


STAGES: dict[str, Callable] = {"rules": rules_stage, "embed": embed_stage, "ifd": ifd_stage, "judge": judge_stage}


# ---------------------------------------------------------------------------------------------
# dataset-wide (cpu, one task)
# ---------------------------------------------------------------------------------------------

def _load_vectors(run, sample_ids: Sequence[int], kind: str, _cache: dict | None = None) -> np.ndarray | None:
    """The vectors this run's embed stage made or reused, in sample order; None when the stage did
    not run or any is missing. Loaded once per run and kind."""
    key = (run.models_used or {}).get("embedder_key")
    if not key or not sample_ids:
        return None
    cache = _VECTOR_CACHE.setdefault(run.pk, {})
    if kind not in cache:
        rows = SampleEmbedding.objects.filter(sample__dataset_id=run.dataset_id, sample_id__lte=sample_ids[-1], kind=kind, model_key=key)
        found = dict(rows.values_list("sample_id", "vector").iterator(chunk_size=5000))
        if any(sid not in found for sid in sample_ids):
            cache[kind] = None
        else:
            cache[kind] = np.stack([np.frombuffer(bytes(found[sid]), dtype=np.float32) for sid in sample_ids])
    return cache[kind]


_VECTOR_CACHE: dict[int, dict[str, np.ndarray | None]] = {}


def dataset_stage(run, samples: Sequence[Sample]) -> Outcome:
    out = Outcome()
    ids = [s.id for s in samples]
    ext = {s.id: s.external_id for s in samples}
    per_sample: dict[int, list[MetricResult]] = defaultdict(list)
    texts = [(s.id, instruction_of(s.messages) + "\n\n" + answer_of(s.messages)) for s in samples]

    covered_ids = [sid for sid, ok in zip(ids, embedder_covers(run, samples), strict=True) if ok]
    if "duplicates" in run.metrics:
        out.metrics += ["exact_duplicate", "near_duplicate", "semantic_duplicate"]
        exact = duplicates.exact_duplicate_groups(texts)
        near = duplicates.near_duplicate_groups(texts)
        inst_vecs = _load_vectors(run, covered_ids, "instruction")
        ans_vecs = _load_vectors(run, covered_ids, "answer")
        semantic = []
        if not covered_ids:
            pass  # no sample in a language the embedder knows: nothing to compare (the summary says why)
        elif inst_vecs is None or ans_vecs is None:
            out.metrics.remove("semantic_duplicate")  # keep earlier results rather than erase them
            out.errors.append({"stage": "dataset", "message": "semantic duplicates skipped: embeddings are missing (see the embed stage's error)"})
        else:
            both = inst_vecs + ans_vecs
            both /= np.maximum(np.linalg.norm(both, axis=1, keepdims=True), 1e-12)
            semantic = duplicates.semantic_duplicate_groups(covered_ids, both)
        for kind, groups in (("exact", exact), ("near", near), ("semantic", semantic)):
            for sid, result in duplicates.group_results(groups, kind).items():
                matched = result.details.get("matched")
                if matched is not None:  # name the other sample by the id people know
                    result.details["matched_sample_id"] = matched
                    result.details["matched_external_id"] = ext.get(matched)
                    score = result.details.get("jaccard", result.details.get("cosine"))
                    result.flags = [Flag(f.rule, duplicates.duplicate_reason(kind, ext.get(matched, matched), score)) for f in result.flags]
                per_sample[sid].append(result)
        out.summary["duplicates"] = {"exact_groups": len(exact), "near_groups": len(near), "semantic_groups": len(semantic),
                                     "exact_flagged": sum(len(g.members) for g in exact),
                                     "near_flagged": sum(len(g.members) for g in near),
                                     "semantic_flagged": sum(len(g.members) for g in semantic)}

    extra = dataset_extras(run, samples, ids, covered_ids, per_sample, out)
    out.summary.update(extra)
    _VECTOR_CACHE.pop(run.pk, None)
    out.results = dict(per_sample)
    out.sample_ids = ids
    return out


def dataset_extras(run, samples, ids, covered_ids, per_sample, out) -> dict[str, Any]:
    """Embedding-based dataset metrics (diversity, conciseness, consistency, label errors) and the
    difficulty buckets; each is skipped with a recorded error when its inputs are missing. Samples
    in a language the embedder does not cover (SFTDESK_EMBEDDER_LANGUAGES) are left out of every
    judgement made from similarities (clusters, length against similar instructions, consistency
    groups, label errors) rather than judged on noise; the summary says how many and why."""
    from scoring.metrics import conciseness, consistency, diversity

    summary: dict[str, Any] = {}
    wanted = set(run.metrics) & {"diversity", "conciseness", "consistency", "label_errors"}
    covered = embedder_covers(run, samples)
    keep = [i for i, ok in enumerate(covered) if ok]
    k_inst = _load_vectors(run, covered_ids, "instruction") if wanted and keep else None
    k_ans = _load_vectors(run, covered_ids, "answer") if wanted and keep else None
    if wanted and keep and (k_inst is None or k_ans is None):
        out.errors.append({"stage": "dataset", "message": f"{', '.join(sorted(wanted))} skipped: embeddings are missing (see the embed stage's error)"})
        wanted = set()
    instructions = [instruction_of(s.messages) for s in samples]
    answers = [answer_of(s.messages) for s in samples]
    by_similarity = set(run.metrics) & {"duplicates", "completeness", "accuracy"} | wanted
    if len(keep) < len(samples) and by_similarity:
        summary["embedder_coverage"] = coverage_summary(run, samples, covered, sorted(by_similarity))
    k_ids, k_samples = covered_ids, [samples[i] for i in keep]
    inst_clusters = None
    if wanted & {"diversity", "conciseness"} and len(keep) >= 2:
        inst_clusters = diversity.kmeans_clusters(k_inst, seed=0)
    if "diversity" in wanted:
        lengths = [cleaning.count_tokens(a) for a in answers]
        if inst_clusters is not None:
            ans_clusters = diversity.kmeans_clusters(k_ans, seed=0)
            out.metrics.append("cluster")
            for sid, result in zip(k_ids, diversity.cluster_results(inst_clusters, ans_clusters), strict=True):
                per_sample[sid].append(result)
            summary["diversity"] = diversity.diversity_summary(
                k_inst, k_ans, [s.task_type for s in k_samples], [s.language for s in k_samples], [lengths[i] for i in keep],
                instruction_clusters=inst_clusters, answer_clusters=ans_clusters,
            )
        else:
            summary["diversity"] = {}
        # the distributions need no embedder: over every sample
        summary["diversity"].update({"n": len(samples), "clustered": len(keep) if inst_clusters is not None else 0,
                                     **diversity.distributions_summary([s.task_type for s in samples], [s.language for s in samples], lengths)})
    if "conciseness" in wanted:
        out.metrics.append("conciseness")
        # "Similar instructions": same instruction cluster and, where the data has one, same task type.
        # Samples the embedder does not cover have no cluster: repetition and structure only.
        labels = dict(zip(keep, inst_clusters.labels.tolist(), strict=True)) if inst_clusters is not None else {}
        groups = [(f"{labels[i]}/{s.task_type}" if s.task_type else str(labels[i])) if i in labels else None for i, s in enumerate(samples)]
        for sid, result in zip(ids, conciseness.conciseness_results(answers, groups), strict=True):
            per_sample[sid].append(result)
    if "consistency" in wanted:
        out.metrics.append("internal_consistency")
        shown = display_ids(samples)
        # near-identical instructions by embedding where the embedder knows the language; elsewhere
        # identical instructions only (the text needs no embedder)
        rest = [i for i, ok in enumerate(covered) if not ok]
        for part, emb in ((keep, k_inst), (rest, None)):
            if not part:
                continue
            results = consistency.internal_consistency([shown[i] for i in part], [instructions[i] for i in part],
                                                       [answers[i] for i in part], emb)
            for i, result in zip(part, results, strict=True):
                per_sample[ids[i]].append(result)
    if "label_errors" in wanted and keep:
        out.metrics.append("label_error")
        shown = display_ids(samples)
        for i, result in zip(keep, consistency.label_error_candidates([shown[i] for i in keep], k_inst, [answers[i] for i in keep]), strict=True):
            per_sample[ids[i]].append(result)
    bucket_dataset_difficulty(run, ids, per_sample, out)
    return summary


def display_ids(samples: Sequence[Sample]) -> list[str]:
    """How reasons name samples: their external ids (what people know), made unique when two imports
    gave the same external id."""
    ext = [s.external_id for s in samples]
    if len(set(ext)) == len(ext):
        return ext
    return [f"{s.external_id}#{s.id}" for s in samples]


def bucket_dataset_difficulty(run, ids, per_sample, out) -> None:
    if "difficulty" not in run.metrics:
        return
    from scoring.metrics import difficulty

    metric = "ifd" if run.params.get("causal_lm") else difficulty.HEURISTIC_METRIC
    values = dict(SampleMetric.objects.filter(sample_id__in=ids, metric=metric).values_list("sample_id", "value"))
    ordered = [values.get(sid) for sid in ids]
    buckets = difficulty.difficulty_buckets(ordered)
    out.metrics.append("difficulty_bucket")
    for sid, bucket in zip(ids, buckets, strict=True):
        per_sample[sid].append(MetricResult("difficulty_bucket", value=bucket, details={"from": metric}))
    out.summary["difficulty"] = {"from": metric, "buckets": {b: buckets.count(b) for b in ("easy", "medium", "hard")}}
