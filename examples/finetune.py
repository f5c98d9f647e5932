"""Fine-tune a causal LM on an sftdesk export: pull it with a job token, train with a transformers Trainer.

    export SFTDESK_TOKEN=sft_...            # a read-only job token scoped to the dataset
    python examples/finetune.py --base-url http://127.0.0.1:8000 --dataset 3 \\
        --model /models/Qwen2.5-0.5B-Instruct --output-dir out/run1 --lora --max-steps 200

    python examples/finetune.py --data-file train.messages.jsonl --model /models/tiny --output-dir out/t

What it does, step by step (each step is a function you can import and reuse):

1. `fetch_manifest`: `GET {base}/api/v1/datasets/{id}/exports/{export}/` with `Authorization: Bearer`.
   `latest` answers 302 to the newest finished export; the redirect is followed here, by hand, so the
   token is re-sent only to the same origin (scheme, host, port) and never leaks to another host.
2. `manifest_data_files`: the URLs of the canonical `messages` JSON Lines files, per split, under the
   export's own id (never under `latest`), so every file comes from one immutable snapshot.
3. `load_export`: `datasets.load_dataset("json", data_files={...}, storage_options={"headers": ...})`.
   The rows per split are checked against the manifest's counts.
4. `tokenize_conversation`: renders each conversation with the tokenizer's chat template and keeps labels
   only on assistant tokens (everything else is -100). Templates with `{% generation %}` markers use
   `apply_chat_template(..., return_assistant_tokens_mask=True)`; any other template is handled by
   rendering prefixes (see `assistant_char_spans`). Truncated to `--max-length`; a sample left with no
   assistant token is dropped, and the drops are counted and printed.
5. `train`: a transformers `Trainer` (full fine-tuning, or LoRA through peft with `--lora`), saves the
   model or adapter and the tokenizer to `--output-dir`, writes `train_results.json`, prints the loss.

Nothing is downloaded but the export: `--model` and `--tokenizer` are local directories (loaded with
`local_files_only=True`). Needs `datasets` (with `aiohttp`, which fsspec's HTTP filesystem uses),
`transformers`, `accelerate`, `torch`, and `peft` for `--lora`.

How the token reaches `datasets` (checked against datasets 5.2 / fsspec 2026.9 / aiohttp 3.14): a
`storage_options` key that is not a protocol name (here `headers`) is handed by
`datasets.utils.file_utils._prepare_single_hop_path_and_storage_options` to fsspec's `HTTPFileSystem`,
which passes it to every aiohttp request it makes. Seen from the server, a first load sends per file: a
GET that only checks the file exists (fsspec's `_exists`; the connection is dropped after the status
line), HEADs for the ETag (the `datasets` cache key) and the size, then the GET that downloads; a re-run
with a warm cache sends the GET check and the HEADs only. So the file endpoint must answer HEAD as well
as GET, with the same authentication, and must not count a GET as a download. Pitfalls:

- aiohttp follows redirects itself and drops `Authorization` when a redirect leaves the origin. That is
  why file URLs are built from the resolved export id rather than `exports/latest/...`, and why a file
  endpoint that redirects elsewhere (a signed URL on object storage) must put its credential into the
  redirect URL, not expect the header.
- `HF_HUB_OFFLINE=1` / `HF_DATASETS_OFFLINE=1` make `datasets` refuse every http(s) URL, our own server
  included: do not set them to "make sure nothing is downloaded"; the models are loaded with
  `local_files_only=True` instead.
- `datasets` caches downloads under the URL plus ETag; the ETag is the file's sha256, so a cached file
  is exactly the file of the manifest and a re-run does not download it again.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

TOKEN_ENV = "SFTDESK_TOKEN"
IGNORE_INDEX = -100
MESSAGES_FORMAT = "messages"
_GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")
_MAX_REDIRECTS = 5


class ExportError(Exception):
    """The export cannot be fetched: HTTP error, a bad token, an unfinished export, a manifest without
    `messages` files. The message says which URL and what to do."""


# --- the export API -------------------------------------------------------------------------------


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Hand 3xx back to the caller: urllib's own redirect handling re-sends every header to any host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def _explain_http_error(url: str, code: int, body: str) -> str:
    detail = body.strip()[:300]
    try:
        detail = json.loads(body).get("detail", detail)
    except (ValueError, AttributeError):
        pass
    hint = {
        401: f"the token was refused (missing, wrong, expired or revoked): pass --token or set {TOKEN_ENV}",
        403: "the token may not read this dataset",
        404: "no such dataset or export for this token (a token is scoped to one dataset)",
        409: "the export is still being built: try again when it has finished",
    }.get(code, "unexpected answer from the export API")
    return f"GET {url} answered {code}: {hint}" + (f" (server said: {detail})" if detail else "")


def http_get_json(url: str, token: str, *, timeout: float = 30.0) -> tuple[str, Any]:
    """GET a JSON document with the bearer token, following redirects by hand (the token goes only to the
    origin it was meant for). Returns (the final URL, the parsed body). Raises ExportError."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    origin = _origin(url)
    for _ in range(_MAX_REDIRECTS + 1):
        request = urllib.request.Request(url, headers=headers)
        try:
            with _opener.open(request, timeout=timeout) as response:
                return url, json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as e:
            if e.code in (301, 302, 303, 307, 308) and e.headers.get("Location"):
                url = urljoin(url, e.headers["Location"])
                if _origin(url) != origin:
                    headers = {"Accept": "application/json"}  # never hand the token to another host
                continue
            body = e.read().decode("utf-8", "replace")
            raise ExportError(_explain_http_error(url, e.code, body))
        except urllib.error.URLError as e:
            raise ExportError(f"GET {url} failed: {e.reason}; is --base-url right and the server running?")
        except ValueError as e:
            raise ExportError(f"GET {url} did not answer JSON: {e}")
    raise ExportError(f"GET {url}: more than {_MAX_REDIRECTS} redirects")


