"""Export file formats: validation, one converter per format, streaming writers and the side files.

No Django. A record is a dict with `external_id`, `sample_id`, `revision_id` (or None), `messages`
([{role, content}, ...]) and optionally `system` (a system prompt added when the conversation has none).
Writers stream records to disk and hash the bytes as they go; JSON is written with a fixed key order and
fixed separators and Parquet with pinned writer options, so the same records give byte-identical files.
Parquet bytes also carry the writer's version (`created_by: parquet-cpp-arrow version X`): identical
output needs the same pyarrow, which requirements.txt pins."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

FORMATS = ("messages", "prompt_completion", "alpaca", "sharegpt", "parquet")
SUFFIX = {"messages": ".jsonl", "prompt_completion": ".jsonl", "alpaca": ".jsonl", "sharegpt": ".json", "parquet": ".parquet"}
ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"system": "system", "user": "human", "assistant": "gpt"}
ROW_GROUP_SIZE = 10_000
PARQUET_OPTIONS: dict[str, Any] = {
    "version": "2.6", "compression": "zstd", "compression_level": 3, "use_dictionary": True, "write_statistics": True,
    "data_page_version": "1.0", "store_schema": True, "write_page_index": False, "write_page_checksum": True,
    "use_compliant_nested_type": True,
}
TAR_MTIME = 0
_CHUNK = 1 << 20
_SURROGATE = re.compile("[\ud800-\udfff]")


class InvalidRecord(ValueError):
    """A record whose conversation cannot be exported; the message names the record and each problem."""


def validate_messages(messages: Any) -> list[str]:
    """Problems with a conversation, in plain English (empty list: fine). Roles are system/user/assistant;
    every message has non-empty text content; at most one system message, first; then user and assistant
    strictly alternating, starting with the user and ending with the assistant."""
    if not isinstance(messages, list):
        return ["messages must be a list"]
    if not messages:
        return ["there are no messages"]
    problems: list[str] = []
    expected = "user"
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            problems.append(f"message {i} is not an object")
            continue
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            problems.append(f"message {i}: role {role!r} is not one of system, user, assistant")
            continue
        if not isinstance(content, str):
            problems.append(f"message {i}: content must be text, got {type(content).__name__}")
        elif not content.strip():
            problems.append(f"message {i}: content is empty")
        elif _SURROGATE.search(content):
            problems.append(f"message {i}: content has an unpaired surrogate (not valid Unicode)")
        if role == "system":
            if i != 0:
                problems.append(f"message {i}: a system message may only come first")
            continue
        if role != expected:
            problems.append(f"message {i}: expected {'an assistant' if expected == 'assistant' else 'a user'} message, got {role}")
        expected = "assistant" if role == "user" else "user"
    last = messages[-1]
    if isinstance(last, Mapping) and last.get("role") != "assistant":
        problems.append("the last message must be from the assistant")
    return problems


def conversation(record: Mapping[str, Any]) -> list[dict[str, str]]:
    """The record's messages as [{role, content}] with its `system` prompt put first when it has none;
    raises InvalidRecord when the result is not a trainable conversation."""
    raw = record.get("messages")
    messages = list(raw) if isinstance(raw, list) else raw
    system = record.get("system")
    if system and isinstance(messages, list) and not (messages and isinstance(messages[0], Mapping) and messages[0].get("role") == "system"):
        messages = [{"role": "system", "content": system}, *messages]
    problems = validate_messages(messages)
    if problems:
        raise InvalidRecord(f"record {record.get('external_id')!r} (sample {record.get('sample_id')}): {'; '.join(problems)}")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def to_messages(messages: list[dict[str, str]]) -> dict[str, Any]:
    """OpenAI-style chat: {"messages": [{role, content}, ...]}."""
    return {"messages": messages}


def to_prompt_completion(messages: list[dict[str, str]]) -> dict[str, Any]:
    """TRL conversational prompt-completion: every message before the last assistant turn, then that turn."""
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def to_alpaca(messages: list[dict[str, str]]) -> dict[str, Any]:
    """Alpaca as LLaMA-Factory reads it: the last user/assistant pair as instruction/output, earlier pairs as
    history, the system prompt in `system` ("" when there is none, so the template's default applies)."""
    system = messages[0]["content"] if messages[0]["role"] == "system" else ""
    turns = messages[1:] if system else messages
    pairs = [[turns[i]["content"], turns[i + 1]["content"]] for i in range(0, len(turns), 2)]
    return {"instruction": pairs[-1][0], "input": "", "output": pairs[-1][1], "system": system, "history": pairs[:-1]}


def to_sharegpt(messages: list[dict[str, str]]) -> dict[str, Any]:
    """ShareGPT: {"conversations": [{"from": system|human|gpt, "value": ...}]}."""
    return {"conversations": [{"from": SHAREGPT_ROLES[m["role"]], "value": m["content"]} for m in messages]}


CONVERTERS = {"messages": to_messages, "prompt_completion": to_prompt_completion, "alpaca": to_alpaca, "sharegpt": to_sharegpt,
              "parquet": to_messages}


def dumps(row: Mapping[str, Any]) -> str:
    """Compact JSON with the row's own key order: the bytes of every JSON export."""
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))


