"""Cleaning rules (scoring/metrics/cleaning.py): known answers for every rule, in English and Chinese,
and the cases each rule must leave alone. Plain pytest; no database."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scoring.metrics.base import Flag
from scoring.metrics.cleaning import (
    RULES,
    CleaningConfig,
    clean_sample,
    cleaning_flags,
    count_tokens,
    garbage_characters,
    repeated_ngram_ratio,
)

ROOT = Path(__file__).resolve().parents[2]


def conv(user: str, answer: str | None = None, *, system: str | None = None) -> list[dict]:
    messages = []
    if system is not None:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": user})
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return messages


def flags(user: str, answer: str | None, **kwargs) -> list[tuple[str, str]]:
    return [(f.rule, f.reason) for f in cleaning_flags(conv(user, answer), **kwargs)]


def reasons(rule: str, user: str, answer: str | None, **kwargs) -> list[str]:
    return [reason for r, reason in flags(user, answer, **kwargs) if r == rule]


def result(rule: str, user: str, answer: str | None, **kwargs):
    return next(r for r in clean_sample(conv(user, answer), **kwargs) if r.name == rule)


# --- the API -------------------------------------------------------------------------------------------


def test_one_result_per_rule_in_order_with_values_even_when_clean():
    results = clean_sample(conv("2+2?", "4"))
    assert [r.name for r in results] == list(RULES)
    assert not any(r.flagged for r in results)
    values = {r.name: r.value for r in results}
    assert values["empty_answer"] is False
    assert values["answer_length"] == 1
    assert values["repetition"] == 0.0
    assert values["garbage_characters"] == 0.0


def test_cleaning_flags_are_the_flags_of_clean_sample():
    messages = conv("Give me a fun fact.", "N/A")
    assert cleaning_flags(messages) == [f for r in clean_sample(messages) for f in r.flags]
    assert cleaning_flags(messages) == [Flag("placeholder", "answer is a placeholder: 'N/A'")]


def test_answer_is_the_last_assistant_turn_and_instruction_the_user_turn_before_it():
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Name a planet."},
        {"role": "assistant", "content": "N/A"},
        {"role": "user", "content": "Name a fruit that is yellow and curved."},
        {"role": "assistant", "content": "A banana is a fruit that is yellow and curved, and it is rich in potassium."},
    ]
    assert cleaning_flags(messages) == []  # the earlier placeholder answer is context, not the answer


def test_config_defaults_and_override():
    cfg = CleaningConfig()
    assert cfg.min_answer_tokens == 1
    assert cfg.max_answer_tokens == 4096
    assert (cfg.char_ngram, cfg.word_ngram) == (10, 3)
    assert 0 < cfg.max_char_repetition < 1 and 0 < cfg.max_word_repetition < 1
    assert 0 < cfg.max_garbage_ratio < 1 and 0 < cfg.copy_similarity <= 1


def test_module_imports_nothing_from_django():
    code = "import sys; import scoring.metrics.cleaning; print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_fast_enough():
    samples = [
        conv("Explain photosynthesis in simple words.", "Plants use light to turn water and carbon dioxide into sugar and oxygen. " * 4),
        conv("请解释一下什么是光合作用。", "光合作用是植物利用光能把二氧化碳和水转化为有机物并释放氧气的过程。" * 3),
        conv("Write a Python function that adds two numbers.", "```python\ndef add(a, b):\n    return a + b\n```"),
        conv("Summarize the article.\n\nhttps://example.com/news/1", "It is about the economy."),
    ] * 250
    start = time.perf_counter()
    for messages in samples:
        clean_sample(messages)
    assert time.perf_counter() - start < 2.0  # about 0.1 s on one core; 52k Alpaca samples take a few seconds


# --- tokens --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "n"),
    [("Hello, 世界!", 5), ("你好，世界！", 6), ("GPT-4 模型", 5), ("4", 1), ("", 0), ("   ", 0), ("don't", 3)],
)
def test_count_tokens(text, n):
    assert count_tokens(text) == n


# --- empty_answer ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", ["", "   \n\t "])
def test_empty_answer(answer):
    assert flags("What is the capital of France?", answer) == [("empty_answer", "answer is empty")]
    assert flags("法国的首都是哪里？", answer) == [("empty_answer", "answer is empty")]


def test_missing_answer():
    assert flags("What is the capital of France?", None) == [("empty_answer", "answer is missing: no assistant message")]


def test_short_correct_answer_is_not_empty_or_short():
    assert flags("2+2?", "4") == []
    assert flags("2+2等于几？", "4") == []
    assert result("answer_length", "2+2?", "4").value == 1


# --- placeholder ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", ["N/A", "NA", "n/a.", "None", "<nooutput>", "No output", "null", "-", "...", "无", "暂无", "空"])
def test_placeholder_answers(answer):
    assert reasons("placeholder", "Give me an example of a renewable energy source.", answer) == [
        f"answer is a placeholder: '{answer.strip()}'"
    ]


@pytest.mark.parametrize("placeholder", ["<noinput>", "<No Input>", "No input.", "(noinput)", "无输入", "无"])
def test_placeholder_inputs(placeholder):
    user = "Describe the benefits of exercise.\n\n" + placeholder
    assert reasons("placeholder", user, "Exercise strengthens the heart and improves mood.") == [f"input is a placeholder: '{placeholder}'"]


def test_placeholder_instruction():
    assert reasons("placeholder", "N/A", "Here is something.") == ["instruction is a placeholder: 'N/A'"]


def test_not_placeholders():
    assert reasons("placeholder", "What is the chemical symbol for sodium?", "Na") == []
    assert reasons("placeholder", "Which of these numbers is negative: 1, 2, or none?", "None") == []
    assert reasons("placeholder", "这句话有无语法错误？", "无") == []
    assert reasons("placeholder", "Is the sky green?", "No, it is not.") == []
    assert reasons("placeholder", "Describe the benefits of exercise.\n\nNo input needed here, just be thorough.", "Ok.") == []


# --- answer_length ------------------------------------------------------------------------------------


def test_answer_too_short_and_too_long():
    assert reasons("answer_length", "Where is Paris?", "Paris is nice", config=CleaningConfig(min_answer_tokens=5)) == [
        "answer is 3 tokens, under the minimum of 5"
    ]
    assert reasons(
        "answer_length", "Where is Paris?", "Paris is a city in France and it is nice.", config=CleaningConfig(max_answer_tokens=10)
    ) == ["answer is 11 tokens, over the maximum of 10"]
    assert reasons("answer_length", "巴黎在哪里？", "在法国", config=CleaningConfig(min_answer_tokens=5)) == [
        "answer is 3 tokens, under the minimum of 5"
    ]


def test_answer_length_ignores_empty_answer():
    assert reasons("answer_length", "Where is Paris?", "", config=CleaningConfig(min_answer_tokens=5)) == []


# --- refusal --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "answer", "phrase"),
    [
        ("Explain photosynthesis.", "As an AI language model, I cannot explain photosynthesis.", "As an AI language model"),
        ("Write a poem about war.", "I'm sorry, but I can't help with that.", "I'm sorry, but I can't help"),
        ("Write a poem about war.", "I’m sorry, but I can’t help with that.", "I'm sorry, but I can't help"),
        ("Draw a cat.", "This task cannot be completed by a GPT model.", "This task cannot be completed"),
        ("Play a song on the piano.", "Sorry, I am unable to play music.", "Sorry, I am unable to play"),
        (
            "Create a logo for a bakery.",
            "Sorry, the task requires a visual output which cannot be generated.",
            "the task requires a visual",
        ),
        ("解释光合作用。", "作为一个AI语言模型，我无法回答这个问题。", "作为一个AI语言模型"),
        ("解释光合作用。", "抱歉，我无法回答这个问题。", "抱歉，我无法回答"),
        ("画一只猫。", "对不起，我不能绘制图像。", "对不起，我不能绘制"),
        ("设计一个标志。", "此任务涉及创建视觉输出，GPT 模型无法完成。", "涉及创建视觉输出"),
    ],
)
def test_refusals(user, answer, phrase):
    assert reasons("refusal", user, answer) == [f"answer refuses: matches '{phrase}'"]


def test_answer_that_is_mostly_boilerplate():
    answer = (
        "Weather forecasts depend on many measurements taken by stations, satellites and balloons, which are combined by "
        "numerical models run on large computers every few hours to produce the maps you see on the news. "
        "As an AI language model, I do not have access to real-time data about tomorrow's weather in your city. "
        "As an AI language model, I cannot browse the internet to look up the latest forecast for you. "
        "As an AI language model, I recommend checking a local weather service."
    )
    found = reasons("refusal", "What will the weather be tomorrow?", answer)
    assert len(found) == 1
    assert re.fullmatch(r"answer is mostly refusal boilerplate: \d+% is in sentences like 'As an AI language model'", found[0])


@pytest.mark.parametrize(
    ("user", "answer"),
    [
        # "sorry" deep inside a long helpful answer
        (
            "How do I fix a flat bike tyre?",
            "To fix a flat tyre, first remove the wheel and take out the inner tube. Find the hole by pumping some air in and "
            "listening for the hiss, then mark it. I'm sorry to say that patches rarely last forever, so carry a spare tube. "
            "Then patch or replace the tube, refit it and pump it up to the pressure printed on the tyre wall.",
        ),
        # apologies that are the task, not a refusal
        ("Reply to a customer whose order is late.", "I'm sorry to hear that your order is late. We will ship it tomorrow."),
        ("Write an apology to a friend.", "I am sorry I missed your party. Let me make it up to you this weekend."),
        ("写一封道歉信。", "对不起，我昨天没能参加你的生日聚会，我感到非常抱歉。"),
        # idioms, dialogues and rewrites that contain "I can't"
        ("Describe your morning.", "I can't help but smile when the sun comes up."),
        ("Write a dialogue about a lost key.", "John: I can't find my key anywhere.\nMary: Did you check your coat?"),
        ("Reword: I'm not able to figure it out.", "I can't make sense of it."),
        ("用“不能”造一个句子。", "我不能再吃了，我已经很饱了。"),
        # an explanation of what language models cannot do, when asked
        ("What can't a GPT model do?", "A GPT model cannot browse the internet or see images."),
    ],
)
def test_not_refusals(user, answer):
    assert reasons("refusal", user, answer) == []


# --- only_punctuation_or_stopwords -----------------------------------------------------------------------


def test_only_stop_words_or_punctuation():
    assert reasons("only_punctuation_or_stopwords", "Write a poem about the sea.", "the of and") == [
        "answer has no content words, only stop words ('the', 'of', 'and')"
    ]
    assert reasons("only_punctuation_or_stopwords", "Write a poem about the sea.", "?!...") == [
        "answer has no content words, only punctuation or symbols: '?!...'"
    ]
    assert reasons("only_punctuation_or_stopwords", "写一首关于大海的诗。", "的了吗") == [
        "answer has no content words, only stop words ('的', '了', '吗')"
    ]
    assert reasons("only_punctuation_or_stopwords", "写一首关于大海的诗。", "。。，！") == [
        "answer has no content words, only punctuation or symbols: '。。，！'"
    ]


@pytest.mark.parametrize(
    ("user", "answer"),
    [
        ("2+2?", "4"),
        ("Is the sky blue?", "Yes."),
        ("天空是蓝色的吗？", "是"),
        ("How do you feel today?", "😊"),
        ("Fill in the blank: The show must go __.", "on"),
        ("Which pronoun fits: ___ went to school?", "She"),
        ("Draw a smiley face using only ASCII characters.", ":-)"),
        ("选择正确的介词填空：他___学校。", "在"),
    ],
)
def test_content_or_word_tasks_are_not_flagged(user, answer):
    assert reasons("only_punctuation_or_stopwords", user, answer) == []


def test_only_punctuation_value_is_none_for_empty_answer():
    assert result("only_punctuation_or_stopwords", "Hi", "").value is None
    assert result("only_punctuation_or_stopwords", "Hi", "Hello!").value is True


# --- repetition -----------------------------------------------------------------------------------------


def test_repeated_ngram_ratio_definition():
    assert repeated_ngram_ratio("abcabcabc", 3) == pytest.approx(4 / 7)  # 7 trigrams, 3 distinct
    assert repeated_ngram_ratio(["a", "b", "a", "b"], 2) == pytest.approx(1 / 3)
    assert repeated_ngram_ratio("abcdef", 3) == 0.0
    assert repeated_ngram_ratio("ab", 3) == 0.0
    assert repeated_ngram_ratio([], 3) == 0.0


def test_repetition_english():
    assert reasons("repetition", "Write a story.", "I love you. " * 20) == [
        "95% of the answer's word 3-grams are repeats (limit 50%); 95% of the answer's character 10-grams are repeats (limit 50%)"
    ]
    r = result("repetition", "Write a story.", "I love you. " * 20)
    # 38 word 3-grams of "love you love you ..." ("I" is too short to be a word), 2 distinct;
    # 210 character 10-grams of "i love you i love you ...", 11 distinct. The value is the larger.
    assert r.details["word"] == pytest.approx(36 / 38)
    assert r.details["char"] == pytest.approx(199 / 210)
    assert r.value == max(r.details["word"], r.details["char"])


def test_repetition_chinese_is_caught_at_character_level():
    assert reasons("repetition", "写一个故事。", "我爱你。" * 20) == ["94% of the answer's character 10-grams are repeats (limit 50%)"]
    assert result("repetition", "写一个故事。", "我爱你。" * 20).details["word"] == 0.0


def test_chinese_without_spaces_does_not_trip_word_repetition():
    answer = (
        "光合作用是绿色植物利用太阳光的能量，把二氧化碳和水合成有机物并释放氧气的过程。它主要发生在叶片的叶绿体中，"
        "分为光反应和暗反应两个阶段。光反应把光能转化为化学能，暗反应则利用这些能量固定二氧化碳，生成葡萄糖等糖类。"
        "这个过程不仅为植物自身提供养分，也为地球上几乎所有生物提供了食物和氧气，是生态系统能量流动的起点。"
    )
    r = result("repetition", "请介绍一下光合作用。", answer)
    assert r.details["word"] == 0.0
    assert r.details["char"] < 0.1
    assert not r.flagged


@pytest.mark.parametrize(
    ("user", "answer"),
    [
        ("Make an HTML table with ten rows.", "<table>\n" + "  <tr><td>cell</td><td>cell</td></tr>\n" * 10 + "</table>"),
        ("Write a Python loop.", "```python\n" + "print('hello world again')\n" * 12 + "```"),
        ("Repeat the word hello twenty times.", "hello " * 20),
        (
            "Explain why the sky is blue.",
            "Sunlight is made of many colours. When it enters the atmosphere, the short blue wavelengths are scattered "
            "by the molecules of the air much more than the long red ones, so blue light reaches our eyes from every "
            "direction of the sky. At sunset the light crosses more air, the blue is scattered away, and the sky turns red.",
        ),
    ],
)
def test_structure_and_natural_text_are_not_repetition(user, answer):
    assert reasons("repetition", user, answer) == []


# --- garbage_characters ------------------------------------------------------------------------------------


def test_garbage_characters_in_answer_and_instruction():
    assert reasons("garbage_characters", "Say hi.", "Hello\x00\x01\x02 world") == [
        "21% of the answer's characters are special (3 control) (limit 2%)"
    ]
    assert reasons("garbage_characters", "Say hi.", "Caf\ufffd\ufffd au lait") == [
        "15% of the answer's characters are special (2 replacement) (limit 2%)"
    ]
    assert reasons("garbage_characters", "打个招呼。", "你好\ue000\ue001世界") == [
        "33% of the answer's characters are special (2 private use) (limit 2%)"
    ]
    zalgo = "Z\u0336\u0337\u0338a\u0336\u0337\u0338l\u0336\u0337\u0338g\u0336\u0337\u0338o"
    assert reasons("garbage_characters", zalgo, "It says Zalgo.") == [
        "71% of the instruction's characters are special (12 combining mark) (limit 2%)"
    ]


def test_garbage_character_counts():
    assert garbage_characters("plain text\twith tabs\nand newlines\r\n") == (0, {})
    assert garbage_characters("a\x00b\x7f") == (2, {"control": 2})
    assert garbage_characters("\ufffd") == (1, {"replacement": 1})
    assert garbage_characters("\U000f0001") == (1, {"private use": 1})
    assert garbage_characters(" \u0301") == (1, {"combining mark": 1})  # a mark on nothing


@pytest.mark.parametrize(
    "text",
    [
        "cafe\u0301 and re\u0301sume\u0301",  # decomposed accents
        "Tiếng Việt có dấu",
        "ภาษาไทย สวัสดีครับ",  # Thai vowel and tone marks
        "नमस्ते दुनिया",  # Devanagari signs
        "I ❤️ it 1️⃣ 👍🏽",  # variation selector, keycap, skin tone
        "中文、日本語、한국어",
    ],
)
def test_ordinary_writing_is_not_garbage(text):
    assert garbage_characters(text)[0] == 0
    assert reasons("garbage_characters", text, text) == []


# --- truncated_answer ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (
            "First, boil water. Then add the tea, and the third step is to",
            "answer ends mid-sentence: '...en add the tea, and the third step is to'",
        ),
        (
            "Here is the code:\n```python\nprint('hi')",
            "answer ends inside an unclosed code block: 'Here is the code: ```python print('hi')'",
        ),
        ("The function is defined as f(x, y", "answer ends with an unclosed '(': 'The function is defined as f(x, y'"),
        ("We walked to the river and sat on the bank,", "answer ends mid-sentence, on ',': '...walked to the river and sat on the bank,'"),
        ("这个方法的优点是速度快、成本低以及", "answer ends mid-sentence: '这个方法的优点是速度快、成本低以及'"),
        ("我们在河边散步，看到了很多美丽的花朵，", "answer ends mid-sentence, on '，': '我们在河边散步，看到了很多美丽的花朵，'"),
    ],
)
def test_truncated_answers(answer, reason):
    assert reasons("truncated_answer", "Tell me more.", answer) == [reason]


@pytest.mark.parametrize(
    "answer",
    [
        "```python\ndef add(a, b):\n    return a + b\n```",  # closed code block
        "Here you go:\n```\nls -la\n```",
        "Paris",  # single word
        "42",
        "1. Apples\n2. Oranges\n3. Bananas",  # list items
        "- eggs\n- milk\n- the",
        "Have a great day 😊",  # emoji
        'He said "see you tomorrow"',  # closing quote
        "The capital of France is Paris",  # no full stop, but nothing cut
        "Best wishes,\nSincerely,",  # a letter's closing
        "Dear Dr. Smith,",
        "Turn the lights on",
        "See https://example.com/docs/and",
        "消极的",  # 的 ends a Chinese adjective
        "这是真的",
        "他的朋友都很温和",
        "天气很好，我们一起去公园散步吧",
        "x = f(a, b) and",  # too short to call
    ],
)
def test_complete_answers_are_not_truncated(answer):
    assert reasons("truncated_answer", "Tell me more.", answer) == []


# --- unseeable_input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "reason"),
    [
        ("Summarize the article.\n\nhttps://example.com/x", "input is only a URL (https://example.com/x): the model cannot open it"),
        ("总结这篇文章。\n\nwww.example.com/news", "input is only a URL (www.example.com/news): the model cannot open it"),
        ("https://example.com/page", "instruction is only a URL (https://example.com/page): the model cannot open it"),
        ("What is this?\n\n![cat](https://x.com/cat.png)", "input is only an image (https://x.com/cat.png): the model cannot see it"),
        ("Describe the image below.", "instruction refers to something the model cannot see: 'image below', and it is not in the text"),
        (
            "What is in the attached file?",
            "instruction refers to something the model cannot see: 'the attached file', and it is not in the text",
        ),
        (
            "Open this link and summarize it.",
            "instruction refers to something the model cannot see: 'Open this link', and it is not in the text",
        ),
        (
            "Describe the painting below.\n\n[Image of a painting]",
            "instruction refers to something the model cannot see: 'painting below', and it is not in the text",
        ),
        ("看这张图片，告诉我里面有什么。", "instruction refers to something the model cannot see: '看这张图片', and it is not in the text"),
        ("请总结附件中的内容。", "instruction refers to something the model cannot see: '附件中', and it is not in the text"),
        ("如图所示，求三角形的面积。", "instruction refers to something the model cannot see: '如图所示', and it is not in the text"),
        ("请打开下面的链接并总结。", "instruction refers to something the model cannot see: '下面的链接', and it is not in the text"),
        ("描述下面的照片。\n\n[插入照片]", "instruction refers to something the model cannot see: '下面的照片', and it is not in the text"),
    ],
)
def test_unseeable_input(user, reason):
    assert reasons("unseeable_input", user, "Some answer.") == [reason]


@pytest.mark.parametrize(
    "user",
    [
        "Shorten this URL.\n\nhttps://example.com/a/very/long/path",  # works on the URL's text
        "Extract the domain name.\n\nhttps://www.example.org/index.html",
        "Describe the chart below:\nSales were 5 in 2019, 7 in 2020 and 9 in 2021, growing steadily every year.",
        "Summarize the following document.\n\nThe committee met on Monday and agreed to raise the budget for parks by ten percent.",
        "Write a story about a picture you love.",
        'Describe the painting "The Starry Night".',
        "Describe the painting The Starry Night by Vincent van Gogh.",
        "描述一下梵高的《星夜》这幅画。",
        "生成一个程序来打印下面的图案\n\n1 2 2 3 3 3",  # 图案 is a pattern, not a picture
        "Convert the sentence into passive voice: She created this document.",
        "解释一下什么是地图中的比例尺。",
    ],
)
def test_not_unseeable(user):
    assert reasons("unseeable_input", user, "Some answer.") == []


# --- copies_instruction -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "answer", "reason"),
    [
        ("Explain gravity in detail.", "Explain gravity in detail.", "answer repeats the instruction verbatim"),
        ("Explain gravity in detail.", "  explain   gravity in detail ", None),  # case differs: not verbatim, but 100% similar
        ("制定用户界面的设计计划。", "制定用户界面的设计计划。", "answer repeats the instruction verbatim"),
        (
            "Correct the grammar of this sentence.\n\nShe go to school every day.",
            "She go to school every day.",
            "answer repeats the input unchanged: 'She go to school every day.'",
        ),
        (
            "改正句子中的语法错误。\n\n她昨天去商店买了东西。",
            "她昨天去商店买了东西。",
            "answer repeats the input unchanged: '她昨天去商店买了东西。'",
        ),
        (
            "Write a long essay about the history of the Roman Empire and its fall.",
            "the history of the Roman Empire and its fall",
            "answer is copied from the instruction: all of it appears there (64% of the instruction)",
        ),
        (
            "创建一个 10 秒的村庄场景动画。",
            "创建了一个 10 秒的村庄场景动画。",
            "answer is 96% similar to the instruction (limit 80%): '创建了一个 10 秒的村庄场景动画。'",
        ),
        (
            "Set a reminder for tomorrow at 8am to call your mom.",
            "Reminder set for tomorrow at 8am to call your mom.",
            "answer is 86% similar to the instruction (limit 80%): 'Reminder set for tomorrow at 8am to call...'",
        ),
    ],
)
def test_copies_instruction(user, answer, reason):
    found = reasons("copies_instruction", user, answer)
    if reason is None:
        assert found == ["answer is 100% similar to the instruction (limit 80%): 'explain gravity in detail'"]
    else:
        assert found == [reason]


@pytest.mark.parametrize(
    ("user", "answer"),
    [
        ("2+2?", "4"),
        ("Name a nation in Asia that is landlocked.", "Nepal is a nation in Asia that is landlocked."),
        ("Find the median of the set of numbers {4, 10, 8, 11, 1}.", "The median of the set of numbers {4, 10, 8, 11, 1} is 8."),
        ("泰姬陵建于哪一年？", "泰姬陵建于 1632 年。"),
        ("Print the sentence in all capitals.\n\nThe cat sat on the mat.", "THE CAT SAT ON THE MAT."),
        ("Add punctuation to the sentence.\n\nI love to eat pizza", "I love to eat pizza!"),
        ("Identify the grammatically correct sentence.\n\nShe goes to school.", "She goes to school."),
        (
            "Delete the last sentence.\n\nThe sky is blue. The grass is green. The sun is hot.",
            "The sky is blue. The grass is green.",
        ),
    ],
)
def test_not_copies(user, answer):
    assert reasons("copies_instruction", user, answer) == []


# --- wrong_language ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "answer", "reason"),
    [
        (
            "Explain what photosynthesis is and why it matters.",
            "光合作用是植物利用光能把二氧化碳和水转化为有机物的过程。",
            "answer is in Chinese but the instruction is in English",
        ),
        (
            "请解释一下什么是光合作用以及它的重要性。",
            "Photosynthesis is the process by which plants make their food from light and water.",
            "answer is in English but the instruction is in Chinese",
        ),
        (
            "用中文解释一下什么是光合作用以及它的重要性。",  # asks for Chinese, gets English
            "Photosynthesis is the process by which plants make their food from light and water.",
            "answer is in English but the instruction is in Chinese",
        ),
    ],
)
def test_wrong_language(user, answer, reason):
    assert reasons("wrong_language", user, answer) == [reason]


@pytest.mark.parametrize(
    ("user", "answer", "task_type"),
    [
        ("把这句话翻译成英文：我爱你，因为你对我很好。", "I love you because you are good to me.", ""),
        ("Translate into Chinese: The weather is lovely today.", "今天天气很好。", ""),
        ("请解释一下什么是光合作用以及它的重要性。", "Photosynthesis is the process by which plants make their food.", "translation"),
        ("请解释一下什么是光合作用以及它的重要性。", "Photosynthesis is the process by which plants make their food.", "翻译"),
        ("Explain in Chinese what photosynthesis is and why it matters.", "光合作用是植物利用光能制造有机物的过程。", ""),
        ("请用英文介绍一下你最喜欢的城市和原因。", "My favourite city is Kyoto because of its temples and gardens.", ""),
        ("法国的首都是哪里？请简单回答。", "Paris", ""),  # too short to judge
        ("写一个 Python 函数，计算两个数的和并返回结果。", "```python\ndef add(a, b):\n    return a + b\n```", ""),
        ("改写下面的句子，使它更正式。\n\nThe kids were super happy about the trip.", "The children were delighted with the trip.", ""),
        ("推荐几家纽约的著名餐馆给我。", "Katz's Delicatessen, Peter Luger Steak House, Le Bernardin, Gramercy Tavern", ""),
        (
            "说出三首九十年代的流行歌曲。",
            "后街男孩的“I Want It That Way”、Natalie Imbruglia 的“Torn”和 Ricky Martin 的“Livin' la Vida Loca”。",
            "",
        ),
    ],
)
def test_not_wrong_language(user, answer, task_type):
    assert reasons("wrong_language", user, answer, task_type=task_type) == []