def _probe(urls: Sequence[str], token: str, *, timeout: float = 30.0) -> str | None:
    """What the server answers the first URL that fails a HEAD with the token, explained; None if all pass."""
    for url in urls:
        request = urllib.request.Request(url, method="HEAD", headers={"Authorization": f"Bearer {token}"})
        try:
            with _opener.open(request, timeout=timeout):  # no redirects followed: the token stays here
                pass
        except urllib.error.HTTPError as e:
            if 300 <= e.code < 400:
                continue
            return _explain_http_error(url, e.code, "").replace("GET ", "HEAD ", 1)
        except urllib.error.URLError as e:
            return f"HEAD {url} failed: {e.reason}"
    return None


def export_url(base_url: str, dataset_id: str | int, export: str | int = "latest") -> str:
    return f"{base_url.rstrip('/')}/api/v1/datasets/{dataset_id}/exports/{export}/"


def fetch_manifest(base_url: str, dataset_id: str | int, token: str, export: str | int = "latest", *, timeout: float = 30.0) -> dict:
    """The manifest of one finished export (`latest` resolves to the newest). Raises ExportError."""
    if not token:
        raise ExportError(f"no API token: pass --token or set {TOKEN_ENV}")
    url, manifest = http_get_json(export_url(base_url, dataset_id, export), token, timeout=timeout)
    if not isinstance(manifest, dict) or "files" not in manifest or "id" not in manifest:
        raise ExportError(f"GET {url} did not answer an export manifest (no `id` or `files`)")
    status = manifest.get("status", "succeeded")
    if status != "succeeded":
        raise ExportError(f"export {manifest['id']} is {status!r}, not 'succeeded': nothing to train on yet")
    return manifest


def manifest_data_files(base_url: str, dataset_id: str | int, manifest: dict, fmt: str = MESSAGES_FORMAT) -> dict[str, list[str]]:
    """{split: [file URL, ...]} for the files of format `fmt`, addressed under the export's own id."""
    by_split: dict[str, list[str]] = {}
    for entry in manifest["files"]:
        if entry.get("format") != fmt:
            continue
        split = entry.get("split") or "train"
        by_split.setdefault(split, []).append(export_url(base_url, dataset_id, manifest["id"]) + "files/" + quote(entry["path"], safe="/"))
    if not by_split:
        formats = sorted({str(f.get("format")) for f in manifest["files"]})
        raise ExportError(f"export {manifest['id']} has no {fmt!r} files (it has: {', '.join(formats) or 'none'})")
    return by_split


