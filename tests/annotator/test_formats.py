"""Every import format and every kind of bad input, on the pure reader (no database)."""

from __future__ import annotations

import io
import json

import pytest

from annotator.formats import FileError, Limits, ParsedSample, ReadResult, RecordError, read_samples


def read(data: bytes | str, *, fmt="auto", filename="f.json", limits=None, options=None):
    if isinstance(data, str):
        data = data.encode()
    result = ReadResult()
    items = list(read_samples(io.BytesIO(data), fmt=fmt, filename=filename, limits=limits, options=options, result=result))
    return items, result.format


def jsonl(*records) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def ok(items) -> list[ParsedSample]:
    errors = [i for i in items if isinstance(i, RecordError)]
    assert errors == []
    return items


# --- formats -------------------------------------------------------------------------------

def test_alpaca_json_array_joins_instruction_and_input_and_keeps_source():
    data = json.dumps([
        {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
        {"instruction": "Say hi.", "input": "", "output": "Hi!"},
    ])
    items, fmt = read(data)
    a, b = ok(items)
    assert fmt == "alpaca"
    assert a.messages == [{"role": "user", "content": "Translate to French.\n\nGood morning"}, {"role": "assistant", "content": "Bonjour"}]
    assert b.messages == [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi!"}]
    assert a.source == {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"}
    assert (a.external_id, b.external_id) == ("0", "1")
    assert (a.line, b.line) == (1, 1)


def test_alpaca_json_lines_with_system_history_id_and_category():
    data = jsonl({"id": "x-9", "system": "Be brief.", "history": [["Hi", "Hello!"]], "instruction": "2+2?", "input": "", "output": "4", "category": " Math "})
    (s,), fmt = read(data, filename="f.jsonl")
    assert fmt == "alpaca"
    assert s.external_id == "x-9"
    assert s.task_type == "math"
    assert [m["role"] for m in s.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert s.messages[1:3] == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]


def test_sharegpt_maps_speakers_to_roles():
    data = jsonl({"id": 7, "conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]})
    (s,), fmt = read(data)
    assert fmt == "sharegpt"
    assert s.external_id == "7"
    assert s.messages == [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]


def test_openai_messages_with_text_content_parts():
    data = jsonl({"messages": [{"role": "user", "content": [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}]}, {"role": "assistant", "content": "Hi"}]})
    (s,), fmt = read(data)
    assert fmt == "messages"
    assert s.messages == [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi"}]


def test_belle_eval_keeps_reference_answer_and_normalizes_class_with_nbsp():
    data = jsonl({"question": "一加一等于几？", "std_answer": "二。", "class": "open\u00a0qa"})
    (s,), fmt = read(data)
    assert fmt == "belle"
    assert s.task_type == "open qa"
    assert s.meta == {"reference_answer": "二。"}
    assert s.messages == [{"role": "user", "content": "一加一等于几？"}, {"role": "assistant", "content": "二。"}]
    assert s.language == "zh"


def test_dolly_instruction_context_response_category():
    data = jsonl({"instruction": "Who wrote it?", "context": "Hamlet is a play by Shakespeare.", "response": "Shakespeare", "category": "closed_qa"})
    (s,), fmt = read(data)
    assert fmt == "belle"
    assert s.task_type == "closed_qa"
    assert s.messages[0]["content"] == "Who wrote it?\n\nHamlet is a play by Shakespeare."
    assert s.messages[1]["content"] == "Shakespeare"


def test_csv_with_known_column_names():
    data = "id,prompt,answer,category\nq1,\"Say, hi\",Hi,chat\nq2,Count,\"1\n2\",math\n"
    items, fmt = read(data, filename="f.csv")
    a, b = ok(items)
    assert fmt == "csv"
    assert (a.external_id, a.messages[0]["content"], a.task_type) == ("q1", "Say, hi", "chat")
    assert b.messages[1]["content"] == "1\n2"
    assert b.line == 4  # the quoted newline makes the second record end on line 4


def test_csv_with_explicit_mapping():
    data = "q,a\nWhy?,Because.\n"
    (s,), _ = read(data, filename="x.txt", fmt="csv", options={"columns": {"instruction": "q", "output": "a"}})
    assert s.messages == [{"role": "user", "content": "Why?"}, {"role": "assistant", "content": "Because."}]
    assert s.external_id == "0"


def test_csv_without_answer_column_names_the_columns():
    with pytest.raises(FileError, match=r"no column for 'output'.*columns: prompt, z"):
        read("prompt,z\n1,2\n", filename="f.csv")


def test_format_override_is_used_and_mismatch_is_a_field_error():
    items, fmt = read(jsonl({"instruction": "a", "output": "b"}), fmt="sharegpt")
    assert fmt == "sharegpt"
    assert items == [RecordError("is missing", line=1, record=0, field="conversations")]


def test_language_detection_on_chinese_and_english():
    items, _ = read(jsonl({"instruction": "请写一首关于春天的诗", "output": "春风…"}, {"instruction": "Write a poem about spring", "output": "..."}))
    assert [s.language for s in ok(items)] == ["zh", "en"]


def test_content_hash_ignores_whitespace_and_unicode_form_only():
    items, _ = read(jsonl(
        {"instruction": "Hi  there", "output": "ok"},
        {"instruction": " Hi there ", "output": "ok"},
        {"instruction": "Ｈi there", "output": "ok"},  # fullwidth H -> NFKC H
        {"instruction": "hi there", "output": "ok"},
    ))
    hashes = [s.content_hash for s in ok(items)]
    assert hashes[0] == hashes[1] == hashes[2]
    assert hashes[3] != hashes[0]


# --- bad input -----------------------------------------------------------------------------

def test_invalid_json_on_line_7_of_json_lines_is_named_and_reading_goes_on():
    lines = [json.dumps({"instruction": f"q{i}", "output": "a"}) for i in range(10)]
    lines[6] = '{"instruction": "broken", "output": '
    items, _ = read("\n".join(lines) + "\n")
    errors = [i for i in items if isinstance(i, RecordError)]
    assert errors == [RecordError("invalid JSON: Expecting value (column 37)", line=7, record=6)]
    assert len(items) == 10


def test_invalid_json_in_an_array_names_its_line():
    body = "[\n" + ",\n".join(json.dumps({"instruction": f"q{i}", "output": "a"}) for i in range(5)) + ",\n{\"instruction\": oops}\n]"
    items, _ = read(body)
    assert len([i for i in items if isinstance(i, ParsedSample)]) == 5
    (err,) = [i for i in items if isinstance(i, RecordError)]
    assert err.line == 7
    assert err.message.startswith("invalid JSON: Expecting value")


def test_unclosed_array_is_reported():
    items, _ = read('[{"instruction": "a", "output": "b"}')
    assert items[-1] == RecordError("the JSON array is not closed: file ends before ']'", line=1, record=1)


def test_record_missing_its_answer():
    items, _ = read(jsonl({"instruction": "q", "output": "a"}, {"instruction": "q2"}))
    assert items[1] == RecordError("is missing: the record has no answer", line=2, record=1, field="output")


def test_sharegpt_without_assistant_turn_has_no_answer():
    items, _ = read(jsonl({"conversations": [{"from": "human", "value": "Q"}]}))
    assert items == [RecordError("has no assistant turn: the record has no answer", line=1, record=0, field="conversations")]


def test_wrong_types_name_the_field():
    items, _ = read(jsonl(
        {"instruction": ["not", "a", "string"], "output": "a"},
        {"instruction": "q", "output": 42},
        {"messages": [{"role": "robot", "content": "x"}]},
        {"instruction": "q", "output": "a", "history": "hello"},
        ["a", "list"],
        {"instruction": "q", "output": "a", "id": {"nested": 1}},
    ))
    assert items[:2] == [
        RecordError("must be a string, got array", line=1, record=0, field="instruction"),
        RecordError("must be a string, got number", line=2, record=1, field="output"),
    ]
    # records after the first keep the format detected from the first one (alpaca)
    assert items[2] == RecordError("is missing", line=3, record=2, field="instruction")
    assert items[3] == RecordError("must be an array of [instruction, answer] pairs, got string", line=4, record=3, field="history")
    assert items[4] == RecordError("record must be a JSON object, got array", line=5, record=4)
    assert items[5] == RecordError("must be a string or a number, got object", line=6, record=5, field="id")


def test_messages_role_error_names_the_turn():
    items, _ = read(jsonl({"messages": [{"role": "robot", "content": "x"}]}))
    assert items == [RecordError("must be one of system, user, assistant; got 'robot'", line=1, record=0, field="messages[0].role")]


def test_invalid_utf8_names_the_line():
    data = (jsonl({"instruction": "a", "output": "b"}) + '{"instruction": "caf').encode() + b"\xe9" + b'", "output": "x"}\n'
    items, _ = read(data)
    assert items[1] == RecordError("invalid UTF-8 at byte 21 of the line", line=2, record=1)


def test_invalid_utf8_in_an_array_names_the_line():
    data = b'[\n{"instruction": "a", "output": "b"},\n{"instruction": "\xff", "output": "b"}\n]'
    items, _ = read(data)
    assert isinstance(items[0], ParsedSample)
    assert items[1] == RecordError("invalid UTF-8 at column 18", line=3, record=1)


def test_invalid_utf8_in_csv_names_the_line():
    items, _ = read(b"instruction,output\nok,fine\nbad \xff,x\n", filename="f.csv")
    assert items[1] == RecordError("invalid UTF-8", line=3, record=1)


def test_nul_bytes_are_refused_with_their_place():
    raw = jsonl({"instruction": "a", "output": "b"}).encode() + b'{"instruction": "a\x00", "output": "c"}\n'
    items, _ = read(raw)
    assert items[1] == RecordError("NUL byte at column 19", line=2, record=1)
    escaped, _ = read(jsonl({"instruction": "a\u0000", "output": "c"}))
    assert escaped == [RecordError("contains a NUL character", line=1, record=0, field="instruction")]
    csv_items, _ = read(b"instruction,output\na\x00,b\n", filename="f.csv")
    assert csv_items == [RecordError("contains a NUL character", line=2, record=0, field="instruction")]


def test_a_50_mb_field_is_refused_naming_the_field():
    big = "x" * (50 * 1024 * 1024)
    data = '{"instruction": "q", "output": "' + big + '"}\n'
    items, _ = read(data)
    assert items == [RecordError("is 52,428,800 characters, over the 1,000,000-character limit", line=1, record=0, field="output")]


def test_a_record_over_the_record_limit_is_skipped_without_reading_it_whole():
    limits = Limits(max_record_bytes=1000)
    data = jsonl({"instruction": "q", "output": "y" * 5000}, {"instruction": "q2", "output": "ok"})
    items, _ = read(data, limits=limits)
    assert items[0] == RecordError("record is larger than the 1,000-byte limit", line=1, record=0)
    assert isinstance(items[1], ParsedSample) and items[1].line == 2


def test_deeply_nested_json_is_refused():
    deep = '{"instruction": "q", "output": "a", "extra": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
    items, _ = read(deep)
    assert items == [RecordError("JSON is nested too deeply", line=1, record=0)]
    moderately = {"instruction": "q", "output": "a", "extra": json.loads("[" * 100 + "]" * 100)}
    items, _ = read(jsonl(moderately))
    assert items == [RecordError("nested deeper than 64 levels", line=1, record=0)]


def test_empty_file():
    with pytest.raises(FileError, match="the file is empty"):
        read(b"")
    with pytest.raises(FileError, match="the file is empty"):
        read(b"  \n\n")


def test_unknown_format():
    with pytest.raises(FileError, match=r"unknown format: the first record has keys \[foo, text\]"):
        read(jsonl({"text": "hi", "foo": 1}))
    with pytest.raises(FileError, match="unknown format 'yaml'"):
        read(jsonl({"instruction": "a", "output": "b"}), fmt="yaml")
    with pytest.raises(FileError, match="neither JSON, JSON Lines nor named .csv"):
        read(b"hello world", filename="notes.txt")


def test_an_empty_array_and_trailing_garbage():
    items, _ = read("[]")
    assert items == []
    items, _ = read('[{"instruction": "a", "output": "b"}] extra')
    assert items[-1] == RecordError("unexpected data after the closing ']'", line=1, record=1)


def test_array_records_spanning_read_chunks_keep_their_line_numbers():
    records = [{"instruction": f"q{i}", "output": "z" * 3000} for i in range(1000)]  # ~3 MB, several chunks
    body = "[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]"
    items, _ = read(body)
    parsed = ok(items)
    assert len(parsed) == 1000
    assert [p.line for p in parsed[:3]] == [2, 3, 4]
    assert parsed[-1].line == 1001
    assert parsed[-1].external_id == "999"


def test_an_escaped_lone_surrogate_is_refused():
    items, _ = read('{"instruction": "q\\ud800", "output": "a"}\n')
    assert items == [RecordError("contains an unpaired surrogate escape (not valid Unicode)", line=1, record=0, field="instruction")]


def test_nul_and_lone_surrogate_escapes_in_extra_fields_are_refused_with_their_path():
    items, _ = read('{"instruction": "q", "output": "a", "meta": {"notes": ["ok", "bad\\u0000"]}}\n'
                    '{"instruction": "q", "output": "a", "x": "\\udc00"}\n'
                    '{"instruction": "q", "output": "a", "x": "\\ud83d\\ude00 and a literal \\\\u0000"}\n')
    assert items[:2] == [
        RecordError("contains a NUL character", line=1, record=0, field="meta.notes[1]"),
        RecordError("contains an unpaired surrogate escape (not valid Unicode)", line=2, record=1, field="x"),
    ]
    assert isinstance(items[2], ParsedSample)
    assert items[2].source["x"] == "\U0001f600 and a literal \\u0000"


@pytest.mark.parametrize("container", ["lines", "array"])
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("NaN", "invalid JSON: NaN is not valid JSON"),
        ("-Infinity", "invalid JSON: -Infinity is not valid JSON"),
        ("1e400000", "invalid JSON: number 1e400000 is out of range"),
        ("1" * 5000, "invalid JSON: Exceeds the limit (4300 digits) for integer string conversion"),
    ],
)
def test_numbers_no_database_can_store_are_refused_with_their_line(container, value, message):
    good = json.dumps({"instruction": "q", "output": "a"})
    bad = '{"instruction": "q", "output": "a", "score": ' + value + "}"
    data = f"{good}\n{bad}\n" if container == "lines" else f"[\n{good},\n{bad}\n]"
    items, _ = read(data)
    assert isinstance(items[0], ParsedSample)
    assert items[1].line == 2 if container == "lines" else items[1].line == 3
    assert items[1].message.startswith(message)


def test_a_nul_or_lone_surrogate_in_a_key_is_refused():
    items, _ = read('{"instruction": "q", "output": "a", "k\\u0000": 1}\n')
    assert items == [RecordError("contains a NUL character", line=1, record=0, field="k\\x00")]


def test_a_syntax_error_in_a_big_array_is_reported_as_such_at_once():
    records = [json.dumps({"instruction": f"q{i}", "output": "a" * 100}) for i in range(2000)]
    records[1] = records[1][:-1] + ",}"  # a trailing comma in record 1
    items, _ = read("[\n" + ",\n".join(records) + "\n]", limits=Limits(max_record_bytes=1000))
    assert isinstance(items[0], ParsedSample)
    assert items[1] == RecordError("invalid JSON: Expecting property name enclosed in double quotes (column 136)", line=3, record=1)


def test_the_record_limit_counts_bytes_in_arrays_as_in_lines():
    record = {"instruction": "问" * 500, "output": "答" * 500}  # about 3,000 bytes, 1,000 characters
    for data in (jsonl(record), "[" + json.dumps(record, ensure_ascii=False) + "]"):
        items, _ = read(data, limits=Limits(max_record_bytes=2000))
        assert len(items) == 1 and isinstance(items[0], RecordError), data[:20]
        assert "larger than the 2,000-byte limit" in items[0].message


def test_a_nul_byte_in_an_array_names_its_record_and_line():
    records = [json.dumps({"instruction": f"q{i}", "output": "a"}) for i in range(60)]
    records[50] = '{"instruction": "q\x0050", "output": "a"}'
    items, _ = read("[\n" + ",\n".join(records) + "\n]")
    assert items[50] == RecordError("NUL byte at column 19", line=52, record=50)


def test_multibyte_text_across_read_chunks_is_decoded_whole():
    records = [{"instruction": f"第{i}题：" + "春眠不觉晓，处处闻啼鸟。" * 40, "output": "😀" * 50} for i in range(1500)]  # ~2 MB
    body = "[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n]"
    items, _ = read(body)
    parsed = ok(items)
    assert [p.source for p in parsed] == records
    assert parsed[-1].line == 1501
