"""The annotation page through its views: reserve, submit, skip, drafts, revisions, validation by
field, blindness (nobody sees another annotator's label, the sample's status or review outcome),
404 for what is not yours, the escaped diff, and bounded query counts."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from annotator import services
from annotator.models import Assignment, Label, Membership, Sample, Suggestion
from annotator.views.annotate import answer_diff
from tests.conftest import DatasetFactory, MembershipFactory, SampleFactory, UserFactory

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def ds(dataset):
    services.annotation_settings_set(actor=None, dataset=dataset, values={
        "overlap": 2, "extra_tags": ["too_long"], "extra_fields": [{"name": "preference", "choices": ["0", "1", "2"]}],
    })
    dataset.guidelines = "## Rules\nBe **strict**."
    dataset.save()
    return dataset


def _annotator(ds, name):
    user = UserFactory(username=name)
    MembershipFactory(user=user, dataset=ds, role=Membership.Role.ANNOTATOR)
    return user


@pytest.fixture
def ann1(ds):
    return _annotator(ds, "ann1")


@pytest.fixture
def ann2(ds):
    return _annotator(ds, "ann2")


def _sample(ds, answer="Paris is the capital.\nIt is on the Seine.", **kw):
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Capital of **France**?"},
        {"role": "assistant", "content": answer},
    ]
    return SampleFactory(dataset=ds, messages=messages, **kw)


def _values(sample, **over):
    data = {
        "accuracy": "4", "completeness": "5", "conciseness": "3", "difficulty": "medium", "verdict": "accept",
        "error_tags": [], "corrected_answer": sample.answer.replace("\n", "\r\n"), "comment": "", "time_spent_s": "12.5",
    }
    data.update(over)
    return data


def _errors(html: str) -> set[str]:
    """The fields a rendered rubric marks with a message."""
    return set(re.findall(r'data-error-for="([^"]+)">[^<]', html))


def _url(name, ds, *args):
    return reverse(f"annotator:{name}", args=[ds.slug, *args])


def _reserve(client, user, ds) -> Assignment:
    client.force_login(user)
    response = client.get(_url("annotate", ds))
    assert response.status_code == 200
    return response.context["assignment"]


# --- the page ----------------------------------------------------------------------------------

def test_pages_require_login(client, ds):
    for url in (_url("annotate", ds), _url("my_labels", ds), _url("annotate_preload", ds)):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), url


def test_annotate_reserves_a_sample_and_shows_every_turn_guidelines_and_rubric(client, ds, ann1):
    sample = _sample(ds)
    assignment = _reserve(client, ann1, ds)
    response = client.get(_url("annotate", ds))
    html = response.content.decode()

    assert assignment.sample_id == sample.pk and assignment.status == Assignment.Status.RESERVED
    assert response.context["assignment"].pk == assignment.pk  # a reload resumes the same reservation
    assert Assignment.objects.filter(annotator=ann1).count() == 1
    assert "You are terse." in html and "<strong>France</strong>" in html and "It is on the Seine." in html
    assert "<h2>Rules</h2>" in html and "<strong>strict</strong>" in html
    for name in ("accuracy", "completeness", "conciseness", "difficulty", "verdict", "extra.preference"):
        assert f'name="{name}"' in html, name
    for tag in ("factual_error", "hallucination", "wrong_label", "too_long"):
        assert f'name="error_tags" value="{tag}"' in html, tag
    assert html.count('data-kb-group data-field="accuracy" data-required') == 1
    assert 'data-kb-group data-field="difficulty" tabindex' in html  # not required by default
    assert 'name="time_spent_s"' in html and f'id="ws-state-{assignment.pk}"' in html
    assert f'<textarea id="answer-{assignment.pk}" name="corrected_answer"' in html
    assert "Paris is the capital.\nIt is on the Seine.</textarea>" in html  # prefilled with the original
    assert response.context["progress"] == {"done_today": 0, "done_total": 0, "remaining": 0}
    assert "js/annotate.js" in html and "onclick" not in html and "<script>" not in html


def test_done_page_when_nothing_is_left(client, ds, ann1):
    client.force_login(ann1)
    response = client.get(_url("annotate", ds))
    assert response.status_code == 200
    assert response.context["assignment"] is None
    assert 'id="annotate-done"' in response.content.decode()
    assert Assignment.objects.count() == 0


def test_a_sample_with_markup_is_rendered_inert(client, ds, ann1):
    _sample(ds, answer='Look <img src=x onerror=alert(1)> <script>alert("x")</script>')
    _reserve(client, ann1, ds)
    html = client.get(_url("annotate", ds)).content.decode()
    assert "<img src=x" not in html and '<script>alert("x")' not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_submit_saves_the_label_and_moves_on(client, ds, ann1):
    sample = _sample(ds)
    other = _sample(ds, answer="Other answer.")
    assignment = _reserve(client, ann1, ds)
    response = client.post(_url("annotate_submit", ds, assignment.pk),
                           _values(sample, error_tags=["too_long"], **{"extra.preference": "2"}, comment="fine\r\nreally"))

    assert response.status_code == 302 and response["Location"] == _url("annotate", ds)
    label = Label.objects.get()
    assert (label.accuracy, label.completeness, label.conciseness, label.difficulty, label.verdict) == (4, 5, 3, "medium", "accept")
    assert label.error_tags == ["too_long"] and label.extra == {"preference": "2"} and label.comment == "fine\nreally"
    assert label.corrected_answer == ""  # CRLF from the browser is no correction
    assert label.time_spent_s == 12.5 and label.version == 1 and label.source == Label.Source.UI
    assert label.annotator == ann1 and label.sample == sample
    assignment.refresh_from_db()
    sample.refresh_from_db()
    assert assignment.status == Assignment.Status.SUBMITTED
    assert (sample.label_count, sample.status) == (1, Sample.Status.ANNOTATING)
    follow = client.get(response["Location"])
    assert follow.context["assignment"].sample_id == other.pk


def test_submit_in_the_background_answers_with_fresh_progress(client, ds, ann1):
    sample = _sample(ds)
    assignment = _reserve(client, ann1, ds)
    response = client.post(_url("annotate_submit", ds, assignment.pk), _values(sample), **HX)
    assert response.status_code == 200
    assert response.content.decode().strip().startswith('<div id="annotate-progress"')
    html = response.content.decode()
    assert 'data-progress="today">1<' in html and 'data-progress="total">1<' in html


def test_validation_errors_name_each_field(client, ds, ann1):
    sample = _sample(ds)
    assignment = _reserve(client, ann1, ds)
    url = _url("annotate_submit", ds, assignment.pk)
    bad = _values(sample, accuracy="", completeness="9", verdict="", error_tags=["nonsense"], **{"extra.preference": "7"})

    response = client.post(url, bad, **HX)
    assert response.status_code == 422
    html = response.content.decode()
    assert _errors(html) == {"accuracy", "completeness", "verdict", "error_tags", "extra.preference"}
    assert html.strip().startswith('<div class="rubric"')
    assert '<p class="field-error" data-error-for="accuracy">required by this dataset</p>' in html
    assert "expected a whole number from 1 to 5" in html and "unknown tag" in html and "expected one of 0, 1, 2" in html
    assert 'value="3" checked' in html  # what was sent comes back (conciseness)

    full = client.post(url, bad)  # without JavaScript: the whole page, with the same messages
    assert full.status_code == 200 and "required by this dataset" in full.content.decode()
    assert Label.objects.count() == 0
    assignment.refresh_from_db()
    assert assignment.status == Assignment.Status.RESERVED


def test_needs_fix_without_a_correction_is_refused(client, ds, ann1):
    sample = _sample(ds)
    assignment = _reserve(client, ann1, ds)
    url = _url("annotate_submit", ds, assignment.pk)
    response = client.post(url, _values(sample, verdict="needs_fix"), **HX)
    assert response.status_code == 422
    assert _errors(response.content.decode()) == {"corrected_answer"}
    assert Label.objects.count() == 0

    fixed = sample.answer + "\nIt has 2.1 million people."
    assert client.post(url, _values(sample, verdict="needs_fix", corrected_answer=fixed.replace("\n", "\r\n")), **HX).status_code == 200
    assert Label.objects.get().corrected_answer == fixed


def test_skip_needs_a_reason_and_gives_the_sample_back(client, ds, ann1):
    first, second = _sample(ds), _sample(ds, answer="B")
    assignment = _reserve(client, ann1, ds)
    url = _url("annotate_skip", ds, assignment.pk)

    assert client.post(url, {"reason_text": "  "}, **HX).status_code == 422
    assignment.refresh_from_db()
    assert assignment.status == Assignment.Status.RESERVED

    response = client.post(url, {"reason": "outside_expertise"})
    assert response.status_code == 302 and response["Location"] == _url("annotate", ds)
    assignment.refresh_from_db()
    assert (assignment.status, assignment.skip_reason) == (Assignment.Status.SKIPPED, "Outside my expertise")
    assert client.get(_url("annotate", ds)).context["assignment"].sample_id == second.pk
    assert Label.objects.count() == 0
    first.refresh_from_db()
    assert first.label_count == 0

    nxt = Assignment.objects.get(sample=second, annotator=ann1)
    assert client.post(_url("annotate_skip", ds, nxt.pk), {"reason_text": "no idea"}, **HX).status_code == 200
    nxt.refresh_from_db()
    assert nxt.skip_reason == "no idea"


def test_draft_autosaves_and_prefills_the_page(client, ds, ann1):
    sample = _sample(ds)
    assignment = _reserve(client, ann1, ds)
    response = client.post(_url("annotate_draft", ds, assignment.pk),
                           _values(sample, accuracy="2", verdict="", comment="half done", completeness=""), **HX)
    assert response.status_code == 204
    assignment.refresh_from_db()
    assert assignment.draft["accuracy"] == "2" and assignment.draft["comment"] == "half done"
    assert assignment.status == Assignment.Status.RESERVED and Label.objects.count() == 0

    page = client.get(_url("annotate_assignment", ds, assignment.pk))
    html = page.content.decode()
    assert page.context["source"] == "draft"
    assert page.context["values"]["accuracy"] == "2" and page.context["values"]["completeness"] == ""
    assert ">half done</textarea>" in html


def test_revise_adds_a_version_and_lists_the_earlier_ones(client, ds, ann1):
    sample = _sample(ds)
    assignment = _reserve(client, ann1, ds)
    url = _url("annotate_submit", ds, assignment.pk)
    client.post(url, _values(sample, comment="first take"))

    page = client.get(_url("annotate_assignment", ds, assignment.pk))
    assert page.context["mode"] == "revise" and page.context["values"]["comment"] == "first take"
    assert "version 1" in page.content.decode()

    response = client.post(url, _values(sample, accuracy="2", comment="second take"))
    assert response.status_code == 302 and response["Location"] == _url("annotate_assignment", ds, assignment.pk)
    page = client.get(response["Location"])
    html = page.content.decode()
    assert page.context["label"].version == 2 and page.context["values"]["accuracy"] == "2"
    assert "version 2" in html and "1 earlier version" in html and "first take" in html
    assert list(Label.objects.order_by("version").values_list("version", "is_current")) == [(1, False), (2, True)]
    sample.refresh_from_db()
    assert sample.label_count == 1


def test_a_reviewed_sample_is_read_only_and_its_outcome_is_never_shown(client, ds, ann1):
    sample = _sample(ds)
    assignment = _reserve(client, ann1, ds)
    client.post(_url("annotate_submit", ds, assignment.pk), _values(sample))
    Sample.objects.filter(pk=sample.pk).update(status=Sample.Status.APPROVED)

    html = client.get(_url("annotate_assignment", ds, assignment.pk)).content.decode()
    assert "can no longer be changed" in html
    assert '<fieldset class="rubric-fields" disabled>' in html and 'data-action="submit"' not in html
    assert "pproved" not in html and "ejected" not in html and "review outcome" not in html

    url = _url("annotate_submit", ds, assignment.pk)
    assert client.post(url, _values(sample, accuracy="1"), **HX).status_code == 409
    response = client.post(url, _values(sample, accuracy="1"))
    assert response.status_code == 302 and response["Location"] == _url("annotate_assignment", ds, assignment.pk)
    assert Label.objects.count() == 1
    labels_html = client.get(_url("my_labels", ds)).content.decode()
    assert "pproved" not in labels_html


def test_the_page_never_shows_status_flags_or_gold(client, ds, ann1):
    sample = _sample(ds, flag_count=3)
    Sample.objects.filter(pk=sample.pk).update(status=Sample.Status.ANNOTATING, label_count=1)
    client.force_login(ann1)
    response = client.get(_url("annotate", ds))
    html = response.content.decode()
    assert response.context["assignment"].sample_id == sample.pk
    assert "Annotating" not in html and "annotating" not in html and "flag" not in html.lower() and "gold" not in html.lower()


def test_a_second_annotator_never_sees_the_first_ones_label(client, ds, ann1, ann2):
    sample = _sample(ds)
    first = _reserve(client, ann1, ds)
    client.post(_url("annotate_draft", ds, first.pk), _values(sample, comment="ann1 draft secret"))
    client.post(_url("annotate_submit", ds, first.pk), _values(
        sample, verdict="needs_fix", accuracy="1", corrected_answer="ANN1 SECRET FIX", comment="ann1 comment secret"))

    client.force_login(ann2)
    urls = [
        ("get", _url("annotate_assignment", ds, first.pk), {}),
        ("post", _url("annotate_submit", ds, first.pk), _values(sample)),
        ("post", _url("annotate_skip", ds, first.pk), {"reason": "broken"}),
        ("post", _url("annotate_draft", ds, first.pk), _values(sample)),
        ("post", _url("annotate_diff", ds), {"assignment": first.pk, "corrected_answer": "x"}),
    ]
    for method, url, data in urls:
        assert getattr(client, method)(url, data).status_code == 404, url

    response = client.get(_url("annotate", ds))
    second = response.context["assignment"]
    assert second.sample_id == sample.pk and second.annotator == ann2
    pages = [response, client.get(_url("annotate_assignment", ds, second.pk)), client.get(_url("my_labels", ds)),
             client.get(_url("annotate_preload", ds), {"exclude": second.pk})]
    for page in pages:
        html = page.content.decode()
        assert "SECRET" not in html and "secret" not in html, page.request["PATH_INFO"]
    assert response.context["values"]["accuracy"] == "" and response.context["values"]["verdict"] == ""
    assert response.context["source"] == "blank"
    assert Label.objects.filter(annotator=ann1).count() == 1 and Label.objects.filter(annotator=ann2).count() == 0
    first.refresh_from_db()
    assert first.status == Assignment.Status.SUBMITTED


def test_a_non_member_gets_404_everywhere(client, ds, ann1, outsider):
    sample = _sample(ds)
    assignment = _reserve(client, ann1, ds)
    client.force_login(outsider)
    gets = [_url("annotate", ds), _url("annotate_assignment", ds, assignment.pk), _url("annotate_preload", ds), _url("my_labels", ds)]
    posts = [_url("annotate_submit", ds, assignment.pk), _url("annotate_skip", ds, assignment.pk),
             _url("annotate_draft", ds, assignment.pk), _url("annotate_diff", ds)]
    for url in gets:
        assert client.get(url).status_code == 404, url
    for url in posts:
        assert client.post(url, {**_values(sample), "assignment": assignment.pk, "reason": "broken"}).status_code == 404, url
    assert Assignment.objects.filter(annotator=outsider).count() == 0 and Label.objects.count() == 0


def test_an_assignment_of_another_dataset_is_404(client, ds, ann1):
    other = DatasetFactory()
    MembershipFactory(user=ann1, dataset=other, role=Membership.Role.ANNOTATOR)
    _sample(other)
    foreign = _reserve(client, ann1, other)
    assert client.get(_url("annotate_assignment", ds, foreign.pk)).status_code == 404


# --- preloading, suggestions, my labels ----------------------------------------------------------

def test_preload_reserves_the_next_one_as_a_fragment(client, ds, ann1):
    _sample(ds), _sample(ds, answer="B")
    current = _reserve(client, ann1, ds)
    response = client.get(_url("annotate_preload", ds), {"exclude": [current.pk]}, **HX)
    html = response.content.decode()
    nxt = Assignment.objects.get(annotator=ann1, status=Assignment.Status.RESERVED, pk__gt=current.pk)
    assert response.status_code == 200 and f'data-assignment="{nxt.pk}"' in html
    assert html.strip().startswith(f'<section class="workspace" id="ws-{nxt.pk}"') and "<html" not in html
    assert client.get(_url("annotate_preload", ds), {"exclude": [current.pk, nxt.pk]}).status_code == 204
    assert client.get(_url("annotate", ds)).context["assignment"].pk == current.pk  # the oldest held first


def test_a_model_suggestion_prefills_and_is_marked(client, ds, ann1):
    sample = _sample(ds)
    Suggestion.objects.create(sample=sample, values={"accuracy": 2, "verdict": "reject", "error_tags": ["hallucination"]},
                              model_name="judge-7b")
    _reserve(client, ann1, ds)
    response = client.get(_url("annotate", ds))
    html = response.content.decode()
    assert "Prefilled with values suggested by judge-7b" in html
    assert response.context["values"]["accuracy"] == "2" and response.context["values"]["verdict"] == "reject"
    assert html.count('<span class="badge suggestion">suggested</span>') >= 3
    assert 'value="hallucination" checked' in html


def test_my_labels_lists_only_my_current_labels(client, ds, ann1, ann2, django_assert_max_num_queries):
    samples = [_sample(ds, answer=f"A{i}") for i in range(6)]
    for user in (ann1, ann2):
        client.force_login(user)
        for _ in range(3):
            a = client.get(_url("annotate", ds)).context["assignment"]
            client.post(_url("annotate_submit", ds, a.pk), _values(a.sample, comment=f"by {user.username}"))
    client.force_login(ann1)
    with django_assert_max_num_queries(8):
        response = client.get(_url("my_labels", ds))
    rows = response.context["rows"]
    assert len(rows) == 3 and {r["label"].annotator_id for r in rows} == {ann1.pk}
    html = response.content.decode()
    assert "by ann2" not in html and samples[0].external_id in html
    assert _url("annotate_assignment", ds, rows[0]["label"].assignment_id) in html


# --- the diff ----------------------------------------------------------------------------------------

def test_the_diff_escapes_html_and_marks_words():
    diff = answer_diff("The quick fox.", 'The slow fox <img src=x onerror=alert(1)>.')
    assert str(diff.html) == 'The <del>quick</del><ins>slow</ins> fox<ins> &lt;img src=x onerror=alert(1)&gt;</ins>.'
    assert diff.changed and not answer_diff("same\r\n", "same\n").changed


def test_the_diff_is_by_character_for_cjk():
    assert str(answer_diff("今天天气很好", "今天天气不好").html) == "今天天气<del>很</del><ins>不</ins>好"


def test_the_diff_endpoint_escapes(client, ds, ann1):
    sample = _sample(ds, answer="<b>bold</b> claim")
    assignment = _reserve(client, ann1, ds)
    response = client.post(_url("annotate_diff", ds), {"assignment": assignment.pk, "corrected_answer": "<b>bold</b> <script>x</script>"})
    html = response.content.decode()
    assert response.status_code == 200 and "<script>" not in html and "<b>" not in html
    assert "&lt;b&gt;bold&lt;/b&gt; <del>claim</del><ins>&lt;script&gt;x&lt;/script&gt;</ins>" in html
    assert sample.answer == "<b>bold</b> claim"


def test_odd_ids_in_the_query_are_ignored_not_a_crash(client, ds, ann1):
    _sample(ds)
    current = _reserve(client, ann1, ds)
    assert client.get(_url("annotate_preload", ds), {"exclude": ["²", "9" * 40, current.pk]}).status_code in (200, 204)
    assert client.post(_url("annotate_diff", ds), {"assignment": "²", "corrected_answer": "x"}).status_code in (400, 404)


# --- query counts --------------------------------------------------------------------------------------

def test_the_annotate_page_and_submit_use_a_bounded_number_of_queries(client, ds, ann1, django_assert_max_num_queries):
    long_chat = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}"} for i in range(40)]
    samples = [SampleFactory(dataset=ds, messages=long_chat[: 10 + i]) for i in range(3)]
    for s in samples:
        Suggestion.objects.create(sample=s, values={"accuracy": 3}, model_name="m")
    client.force_login(ann1)
    with django_assert_max_num_queries(17):  # reserving included
        response = client.get(_url("annotate", ds))
    assignment = response.context["assignment"]
    with django_assert_max_num_queries(12):
        client.get(_url("annotate", ds))  # resume
    with django_assert_max_num_queries(17):
        assert client.post(_url("annotate_submit", ds, assignment.pk), _values(assignment.sample), **HX).status_code == 200
    for _ in range(2):  # revising: versions listed without a query each
        client.post(_url("annotate_submit", ds, assignment.pk), _values(assignment.sample, accuracy="1"))
    with django_assert_max_num_queries(8):
        client.get(_url("annotate_assignment", ds, assignment.pk))
