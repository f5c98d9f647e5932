"""Difficulty: IFD (Instruction-Following Difficulty) from a causal LM, and a cheap text heuristic.

No Django. torch (and the model code in scoring.encoders) is imported only by the IFD functions, so the
heuristic and the buckets run anywhere.

IFD (Li et al. 2023, "From Quantity to Quality: Boosting LLM Performance with Self-Guided Data Selection
for Instruction Tuning", the Cherry LLM paper):

    IFD = mean cross-entropy of the answer tokens given the instruction
          / mean cross-entropy of the same answer tokens alone

Below 1 the instruction makes the answer easier to predict; the higher, the less the model can follow
from the instruction to the answer, i.e. the harder the sample for it. Above 1 the instruction does
not help at all (often a mismatched or noisy pair), which is flagged.

How a pair becomes tokens (the same rules in `ifd_scores` and `reference_ifd`):

- Prompt: with a chat template, the conversation [user: instruction, assistant: answer] is rendered
  and the prompt is everything before the answer text (when a template changes the answer text so it
  cannot be found, the user turn with the generation prompt). Without one: `instruction + "\\n\\n"`,
  after the special tokens the tokenizer puts in front of a text (BOS), as Cherry LLM does.
- Answer: the answer text tokenized on its own (no special tokens), so both passes score exactly the
  same tokens. Answer alone = start + answer, where start is the tokenizer's own leading special
  tokens (BOS), else its `bos_token` when it has one. With no start token at all (e.g. Qwen), the first
  answer token cannot be predicted alone, so it is scored in neither pass.
- Length: the answer is cut to fit `max_length` alone. When prompt + answer are longer than
  `max_length`, the answer is cut first (as Cherry LLM cuts the whole text) but keeps at least half the
  window; the prompt then loses tokens from its start (its BOS is kept). `IFDResult.truncated` says so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from scoring.metrics.base import Flag, MetricResult
from scoring.metrics.text import count_tokens

if TYPE_CHECKING:
    from scoring.encoders import CausalLM

IFD_METRIC = "ifd"
HEURISTIC_METRIC = "difficulty_heuristic"


@dataclass(frozen=True)
class IFDResult:
    """IFD of one pair. `ifd` is None when the answer has no token to score (empty answer); the losses
    are then None too. Losses are mean cross-entropies in nats over `answer_tokens` tokens."""

    ifd: float | None
    loss_given_instruction: float | None
    loss_answer_only: float | None
    answer_tokens: int
    truncated: bool = False


# --- tokenization shared by ifd_scores and reference_ifd ----------------------------------------


def render_prompt(tokenizer: Any, instruction: str, answer: str) -> tuple[str, str, bool]:
    """(prompt text, answer text, whether the chat template was used). The answer text is the answer as
    the template rendered it (a template that trims content scores the trimmed answer)."""
    if getattr(tokenizer, "chat_template", None):
        user = [{"role": "user", "content": instruction}]
        if answer:
            full = tokenizer.apply_chat_template([*user, {"role": "assistant", "content": answer}], tokenize=False)
            for needle in (answer, answer.strip()):
                at = full.rfind(needle) if needle else -1
                if at >= 0:
                    return full[:at], needle, True
        return tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True), answer, True
    return instruction + "\n\n", answer, False


def start_ids(tokenizer: Any) -> list[int]:
    """The tokens that begin a text on its own: the special tokens the tokenizer puts in front of a text
    (BOS; BERT's [CLS]), else its bos_token, else none."""
    probe = "hello world"
    plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe, add_special_tokens=True)["input_ids"]
    for k in range(len(full) - len(plain) + 1):
        if full[k : k + len(plain)] == plain:
            if k:
                return list(full[:k])
            break
    bos = getattr(tokenizer, "bos_token_id", None)
    return [bos] if bos is not None else []


@dataclass
class _Pair:
    prompt: list[int]  # includes the start tokens where they belong
    answer: list[int]  # every answer token; the first is not scored when `start` is empty
    start: list[int]
    truncated: bool = False

    @property
    def skip(self) -> int:
        return 0 if self.start else 1

    @property
    def scored(self) -> int:
        return max(0, len(self.answer) - self.skip)