class _HashingFile(io.RawIOBase):
    """A write-only binary file that hashes and counts the bytes on their way to disk."""

    def __init__(self, path: Path):
        super().__init__()
        self._file = open(path, "wb")  # noqa: SIM115 (closed in close())
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.sha256.update(view)
        self._file.write(view)
        self.size += len(view)
        return len(view)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        if not self._file.closed:
            self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        super().close()


def parquet_schema() -> Any:
    import pyarrow as pa

    message = pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())])
    return pa.schema([pa.field("messages", pa.list_(message))])


class FormatWriter:
    """Streams conversations into one file of one format. Use as a context manager or call `close()`,
    which returns {"rows", "bytes", "sha256"}. Memory stays flat: JSON goes line by line, Parquet one row
    group (`row_group_size` rows) at a time."""

    def __init__(self, fmt: str, path: str | os.PathLike[str], *, row_group_size: int = ROW_GROUP_SIZE):
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
        self.fmt = fmt
        self.path = Path(path)
        self.rows = 0
        self._result: dict[str, Any] | None = None
        self._out = _HashingFile(self.path)
        self._convert = CONVERTERS[fmt]
        self._buffer: list[list[dict[str, str]]] = []
        self._row_group_size = row_group_size
        self._parquet = None
        if fmt == "parquet":
            import pyarrow.parquet as pq

            self._schema = parquet_schema()
            self._parquet = pq.ParquetWriter(self._out, self._schema, **PARQUET_OPTIONS)

    def write(self, record: Mapping[str, Any]) -> None:
        """Validate a record (see `conversation`) and write it."""
        self.write_conversation(conversation(record))

    def write_conversation(self, messages: list[dict[str, str]]) -> None:
        """Write a conversation already checked by `conversation`."""
        if self._parquet is not None:
            self._buffer.append(messages)
            if len(self._buffer) >= self._row_group_size:
                self._flush_parquet()
        else:
            text = dumps(self._convert(messages))
            if self.fmt == "sharegpt":
                text = ("[\n" if self.rows == 0 else ",\n") + text
            else:
                text += "\n"
            self._out.write(text.encode("utf-8"))
        self.rows += 1

    def _flush_parquet(self) -> None:
        import pyarrow as pa

        if self._buffer:
            table = pa.Table.from_pydict({"messages": self._buffer}, schema=self._schema)
            self._parquet.write_table(table, row_group_size=self._row_group_size)
            self._buffer = []

    def close(self) -> dict[str, Any]:
        if self._result is None:
            if self._parquet is not None:
                self._flush_parquet()
                self._parquet.close()
            elif self.fmt == "sharegpt":
                self._out.write(b"\n]\n" if self.rows else b"[]\n")
            self._out.close()
            self._result = {"rows": self.rows, "bytes": self._out.size, "sha256": self._out.sha256.hexdigest()}
        return self._result

    def abort(self) -> None:
        """Close without finishing the file and remove it (a failed build leaves nothing half-written)."""
        try:
            if self._parquet is not None:
                self._parquet.close()
        finally:
            self._out.close()
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> FormatWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_records(records: Iterable[Mapping[str, Any]], fmt: str, path: str | os.PathLike[str], *,
                  row_group_size: int = ROW_GROUP_SIZE) -> dict[str, Any]:
    """Stream records into `path` in one format; returns {"rows", "bytes", "sha256"}."""
    with FormatWriter(fmt, path, row_group_size=row_group_size) as writer:
        for record in records:
            writer.write(record)
    return writer.close()


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