def _builder_for(urls: Sequence[str]) -> str:
    return "parquet" if all(urlsplit(u).path.endswith(".parquet") for u in urls) else "json"


def load_export(
    base_url: str,
    dataset_id: str | int,
    token: str,
    export: str | int = "latest",
    *,
    manifest: dict | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
):
    """The `messages` files of an export as a `datasets.DatasetDict` (one split per manifest split),
    downloaded by `datasets` with the bearer token in the HTTP headers. Raises ExportError."""
    import datasets

    manifest = manifest or fetch_manifest(base_url, dataset_id, token, export)
    data_files = manifest_data_files(base_url, dataset_id, manifest)
    urls = [u for split_urls in data_files.values() for u in split_urls]
    try:
        loaded = datasets.load_dataset(
            _builder_for(urls),
            data_files=data_files,
            storage_options={"headers": {"Authorization": f"Bearer {token}"}},
            cache_dir=None if cache_dir is None else str(cache_dir),
        )
    except Exception as e:  # fsspec/aiohttp errors vary by version; name the export and the cause
        # fsspec turns an HTTP error on the HEAD into FileNotFoundError ("Unable to find ..."): ask once
        # more ourselves to say what the server answered.
        cause = _probe(urls, token) or f"{type(e).__name__}: {e}"
        if type(e).__name__ == "OfflineModeIsEnabled":
            cause += " (unset HF_HUB_OFFLINE and HF_DATASETS_OFFLINE: they block every URL, this server included)"
        raise ExportError(f"datasets could not load export {manifest['id']} from {base_url}: {cause}") from e
    expected: dict[str, int] = {}
    for entry in manifest["files"]:
        if entry.get("format") == MESSAGES_FORMAT and entry.get("rows") is not None:
            split = entry.get("split") or "train"
            expected[split] = expected.get(split, 0) + int(entry["rows"])
    for split, rows in expected.items():
        if loaded[split].num_rows != rows:
            raise ExportError(f"export {manifest['id']}: split {split!r} has {loaded[split].num_rows} rows, the manifest says {rows}")
    return loaded


def load_data_files(train: str | os.PathLike[str], validation: str | os.PathLike[str] | None = None, *, cache_dir=None):
    """Local `messages` JSON Lines (or Parquet) files as a `datasets.DatasetDict`."""
    import datasets

    data_files = {"train": str(train)}
    if validation:
        data_files["validation"] = str(validation)
    return datasets.load_dataset(
        _builder_for(list(data_files.values())), data_files=data_files, cache_dir=None if cache_dir is None else str(cache_dir)
    )


# --- rendering and masking --------------------------------------------------------------------------


def has_generation_markers(tokenizer) -> bool:
    template = tokenizer.chat_template
    if isinstance(template, dict):  # several named templates: the default one is used
        template = template.get("default", "")
    return bool(template) and bool(_GENERATION_TAG.search(template))


def _render(tokenizer, messages, *, add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)


def assistant_char_spans(tokenizer, messages: Sequence[dict], text: str) -> list[tuple[int, int]]:
    """Character spans of `text` (the rendered conversation) that the assistant wrote, for a template
    without `{% generation %}` markers. For the assistant message i, the span runs from the end of
    render(messages[:i], add_generation_prompt=True) to the end of render(messages[:i+1]): the content plus
    whatever the template closes the turn with (an end-of-turn token), not the role header. When a
    template is not prefix-stable there (it rewrites earlier turns, or has no generation prompt), the
    message's stripped content is looked up in `text` after the previous span instead."""
    spans: list[tuple[int, int]] = []
    cursor = 0
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        span = None
        if i > 0:
            try:
                before = _render(tokenizer, messages[:i], add_generation_prompt=True)
                upto = _render(tokenizer, messages[: i + 1])
            except Exception:  # a template may refuse a partial conversation (jinja's raise_exception)
                before = upto = ""
            if len(upto) > len(before) >= cursor and upto.startswith(before) and text.startswith(upto):
                span = (len(before), len(upto))
        if span is None:
            content = (message.get("content") or "").strip()
            at = text.find(content, cursor) if content else -1
            if at < 0:
                raise ValueError(f"the chat template does not render assistant message {i} verbatim; add {{% generation %}} markers to it")
            span = (at, at + len(content))
        spans.append(span)
        cursor = span[1]
    return spans


