"""Export formats: every file is read back the way its trainer reads it, two writes are byte-identical,
and the side files (LLaMA-Factory, Axolotl, dataset card, tar bundle) say what the tools expect."""

from __future__ import annotations

import hashlib
import json
import tarfile

import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq
import pytest

from exports.formats import (
    FORMATS,
    InvalidRecord,
    axolotl_snippet,
    conversation,
    dataset_card,
    llamafactory_dataset_info,
    parquet_schema,
    tar_bundle,
    to_alpaca,
    to_messages,
    to_prompt_completion,
    to_sharegpt,
    validate_messages,
    write_records,
)

yaml = pytest.importorskip("yaml")

SYSTEM = {"role": "system", "content": "Be brief."}
MULTI = [SYSTEM, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
         {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]


def record(n, messages=None, **extra):
    return {"external_id": str(n), "sample_id": n, "revision_id": None,
            "messages": messages or [{"role": "user", "content": f"Frage {n}: Größe?"}, {"role": "assistant", "content": f"Antwort {n} — ✓"}],
            **extra}


RECORDS = [record(0, MULTI), *[record(i) for i in range(1, 8)], record(8, system="You are a tutor.")]


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def from_row(fmt, row):
    """Back from a format's row to [{role, content}], the way each trainer reads it."""
    if fmt in ("messages", "parquet"):
        return row["messages"]
    if fmt == "prompt_completion":
        return row["prompt"] + row["completion"]
    if fmt == "alpaca":
        out = [{"role": "system", "content": row["system"]}] if row["system"] else []
        for user, assistant in row["history"]:
            out += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        user = row["instruction"] + ("\n" + row["input"] if row["input"] else "")
        return out + [{"role": "user", "content": user}, {"role": "assistant", "content": row["output"]}]
    roles = {"system": "system", "human": "user", "gpt": "assistant"}
    return [{"role": roles[m["from"]], "content": m["value"]} for m in row["conversations"]]


# --- validation -----------------------------------------------------------------------------------


def test_a_well_formed_conversation_has_no_problems():
    assert validate_messages(MULTI) == []
    assert validate_messages(MULTI[1:3]) == []


@pytest.mark.parametrize(
    ("messages", "problems"),
    [
        ("hi", ["messages must be a list"]),
        ([], ["there are no messages"]),
        ([{"role": "user", "content": "q"}], ["the last message must be from the assistant"]),
        ([{"role": "assistant", "content": "a"}], ["message 0: expected a user message, got assistant"]),
        ([{"role": "user", "content": "q"}, {"role": "tool", "content": "x"}],
         ["message 1: role 'tool' is not one of system, user, assistant", "the last message must be from the assistant"]),
        ([{"role": "user", "content": "q"}, {"role": "assistant", "content": 3}], ["message 1: content must be text, got int"]),
        ([{"role": "user", "content": "q"}, {"role": "assistant"}], ["message 1: content must be text, got NoneType"]),
        ([{"role": "user", "content": " "}, {"role": "assistant", "content": "a"}], ["message 0: content is empty"]),
        ([{"role": "user", "content": "q"}, SYSTEM, {"role": "assistant", "content": "a"}], ["message 1: a system message may only come first"]),
        ([SYSTEM, SYSTEM, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
         ["message 1: a system message may only come first"]),
        ([{"role": "user", "content": "q"}, {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a"}],
         ["message 1: expected an assistant message, got user"]),
        ([{"role": "user", "content": "q"}, "a"], ["message 1 is not an object"]),
        ([{"role": "user", "content": "q\ud800"}, {"role": "assistant", "content": "a"}],
         ["message 0: content has an unpaired surrogate (not valid Unicode)"]),
    ],
)
def test_each_problem_is_named(messages, problems):
    assert validate_messages(messages) == problems


def test_a_system_prompt_is_added_only_when_the_conversation_has_none():
    assert conversation(record(1, system="Sys")) == [{"role": "system", "content": "Sys"}, *record(1)["messages"]]
    assert conversation(record(0, MULTI, system="Other"))[0] == SYSTEM
    assert conversation({"messages": [{"role": "user", "content": "q", "name": "x"}, {"role": "assistant", "content": "a"}]}) == [
        {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]


def test_an_invalid_record_is_refused_with_its_ids():
    with pytest.raises(InvalidRecord) as info:
        conversation(record(9, [{"role": "user", "content": "q"}]))
    assert str(info.value) == "record '9' (sample 9): the last message must be from the assistant"


# --- converters -------------------------------------------------------------------------------------


def test_each_converter_gives_its_documented_shape():
    assert to_messages(MULTI) == {"messages": MULTI}
    assert to_prompt_completion(MULTI) == {"prompt": MULTI[:-1], "completion": [{"role": "assistant", "content": "4"}]}
    assert to_alpaca(MULTI) == {"instruction": "2+2?", "input": "", "output": "4", "system": "Be brief.", "history": [["Hi", "Hello."]]}
    assert to_alpaca(MULTI[1:3]) == {"instruction": "Hi", "input": "", "output": "Hello.", "system": "", "history": []}
    assert to_sharegpt(MULTI) == {"conversations": [
        {"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."},
        {"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}]}
    assert list(to_alpaca(MULTI)) == ["instruction", "input", "output", "system", "history"]


# --- writing and reading back ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["messages", "prompt_completion", "alpaca"])
def test_json_lines_read_back_line_by_line_and_with_arrow(tmp_path, fmt):
    # given records written as JSON Lines
    path = tmp_path / f"{fmt}.jsonl"
    result = write_records(RECORDS, fmt, path)
    # then the result describes the file exactly
    assert result == {"rows": 9, "bytes": path.stat().st_size, "sha256": sha(path)}
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 10
    rows = [json.loads(line) for line in lines[:-1]]
    # and each row turns back into the conversation it came from, valid
    expected = [conversation(r) for r in RECORDS]
    assert [from_row(fmt, row) for row in rows] == expected
    assert all(validate_messages(from_row(fmt, row)) == [] for row in rows)
    # and Arrow's JSON reader (what Hugging Face `datasets` uses for JSON Lines) reads the same rows
    table = pa_json.read_json(path)
    assert table.num_rows == 9
    assert [from_row(fmt, row) for row in table.to_pylist()] == expected


def test_json_is_compact_and_keeps_non_ascii_text_as_utf8(tmp_path):
    path = tmp_path / "m.jsonl"
    write_records([record(1)], "messages", path)
    assert path.read_bytes() == ('{"messages":[{"role":"user","content":"Frage 1: Größe?"},'
                                 '{"role":"assistant","content":"Antwort 1 — ✓"}]}\n').encode()


def test_sharegpt_is_one_json_array_written_as_a_stream(tmp_path):
    path = tmp_path / "s.json"
    result = write_records(RECORDS[:2], "sharegpt", path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("[\n{") and text.endswith("}\n]\n") and text.count(",\n{") == 1
    data = json.loads(text)
    assert data == [to_sharegpt(conversation(r)) for r in RECORDS[:2]]
    assert [validate_messages(from_row("sharegpt", row)) for row in data] == [[], []]
    assert result == {"rows": 2, "bytes": len(text.encode()), "sha256": sha(path)}


def test_parquet_has_one_messages_column_in_row_groups(tmp_path):
    # given nine records written with row groups of four
    path = tmp_path / "m.parquet"
    result = write_records(RECORDS, "parquet", path, row_group_size=4)
    # then the file has the documented schema, three row groups, and the conversations
    meta = pq.ParquetFile(path).metadata
    assert (meta.num_rows, meta.num_row_groups, [meta.row_group(i).num_rows for i in range(3)]) == (9, 3, [4, 4, 1])
    table = pq.read_table(path)
    assert table.schema.field("messages").type == pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    assert table.schema.names == ["messages"]
    assert [from_row("parquet", row) for row in table.to_pylist()] == [conversation(r) for r in RECORDS]
    assert result == {"rows": 9, "bytes": path.stat().st_size, "sha256": sha(path)}
    assert meta.created_by.startswith("parquet-cpp-arrow version ")


@pytest.mark.parametrize("fmt", FORMATS)
def test_two_writes_of_the_same_records_are_byte_identical(tmp_path, fmt):
    a = write_records(iter(RECORDS * 3), fmt, tmp_path / "a", row_group_size=5)
    b = write_records(iter(RECORDS * 3), fmt, tmp_path / "b", row_group_size=5)
    assert a == b
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    c = write_records(iter(RECORDS[::-1] * 3), fmt, tmp_path / "c", row_group_size=5)
    assert c["sha256"] != a["sha256"]


@pytest.mark.parametrize(("fmt", "content"), [("messages", b""), ("prompt_completion", b""), ("alpaca", b""), ("sharegpt", b"[]\n")])
def test_no_records_give_an_empty_but_valid_file(tmp_path, fmt, content):
    path = tmp_path / "empty"
    assert write_records([], fmt, path) == {"rows": 0, "bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
    assert path.read_bytes() == content


def test_an_empty_parquet_file_still_has_the_schema(tmp_path):
    path = tmp_path / "e.parquet"
    assert write_records([], "parquet", path)["rows"] == 0
    table = pq.read_table(path)
    assert (table.num_rows, table.schema) == (0, parquet_schema())


def test_a_bad_record_stops_the_write_and_leaves_no_file(tmp_path):
    path = tmp_path / "m.jsonl"
    with pytest.raises(InvalidRecord, match="record '9'"):
        write_records([record(1), record(9, [{"role": "user", "content": "q"}])], "messages", path)
    assert not path.exists()


def test_an_unknown_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown format 'csv'"):
        write_records([], "csv", tmp_path / "x")


# --- side files -----------------------------------------------------------------------------------------


def test_llamafactory_entries_follow_its_data_readme():
    info = llamafactory_dataset_info("mix", {
        "messages": {"train": "messages/train.jsonl", "validation": "messages/validation.jsonl"},
        "alpaca": "alpaca/train.jsonl", "sharegpt": "sharegpt/train.json", "prompt_completion": "pc/train.jsonl",
    })
    openai_tags = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant", "system_tag": "system"}
    assert info == {
        "mix": {"file_name": "messages/train.jsonl", "formatting": "sharegpt", "columns": {"messages": "messages"}, "tags": openai_tags},
        "mix_validation": {"file_name": "messages/validation.jsonl", "formatting": "sharegpt", "columns": {"messages": "messages"},
                           "tags": openai_tags},
        "mix_alpaca": {"file_name": "alpaca/train.jsonl", "formatting": "alpaca",
                       "columns": {"prompt": "instruction", "query": "input", "response": "output", "system": "system", "history": "history"}},
        "mix_sharegpt": {"file_name": "sharegpt/train.json", "formatting": "sharegpt", "columns": {"messages": "conversations"},
                         "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt", "system_tag": "system"}},
    }
    assert json.loads(json.dumps(info)) == info


def test_the_axolotl_snippet_is_yaml_for_a_chat_template_dataset():
    text = axolotl_snippet("mix", "messages/train.jsonl", "messages/validation.jsonl")
    common = {"ds_type": "json", "type": "chat_template", "field_messages": "messages",
              "message_property_mappings": {"role": "role", "content": "content"}, "roles_to_train": ["assistant"], "train_on_eos": "turn"}
    assert yaml.safe_load(text) == {
        "datasets": [{"path": "messages/train.jsonl", "data_files": ["messages/train.jsonl"], **common}],
        "test_datasets": [{"path": "messages/validation.jsonl", "data_files": ["messages/validation.jsonl"], "split": "train", **common}],
    }
    assert "test_datasets" not in yaml.safe_load(axolotl_snippet("mix", "a b/train.jsonl"))
    assert yaml.safe_load(axolotl_snippet("mix", "a b/train.jsonl"))["datasets"][0]["path"] == "a b/train.jsonl"


MANIFEST = {
    "id": 12, "name": "mix-v1", "dataset": "Support chats", "created_at": "2025-01-02T03:04:05Z", "created_by": "ana",
    "spec": {"name": "mix-v1", "size": 5},
    "strata": {"qa|x": {"pool": 9, "target": 4, "chosen": 4, "train": 3, "validation": 1, "short": False},
               "code": {"pool": 1, "target": 2, "chosen": 1, "train": 1, "validation": 0, "short": True}},
    "files": [
        {"path": "messages/train.jsonl", "format": "messages", "split": "train", "rows": 4, "bytes": 10, "sha256": "a" * 64},
        {"path": "messages/validation.jsonl", "format": "messages", "split": "validation", "rows": 1, "bytes": 5, "sha256": "b" * 64},
        {"path": "alpaca/train.jsonl", "format": "alpaca", "split": "train", "rows": 4, "bytes": 9, "sha256": "c" * 64},
        {"path": "alpaca/validation.jsonl", "format": "alpaca", "split": "validation", "rows": 0, "bytes": 0, "sha256": "d" * 64},
    ],
}


def test_the_dataset_card_has_hugging_face_configs_and_the_counts():
    card = dataset_card(MANIFEST)
    _, front, body = card.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["configs"] == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "messages/train.jsonl"},
                                                  {"split": "validation", "path": "messages/validation.jsonl"}]},
        {"config_name": "alpaca", "data_files": [{"split": "train", "path": "alpaca/train.jsonl"}]},
    ]
    assert (meta["pretty_name"], meta["task_categories"], meta["size_categories"]) == ("mix-v1", ["text-generation"], ["n<1K"])
    assert body.startswith("# mix-v1\n\nExported by sftdesk from dataset Support chats as export 12 on 2025-01-02T03:04:05Z by ana.\n")
    assert "5 conversations: 4 for training, 1 for validation." in body
    assert "| code | 1 | 2 | 1 | 1 | 0 | yes |" in body
    assert "| qa\\|x | 9 | 4 | 4 | 3 | 1 | no |" in body
    assert "| **total** | 10 | 6 | 5 | 4 | 1 | |" in body
    assert f"| messages/train.jsonl | messages | train | 4 | 10 | `{'a' * 64}` |" in body
    spec_block = body.split("```json\n", 1)[1].split("\n```", 1)[0]
    assert json.loads(spec_block) == MANIFEST["spec"]
    assert 'load_dataset("json", data_files={"train": "messages/train.jsonl", "validation": "messages/validation.jsonl"})' in body


def test_tar_bundles_of_the_same_files_are_identical_whatever_the_order(tmp_path):
    # given three files
    (tmp_path / "b.txt").write_text("bee")
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.jsonl").write_text("x\n")
    files = [("b.txt", tmp_path / "b.txt"), ("a.json", tmp_path / "a.json"), ("sub/c.jsonl", tmp_path / "sub" / "c.jsonl")]
    # when bundled twice, in different orders
    one = tar_bundle(tmp_path / "one.tar", files)
    two = tar_bundle(tmp_path / "two.tar", files[::-1])
    # then the bytes are the same, and the members are sorted with fixed metadata
    assert one == two == {"files": 3, "bytes": (tmp_path / "one.tar").stat().st_size, "sha256": sha(tmp_path / "one.tar")}
    with tarfile.open(tmp_path / "one.tar") as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["a.json", "b.txt", "sub/c.jsonl"]
        assert {(m.mtime, m.mode, m.uid, m.gid, m.uname, m.gname, m.type) for m in members} == {(0, 0o644, 0, 0, "", "", tarfile.REGTYPE)}
        assert tar.extractfile("b.txt").read() == b"bee"
    # and a changed file changes the bundle
    (tmp_path / "b.txt").write_text("bea")
    assert tar_bundle(tmp_path / "three.tar", files)["sha256"] != one["sha256"]


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", ""])
def test_a_tar_bundle_refuses_unsafe_names(tmp_path, name):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="unsafe name"):
        tar_bundle(tmp_path / "t.tar", [(name, tmp_path / "f")])


def test_a_tar_bundle_refuses_two_files_with_one_name(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="share a name"):
        tar_bundle(tmp_path / "t.tar", [("f", tmp_path / "f"), ("f", tmp_path / "f")])