# --- side files -----------------------------------------------------------------------------------

_OPENAI_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant", "system_tag": "system"}
_SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt", "system_tag": "system"}


def _llamafactory_entry(fmt: str, path: str) -> dict[str, Any] | None:
    if fmt in ("messages", "parquet"):
        return {"file_name": path, "formatting": "sharegpt", "columns": {"messages": "messages"}, "tags": dict(_OPENAI_TAGS)}
    if fmt == "sharegpt":
        return {"file_name": path, "formatting": "sharegpt", "columns": {"messages": "conversations"}, "tags": dict(_SHAREGPT_TAGS)}
    if fmt == "alpaca":
        return {"file_name": path, "formatting": "alpaca",
                "columns": {"prompt": "instruction", "query": "input", "response": "output", "system": "system", "history": "history"}}
    return None


def llamafactory_dataset_info(name: str, files: Mapping[str, str | Mapping[str, str]]) -> dict[str, Any]:
    """Entries for LLaMA-Factory's `dataset_info.json`, one per format it reads and split: `name` for the
    messages training file, `name_<format>` for the others, `_<split>` added for splits other than train.
    `files` maps a format to a path, or to {split: path}. TRL prompt-completion has no LLaMA-Factory form."""
    out: dict[str, Any] = {}
    for fmt in FORMATS:
        if fmt not in files:
            continue
        paths = files[fmt] if isinstance(files[fmt], Mapping) else {"train": files[fmt]}
        for split in sorted(paths, key=lambda s: (s != "train", s)):
            entry = _llamafactory_entry(fmt, str(paths[split]))
            if entry is not None:
                out[name + ("" if fmt == "messages" else f"_{fmt}") + ("" if split == "train" else f"_{split}")] = entry
    return out


def _yaml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def axolotl_snippet(name: str, path: str, validation_path: str | None = None) -> str:
    """An Axolotl `datasets:` block (and `test_datasets:` for a validation file) for the messages JSON Lines,
    read with the model's chat template and trained on assistant turns."""
    def block(p: str, split: bool) -> list[str]:
        lines = [f"  - path: {_yaml_str(p)}", "    ds_type: json", f"    data_files: [{_yaml_str(p)}]"]
        if split:
            lines.append("    split: train")
        return lines + [
            "    type: chat_template", "    field_messages: messages", "    message_property_mappings:",
            "      role: role", "      content: content", '    roles_to_train: ["assistant"]', "    train_on_eos: turn",
        ]

    lines = [f"# Axolotl datasets for the sftdesk export {name} (OpenAI-style messages).", "datasets:", *block(path, False)]
    if validation_path:
        lines += ["test_datasets:", *block(validation_path, True)]
    return "\n".join(lines) + "\n"


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < limit:
            return label
    return "10M<n<100M"


def _cell(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _configs(files: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[tuple[str, str]]]]:
    configs: list[tuple[str, list[tuple[str, str]]]] = []
    for fmt in FORMATS:
        splits = sorted(((f.get("split", "train"), f["path"]) for f in files if f.get("format") == fmt and f.get("rows", 1)),
                        key=lambda sp: (sp[0] != "train", sp[0]))
        if splits:
            configs.append(("default" if fmt == "messages" else fmt, splits))
    return configs