def _token_mask_from_spans(tokenizer, text: str, spans: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Tokenize `text` once and mark the tokens that overlap an assistant span."""
    try:
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = encoded["offset_mapping"]
    except (NotImplementedError, ValueError, KeyError):
        offsets = None
    if offsets is not None:
        ids = list(encoded["input_ids"])
        mask = [int(any(s < end and e > start for start, end in spans)) for s, e in offsets]
        return ids, mask
    # a tokenizer without offsets: count the tokens of the text before each span boundary instead
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    mask = [0] * len(ids)
    for start, end in spans:
        first = len(tokenizer(text[:start], add_special_tokens=False)["input_ids"])
        last = len(tokenizer(text[:end], add_special_tokens=False)["input_ids"])
        for j in range(first, min(last, len(ids))):
            mask[j] = 1
    return ids, mask


def assistant_token_mask(tokenizer, messages: Sequence[dict]) -> tuple[list[int], list[int]]:
    """(input_ids, mask) of the whole rendered conversation, mask 1 on assistant tokens."""
    messages = [{"role": m["role"], "content": m.get("content") or ""} for m in messages]
    if has_generation_markers(tokenizer):
        out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        ids, mask = list(out["input_ids"]), [int(x) for x in out["assistant_masks"]]
        # transformers stops marking at a generation block whose first character maps to no token (a
        # block starting with whitespace the tokenizer drops): when a turn is missing, render prefixes.
        runs = sum(1 for j, flag in enumerate(mask) if flag and (j == 0 or not mask[j - 1]))
        if runs >= sum(1 for m in messages if m["role"] == "assistant" and m["content"].strip()):
            return ids, mask
    text = _render(tokenizer, messages)
    return _token_mask_from_spans(tokenizer, text, assistant_char_spans(tokenizer, messages, text))


def tokenize_conversation(tokenizer, messages: Sequence[dict], max_length: int) -> dict[str, list[int]] | None:
    """{"input_ids", "attention_mask", "labels"} for one conversation, truncated to `max_length` tokens,
    labels = input_ids on assistant tokens and -100 everywhere else. None when no assistant token is
    left (the caller drops the sample)."""
    ids, mask = assistant_token_mask(tokenizer, messages)
    ids, mask = ids[:max_length], mask[:max_length]
    if not any(mask):
        return None
    return {
        "input_ids": ids,
        "attention_mask": [1] * len(ids),
        "labels": [t if m else IGNORE_INDEX for t, m in zip(ids, mask, strict=True)],
    }


def tokenize_dataset(dataset, tokenizer, max_length: int):
    """(tokenized `datasets.Dataset`, number of dropped samples). Drops the samples left without an
    assistant token after truncation (a batched map may return fewer rows than it was given)."""
    import hashlib

    def encode(batch):
        out: dict[str, list] = {"input_ids": [], "attention_mask": [], "labels": []}
        for messages in batch["messages"]:
            row = tokenize_conversation(tokenizer, messages, max_length)
            if row is not None:
                for key in out:
                    out[key].append(row[key])
        return out

    # An explicit fingerprint: hashing the tokenizer object is slow, and these settings are what matters.
    key = json.dumps([dataset._fingerprint, tokenizer.name_or_path, len(tokenizer), str(tokenizer.chat_template), max_length])
    tokenized = dataset.map(
        encode,
        batched=True,
        remove_columns=dataset.column_names,
        new_fingerprint=hashlib.sha256(key.encode()).hexdigest()[:32],
        desc="render and mask",
    )
    return tokenized, dataset.num_rows - tokenized.num_rows


class PaddingCollator:
    """Right-pads a batch: input_ids with the pad id, attention_mask with 0, labels with -100."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict]) -> dict:
        import torch

        width = max(len(f["input_ids"]) for f in features)

        def pad(key, value):
            return torch.tensor([list(f[key]) + [value] * (width - len(f[key])) for f in features], dtype=torch.long)

        return {
            "input_ids": pad("input_ids", self.pad_token_id),
            "attention_mask": pad("attention_mask", 0),
            "labels": pad("labels", IGNORE_INDEX),
        }


# --- training ---------------------------------------------------------------------------------------


def load_tokenizer(path: str | os.PathLike[str]):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if not tokenizer.chat_template:
        raise ValueError(f"the tokenizer at {path} has no chat template: set `chat_template` in its tokenizer_config.json")
    return tokenizer


def pad_id(tokenizer) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def lora_target_modules(model) -> list[str]:
    """The names (last component) of every linear layer but the output head: q/k/v/o and the MLP
    projections on Llama-like models, c_attn/c_proj/c_fc on GPT-2 (whose Conv1D peft also adapts)."""
    import torch
    from transformers.pytorch_utils import Conv1D

    head = model.get_output_embeddings()
    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in model.named_modules()
            if isinstance(module, (torch.nn.Linear, Conv1D)) and module is not head
        }
    )