def _encode_pairs(tokenizer: Any, pairs: Sequence[tuple[str, str]]) -> list[_Pair]:
    start = start_ids(tokenizer)
    rendered = [render_prompt(tokenizer, instruction, answer) for instruction, answer in pairs]
    prompt_ids = tokenizer([r[0] for r in rendered], add_special_tokens=False)["input_ids"] if rendered else []
    answer_ids = tokenizer([r[1] for r in rendered], add_special_tokens=False)["input_ids"] if rendered else []
    out = []
    for (_, _, chat), p, a in zip(rendered, prompt_ids, answer_ids, strict=True):
        # a chat template writes its own BOS (as apply_chat_template(tokenize=True) leaves it)
        out.append(_Pair(prompt=list(p) if chat else [*start, *p], answer=list(a), start=start))
    return out


def _fit(pair: _Pair, max_length: int) -> _Pair:
    """Cut the pair to max_length as the module docstring says."""
    s, p, a = pair.start, pair.prompt, pair.answer
    truncated = False
    if len(s) + len(a) > max_length:
        a, truncated = a[: max(0, max_length - len(s))], True
    if len(p) + len(a) > max_length:
        budget = max(max_length - len(p), min(len(a), max_length // 2))
        a = a[:budget]
        keep = max_length - len(a)
        head = len(s) if s and p[: len(s)] == s else 0
        p = p[:head] + p[len(p) - max(0, keep - head) :] if keep > head else p[:keep]
        truncated = True
    return _Pair(prompt=p, answer=a, start=s, truncated=truncated)


# --- IFD ------------------------------------------------------------------------------------------


def _logits_at(model: Any, ids: Any, mask: Any, rows: Any, cols: Any) -> Any:
    """Logits (N, vocab) at the positions (rows[i], cols[i]) of a batch. The output projection runs on
    those positions only where the model allows it: a forward pre-hook on the output embedding picks the
    hidden states there, so prompt and padding positions never become vocabulary-sized rows (the largest
    tensor of the pass). Element-wise steps after the projection (logit soft-capping, scaling) still
    apply. Where the hook cannot be used (no output embedding module, or the model reshapes the logits),
    the full logits are computed and indexed instead."""
    import torch

    head = model.get_output_embeddings()
    used = []

    def pick(module: Any, args: tuple) -> tuple | None:
        hidden = args[0] if args else None
        if isinstance(hidden, torch.Tensor) and hidden.dim() == 3 and tuple(hidden.shape[:2]) == tuple(ids.shape):
            used.append(True)
            return (hidden[rows, cols], *args[1:])
        return None

    if isinstance(head, torch.nn.Module):
        handle = head.register_forward_pre_hook(pick)
        try:
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            if used and logits.dim() == 2 and logits.shape[0] == rows.shape[0]:
                return logits
        except Exception:  # a model that reshapes its logits: fall through to the plain pass
            pass
        finally:
            handle.remove()
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    return logits[rows, cols]


def _ce_sums(lm: CausalLM, seqs: list[tuple[list[int], int]], max_tokens_per_batch: int) -> list[float]:
    """For each (token ids, first scored position): the sum of the cross-entropies of tokens
    first..end given the tokens before them. Batched by `token_batches`, right-padded with attention masks;
    the CE is computed per token from the shifted logits in float32, never from the model's batch loss."""
    import torch

    from scoring.encoders import _right_pad, token_batches

    model, device = lm.model, lm.device
    head = model.get_output_embeddings()
    vocab = int(head.weight.shape[0]) if head is not None and hasattr(head, "weight") else 50_000
    chunk = max(256, (1 << 28) // max(vocab, 1))  # rows of float32 logits per CE call: about 1 GiB
    sums = [0.0] * len(seqs)
    for batch in token_batches([len(s[0]) for s in seqs], max_tokens_per_batch):
        rows = [seqs[i][0] for i in batch]
        ids, mask = _right_pad(rows, lm.pad_token_id)
        # logits at position t predict token t + 1: scored tokens first..end need positions first-1..end-1
        where_r, where_c, targets = [], [], []
        for j, (r, first) in enumerate((seqs[i][0], seqs[i][1]) for i in batch):
            lo = max(first, 1)
            where_r.append(np.full(max(0, len(r) - lo), j, dtype=np.int64))
            where_c.append(np.arange(lo - 1, len(r) - 1, dtype=np.int64))
            targets.append(np.asarray(r[lo:], dtype=np.int64))
        r_idx = torch.from_numpy(np.concatenate(where_r)).to(device, non_blocking=True)
        c_idx = torch.from_numpy(np.concatenate(where_c)).to(device, non_blocking=True)
        target = torch.from_numpy(np.concatenate(targets)).to(device, non_blocking=True)
        ids_t = torch.from_numpy(ids).to(device, non_blocking=True)
        mask_t = torch.from_numpy(mask).to(device, non_blocking=True)
        with torch.inference_mode():
            logits = _logits_at(model, ids_t, mask_t, r_idx, c_idx)
            totals = torch.zeros(len(batch), dtype=torch.float64, device=device)
            for start in range(0, target.shape[0], chunk):
                part = slice(start, start + chunk)
                ce = torch.nn.functional.cross_entropy(logits[part].float(), target[part], reduction="none")
                totals.index_add_(0, r_idx[part], ce.double())
        for j, total in zip(batch, totals.tolist(), strict=True):
            sums[j] = total
    return sums


def ifd_scores(lm: CausalLM, pairs: Sequence[tuple[str, str]], *, max_tokens_per_batch: int = 8192) -> list[IFDResult]:
    """IFD of each (instruction, answer) pair, in input order. Conditioned and answer-alone sequences are
    each sorted by length and run in batches of at most `max_tokens_per_batch` padded tokens; prompt and
    padding are not scored. An answer with no token to score gives IFDResult(ifd=None, ...)."""
    encoded = [_fit(p, lm.max_length) for p in _encode_pairs(lm.tokenizer, pairs)]
    live = [i for i, e in enumerate(encoded) if e.scored > 0]
    cond = _ce_sums(
        lm, [(encoded[i].prompt + encoded[i].answer, len(encoded[i].prompt) + encoded[i].skip) for i in live], max_tokens_per_batch
    )
    alone = _ce_sums(
        lm, [(encoded[i].start + encoded[i].answer, len(encoded[i].start) + encoded[i].skip) for i in live], max_tokens_per_batch
    )
    results = [IFDResult(None, None, None, 0, e.truncated) for e in encoded]
    for i, c, a in zip(live, cond, alone, strict=True):
        n = encoded[i].scored
        given, only = c / n, a / n
        ifd = given / only if only > 0 and math.isfinite(given) and math.isfinite(only) else None
        results[i] = IFDResult(ifd, given, only, n, encoded[i].truncated)
    return results


def reference_ifd(model: Any, tokenizer: Any, instruction: str, answer: str) -> float:
    """The plainest IFD of one pair, the baseline for tests and the benchmark: two unpadded forward passes
    with `labels=` and the model's own loss. Same tokens as `ifd_scores` (no truncation here)."""
    import torch

    pair = _encode_pairs(tokenizer, [(instruction, answer)])[0]
    device = next(model.parameters()).device
    with torch.no_grad():
        ids = torch.tensor([pair.prompt + pair.answer], device=device)
        labels = ids.clone()
        labels[:, : len(pair.prompt) + pair.skip] = -100
        given = model(input_ids=ids, labels=labels).loss
        ids = torch.tensor([pair.start + pair.answer], device=device)
        labels = ids.clone()
        labels[:, : len(pair.start) + pair.skip] = -100
        alone = model(input_ids=ids, labels=labels).loss
    return float(given) / float(alone)


def ifd_metric(result: IFDResult) -> MetricResult:
    """IFDResult as a MetricResult: value = IFD, flag "ifd_above_1" when it is > 1."""
    details: dict[str, Any] = {
        "method": "ifd",
        "loss_given_instruction": result.loss_given_instruction,
        "loss_answer_only": result.loss_answer_only,
        "answer_tokens": result.answer_tokens,
        "truncated": result.truncated,
    }
    if result.ifd is None:
        details["skipped"] = "answer has no tokens to score"
        return MetricResult(IFD_METRIC, None, [], details)
    flags = [Flag("ifd_above_1", f"IFD {result.ifd:.2f} > 1: the instruction does not help the model")] if result.ifd > 1 else []
    return MetricResult(IFD_METRIC, result.ifd, flags, details)


def ifd_results(lm: CausalLM, pairs: Sequence[tuple[str, str]], *, max_tokens_per_batch: int = 8192) -> list[MetricResult]:
    """`ifd_scores` as MetricResults (name "ifd"); the model's name and revision go into the details."""
    info = lm.info()
    model = {"name": info["name"], "revision": info["revision"], "weights_sha256": info["weights_sha256"]}
    out = []
    for r in ifd_scores(lm, pairs, max_tokens_per_batch=max_tokens_per_batch):
        m = ifd_metric(r)
        m.details["model"] = model
        out.append(m)
    return out


# --- buckets ------------------------------------------------------------------------------------


def difficulty_buckets(values: Sequence[float | None], quantiles: tuple[float, float] = (1 / 3, 2 / 3)) -> list[str | None]:
    """Buckets "easy" / "medium" / "hard" by the quantiles of the values given (None and NaN left out; they stay
    None). Higher value = harder (for IFD: the instruction helps the model less). With cut points
    q1 <= q2 (numpy's linear quantiles): value <= q1 is easy, q1 < value <= q2 medium, value > q2 hard."""
    lo, hi = quantiles
    if not 0 < lo < hi < 1:
        raise ValueError(f"quantiles must satisfy 0 < low < high < 1, got {quantiles!r}")
    known = [float(v) for v in values if v is not None and not math.isnan(v)]
    if not known:
        return [None] * len(values)
    q1, q2 = np.quantile(np.asarray(known, dtype=np.float64), [lo, hi])
    out: list[str | None] = []
    for v in values:
        if v is None or math.isnan(v):
            out.append(None)
        else:
            out.append("easy" if v <= q1 else "medium" if v <= q2 else "hard")
    return out


# --- heuristic ----------------------------------------------------------------------------------

_ASK = re.compile(
    r"\?|？|(?:^|\n)\s*(?:\d+[.)、]|[-*•])\s+"
    r"|\b(?:must|should|at least|at most|no more than|exactly|without|only|do not|don't|avoid|make sure|ensure|include|"
    r"in \d+ words|step by step|format|json|table|bullet|list|also|then|and then|as well as|compare|explain why)\b"
    r"|必须|至少|至多|不超过|不少于|不要|不能|要求|并且|同时|以及|然后|分别|步骤|格式|字以内|列出|比较|解释",
    re.IGNORECASE,
)
_CODE = re.compile(
    r"```|\bdef \w+\(|\bclass \w+\s*[:({]|\bfunction\s*\w*\(|\breturn [\w(\[{]+;|#include|(?m:^\s*(?:import \w+|from [\w.]+ import ))|(?-i:\bSELECT\b.+\bFROM\b)|=>|\{\s*\n"
    r"|\b(?:python|javascript|java|sql|regex|code|programming|algorithm)\b|c\+\+|函数|代码|编程|程序代码|算法",
    re.IGNORECASE,
)
_MATH = re.compile(
    r"\d\s*[+*/^=×÷]\s*\d|\d\s+-\s+\d|\\(?:frac|sqrt|int|sum)|\$[^$\n]+\$"
    r"|\b(?:solve|equation|calculate|compute|prove|integral|derivative|probability|theorem|matrix)\b"
    r"|求解|计算(?!机)|证明|方程|积分|导数|概率|定理|矩阵",
    re.IGNORECASE,
)


def _saturate(n: float, full: float) -> float:
    """0 at n = 0, 1 at n >= full, logarithmic in between."""
    return min(1.0, math.log1p(max(n, 0.0)) / math.log1p(full))


def heuristic_signals(instruction: str, answer: str) -> dict[str, Any]:
    """The cheap signals behind `heuristic_complexity`."""
    both = f"{instruction}\n{answer}"
    return {
        "instruction_tokens": count_tokens(instruction),
        "asks": len(_ASK.findall(instruction)),
        "code": bool(_CODE.search(both)),
        "math": bool(_MATH.search(both)),
        "answer_tokens": count_tokens(answer),
    }


def heuristic_complexity(instruction: str, answer: str) -> float:
    """A cheap complexity score in [0, 1] with no model: NOT IFD, for when no causal LM is configured.
    Weighted sum of saturating signals:
    0.30 instruction length (tokens: words and punctuation, each CJK character one; full at 150),
    0.25 asks and constraints in the instruction (questions, list items, "must", "at least", "不超过", ...;
    full at 6), 0.15 code, 0.10 math (in instruction or answer), 0.20 answer length (full at 600 tokens)."""
    s = heuristic_signals(instruction, answer)
    score = (
        0.30 * _saturate(s["instruction_tokens"], 150)
        + 0.25 * _saturate(s["asks"], 6)
        + 0.15 * s["code"]
        + 0.10 * s["math"]
        + 0.20 * _saturate(s["answer_tokens"], 600)
    )
    return float(min(1.0, max(0.0, score)))


def heuristic_results(pairs: Sequence[tuple[str, str]]) -> list[MetricResult]:
    """`heuristic_complexity` of each pair as a MetricResult named "difficulty_heuristic", with
    details {"method": "heuristic", "note": ..., "signals": ...}, so the UI can say it is not IFD."""
    out = []
    for instruction, answer in pairs:
        details = {"method": "heuristic", "note": "text heuristic, not IFD", "signals": heuristic_signals(instruction, answer)}
        out.append(MetricResult(HEURISTIC_METRIC, heuristic_complexity(instruction, answer), [], details))
    return out