def dataset_card(manifest: Mapping[str, Any]) -> str:
    """README.md for an export: Hugging Face front matter (`configs` with the messages files as the default
    config, one more config per other format), then what was exported, a table per stratum and split, the
    files with their hashes, and the spec. Reads `name`, `files` ([{path, format, split, rows, bytes,
    sha256}]), `strata` (Selection.report()["strata"]), `spec`, and when present `dataset`, `created_at`,
    `created_by`, `id`."""
    name = str(manifest.get("name", "export"))
    files = list(manifest.get("files", []))
    strata: Mapping[str, Mapping[str, Any]] = manifest.get("strata", {})
    train = sum(int(s.get("train", 0)) for s in strata.values())
    validation = sum(int(s.get("validation", 0)) for s in strata.values())

    fm = ["---", f"pretty_name: {_yaml_str(name)}", "task_categories:", "- text-generation", "tags:", "- sft", "- sftdesk",
          "size_categories:", f"- {_size_category(train + validation)}", "configs:"]
    for config, splits in _configs(files):
        fm += [f"- config_name: {_yaml_str(config)}", "  data_files:"]
        for split, path in splits:
            fm += [f"  - split: {_yaml_str(split)}", f"    path: {_yaml_str(path)}"]
    if not _configs(files):
        fm[-1] = "configs: []"
    fm.append("---")

    origin = [f"Exported by sftdesk from dataset {manifest['dataset']}" if manifest.get("dataset") else "Exported by sftdesk"]
    if manifest.get("id") is not None:
        origin.append(f"as export {manifest['id']}")
    if manifest.get("created_at"):
        origin.append(f"on {manifest['created_at']}")
    if manifest.get("created_by"):
        origin.append(f"by {manifest['created_by']}")
    body = [f"# {name}", "", " ".join(origin) + ".", "",
            f"{train + validation} conversations: {train} for training, {validation} for validation.", "",
            "## Strata", "", "| stratum | pool | target | chosen | train | validation | short |", "|---|---:|---:|---:|---:|---:|---|"]
    for key in sorted(strata):
        s = strata[key]
        body.append(f"| {_cell(key)} | {s.get('pool', 0)} | {s.get('target', 0)} | {s.get('chosen', 0)} | {s.get('train', 0)} | "
                    f"{s.get('validation', 0)} | {'yes' if s.get('short') else 'no'} |")
    body.append(f"| **total** | {sum(s.get('pool', 0) for s in strata.values())} | {sum(s.get('target', 0) for s in strata.values())} | "
                f"{train + validation} | {train} | {validation} | |")
    body += ["", "## Files", "", "| path | format | split | rows | bytes | sha256 |", "|---|---|---|---:|---:|---|"]
    for f in sorted(files, key=lambda f: f["path"]):
        body.append(f"| {_cell(f['path'])} | {f.get('format', '')} | {f.get('split', '')} | {f.get('rows', '')} | "
                    f"{f.get('bytes', '')} | `{f.get('sha256', '')}` |")
    default = next((splits for config, splits in _configs(files) if config == "default"), None)
    if default:
        data_files = ", ".join(f"{_yaml_str(split)}: {_yaml_str(path)}" for split, path in default)
        body += ["", "## Load it", "", "```python", "from datasets import load_dataset", "",
                 f'ds = load_dataset("json", data_files={{{data_files}}})', "```"]
    body += ["", "## Spec", "", "```json", json.dumps(manifest.get("spec", {}), ensure_ascii=False, indent=2, sort_keys=True), "```"]
    return "\n".join(fm + body) + "\n"


def tar_bundle(out_path: str | os.PathLike[str], files: Sequence[tuple[str, str | os.PathLike[str]]]) -> dict[str, Any]:
    """An uncompressed POSIX (pax) tar of `files` [(name in the archive, path on disk)], sorted by name, with
    mtime 0, uid/gid 0, no user or group names and mode 0644, so the same files always give the same bytes.
    Returns {"files", "bytes", "sha256"}."""
    names = [str(a) for a, _p in files]
    for a in names:
        if not a or a.startswith("/") or ".." in Path(a).parts:
            raise ValueError(f"unsafe name in archive: {a!r}")
    if len(set(names)) != len(names):
        raise ValueError("two files share a name in the archive")
    out = _HashingFile(Path(out_path))
    try:
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for arcname, path in sorted(((str(a), p) for a, p in files), key=lambda ap: ap[0]):
                info = tarfile.TarInfo(arcname)
                info.size = os.path.getsize(path)
                info.mtime = TAR_MTIME
                info.mode = 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.type = tarfile.REGTYPE
                with open(path, "rb") as f:
                    tar.addfile(info, f)
    finally:
        out.close()
    return {"files": len(names), "bytes": out.size, "sha256": out.sha256.hexdigest()}