def lora_wrap(model, *, targets: Sequence[str] | None = None, r: int = 16, alpha: int = 32, dropout: float = 0.05):
    """The model with LoRA adapters through peft, on `targets` or on every linear layer but the head."""
    from peft import LoraConfig, get_peft_model

    targets = list(targets) if targets else lora_target_modules(model)
    print(f"LoRA r={r} alpha={alpha} on: {', '.join(targets)}")
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type="CAUSAL_LM")
    model = get_peft_model(model, config)
    model.print_trainable_parameters()
    return model


def train(
    data,
    *,
    model_path: str | os.PathLike[str],
    tokenizer_path: str | os.PathLike[str] | None = None,
    output_dir: str | os.PathLike[str],
    max_length: int = 2048,
    max_steps: int = -1,
    epochs: float = 1.0,
    lr: float | None = None,
    batch_size: int = 4,
    grad_accum: int = 1,
    seed: int = 42,
    lora: bool = False,
    lora_targets: Sequence[str] | None = None,
    lora_r: int = 16,
    lora_alpha: int = 32,
) -> dict[str, float]:
    """Fine-tune on a DatasetDict with `train` (and optionally `validation`) splits of `messages`. Saves
    the model (or the LoRA adapter) and the tokenizer to `output_dir`; returns the Trainer's metrics."""
    import torch
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments, set_seed

    set_seed(seed)
    tokenizer = load_tokenizer(tokenizer_path or model_path)
    train_set, dropped = tokenize_dataset(data["train"], tokenizer, max_length)
    print(f"train: {train_set.num_rows} samples, {dropped} dropped (no assistant token within {max_length} tokens)")
    if train_set.num_rows == 0:
        raise SystemExit("nothing to train on: every sample was dropped")
    eval_set = None
    if "validation" in data:
        eval_set, eval_dropped = tokenize_dataset(data["validation"], tokenizer, max_length)
        print(f"validation: {eval_set.num_rows} samples, {eval_dropped} dropped")
        eval_set = eval_set if eval_set.num_rows else None

    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    # Full fine-tuning keeps float32 weights (bf16 autocast on CUDA, so AdamW updates are not rounded to bf16);
    # LoRA freezes the base, which can then sit in bf16 (peft keeps the adapters in float32).
    model = AutoModelForCausalLM.from_pretrained(
        str(model_path), local_files_only=True, dtype=torch.bfloat16 if bf16 and lora else torch.float32
    )
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        print(f"resizing the embeddings to the tokenizer's {len(tokenizer)} tokens")
        model.resize_token_embeddings(len(tokenizer))
    if lora:
        model = lora_wrap(model, targets=lora_targets, r=lora_r, alpha=lora_alpha)

    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=max_steps,
        num_train_epochs=epochs,
        learning_rate=lr if lr is not None else (2e-4 if lora else 2e-5),
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        gradient_accumulation_steps=grad_accum,
        seed=seed,
        bf16=bf16,
        logging_steps=1 if 0 < max_steps <= 50 else 10,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=cuda,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        data_collator=PaddingCollator(pad_id(tokenizer)),
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=tokenizer,
    )
    metrics = dict(trainer.train().metrics)
    if eval_set is not None:
        metrics.update(trainer.evaluate())
    trainer.save_model(str(output_dir))  # a PeftModel saves only its adapter
    tokenizer.save_pretrained(str(output_dir))
    trainer.save_metrics("train", metrics)
    loss = metrics.get("train_loss", float("nan"))
    print(f"train_loss={loss:.4f}" + (f" eval_loss={metrics['eval_loss']:.4f}" if "eval_loss" in metrics else ""))
    if not math.isfinite(loss):
        raise SystemExit(f"the train loss is {loss}: check the learning rate and the data")
    return metrics


# --- command line -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Fine-tune a local causal LM on an sftdesk export.")
    src = p.add_argument_group("data")
    src.add_argument("--base-url", help="sftdesk address, e.g. http://127.0.0.1:8000")
    src.add_argument("--dataset", help="dataset id")
    src.add_argument("--export", default="latest", help="export id (default: latest finished)")
    src.add_argument("--token", default=None, help=f"API token (default: ${TOKEN_ENV})")
    src.add_argument("--data-file", type=Path, help="train from a local messages JSON Lines file instead of the API")
    src.add_argument("--validation-file", type=Path, help="with --data-file: a local validation file")
    src.add_argument("--cache-dir", type=Path, help="datasets cache directory")
    m = p.add_argument_group("model")
    m.add_argument("--model", required=True, type=Path, help="local directory of a causal LM")
    m.add_argument("--tokenizer", type=Path, help="local tokenizer directory (default: --model)")
    m.add_argument("--output-dir", required=True, type=Path)
    t = p.add_argument_group("training")
    t.add_argument("--max-steps", type=int, default=-1, help="optimizer steps (default: -1, run --epochs)")
    t.add_argument("--epochs", type=float, default=1.0)
    t.add_argument("--max-length", type=int, default=2048, help="tokens per sample; longer ones are truncated")
    t.add_argument("--lr", type=float, default=None, help="learning rate (default: 2e-4 with --lora, 2e-5 without)")
    t.add_argument("--batch-size", type=int, default=4)
    t.add_argument("--grad-accum", type=int, default=1)
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--lora", action="store_true", help="train LoRA adapters through peft")
    t.add_argument("--lora-targets", default=None, help="comma-separated module names (default: every linear layer but the head)")
    t.add_argument("--lora-r", type=int, default=16)
    t.add_argument("--lora-alpha", type=int, default=32)
    args = p.parse_args(argv)
    if args.data_file is None:
        if not (args.base_url and args.dataset):
            p.error("give --base-url and --dataset (or --data-file)")
        args.token = args.token or os.environ.get(TOKEN_ENV)
        if not args.token:
            p.error(f"no API token: pass --token or set {TOKEN_ENV}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.data_file is not None:
        data = load_data_files(args.data_file, args.validation_file, cache_dir=args.cache_dir)
        print(f"data: {args.data_file}")
    else:
        try:
            manifest = fetch_manifest(args.base_url, args.dataset, args.token, args.export)
            data = load_export(args.base_url, args.dataset, args.token, manifest=manifest, cache_dir=args.cache_dir)
        except ExportError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"export {manifest['id']}: " + ", ".join(f"{split} {ds.num_rows} rows" for split, ds in data.items()))
    train(
        data,
        model_path=args.model,
        tokenizer_path=args.tokenizer,
        output_dir=args.output_dir,
        max_length=args.max_length,
        max_steps=args.max_steps,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        seed=args.seed,
        lora=args.lora,
        lora_targets=[t.strip() for t in args.lora_targets.split(",") if t.strip()] if args.lora_targets else None,
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha,
    )
    print(f"saved to {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
