"""Pure rendering rules of the Write tab: escaping, plain-word endings, labels, downloads."""

import re

import pytest

from webapp.rendering import (
    Summary, download_texts, finish_words, progress_html, safe_markdown, slug, thinking_label,
)

PAYLOADS = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "[click me](javascript:alert(1))",
    "<javascript:alert(1)>",
    "![pixel](http://example.invalid/p.png)",
    "[ref]: javascript:alert(1)\n\n[ref]",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_safe_markdown_leaves_no_tag_link_or_entity(payload):
    out = safe_markdown(payload)
    assert "<" not in out
    assert "[" not in out.replace("\\[", "") and "]" not in out.replace("\\]", "")
    assert "&" not in out.replace("&amp;", "").replace("&lt;", "")
    assert not re.search(r"(?<!\\):", out)  # no scheme (javascript:, http://) can form either
    unescaped = out.replace("\\", "").replace("&lt;", "<").replace("&amp;", "&")
    assert unescaped == payload


def test_safe_markdown_keeps_formatting():
    text = "# Title\n\n**bold** and *it* — 5 < 6 & [x]\n- item\n1. first"
    out = safe_markdown(text)
    assert out.startswith("# Title") and "**bold**" in out and "- item" in out and "\n1. first" in out
    assert "5 &lt; 6 &amp; \\[x\\]" in out
    assert safe_markdown("see www.example.org or a@b.org: http://x") == "see www\\.example.org or a\\@b.org\\: http\\://x"
    assert safe_markdown("") == "" and safe_markdown(None) == ""


@pytest.mark.parametrize("status,reason,error,words", [
    ("complete", "stop", None, "the model finished the text"),
    ("truncated", "length", None, "stopped at the length limit"),
    ("complete", "target", None, "stopped at the target length"),
    ("truncated", None, None, "stopped at the length limit"),
    ("interrupted", "cancelled", None, "stopped by you"),
    ("interrupted", "process_died", None, "interrupted: the server stopped while writing"),
    ("interrupted", None, "connection reset by http://x/v1", "interrupted: connection reset by http://x/v1"),
    ("failed", None, "cannot reach the model server", "failed: cannot reach the model server"),
    ("streaming", None, None, "still writing"),
])
def test_finish_words(status, reason, error, words):
    assert finish_words(status, reason, error) == words


def test_progress_html_counts_and_caps_the_bar():
    assert "1,234 words" in progress_html(1234, None) and "progressbar" not in progress_html(1234, None)
    half = progress_html(1500, 3000)
    assert "1,500 / 3,000 words (50%)" in half and 'aria-valuenow="1500"' in half and "width:50.0%" in half
    over = progress_html(4500, 3000)
    assert "(150%)" in over and 'aria-valuenow="3000"' in over and "width:100.0%" in over


def test_thinking_labels():
    assert thinking_label("pending") == "Thinking · pending"
    assert thinking_label("thinking", 3.4) == "Thinking · 3 s"
    assert thinking_label("done", 12.25) == "Thinking · done in 12.2 s"
    assert "no plan" in thinking_label("none")
    with pytest.raises(ValueError):
        thinking_label("bogus")


def test_summary_in_plain_words():
    s = Summary(words=2400, target=3000, completion_tokens=3100, seconds=61.25, status="truncated",
                finish_reason="length", generation_id=7)
    assert s.markdown() == "#7 · **2,400 words** (80% of 3,000) · 3,100 tokens · 61.2 s · stopped at the length limit"
    bad = Summary(words=0, target=None, completion_tokens=None, seconds=None, status="failed",
                  finish_reason=None, error="<b>down</b>")
    assert bad.markdown() == "**0 words** · failed\\: &lt;b>down&lt;/b>"
    # Repetition beside the length: a text that reached its length by looping says so.
    looping = Summary(words=10077, target=10000, completion_tokens=12112, seconds=None, status="complete",
                      finish_reason="stop", generation_id=1, distinct4=0.035)
    assert looping.markdown() == ("#1 · **10,077 words** (101% of 10,000) · distinct-4 0.04 (**it repeats itself**) · "
                                  "12,112 tokens · the model finished the text")
    fluent = Summary(words=600, target=600, completion_tokens=800, seconds=None, status="complete",
                     finish_reason="stop", distinct4=0.97)
    assert "distinct-4 0.97 ·" in fluent.markdown() and "repeats" not in fluent.markdown()


def test_downloads_and_slug():
    texts = download_texts(request="Write <a> story\nin two lines", think="plan", answer="The text.\n",
                           model="m", generation_id=3)
    assert texts["txt"] == "The text.\n"
    assert "> Write <a> story\n> in two lines" in texts["md"] and "## Plan\n\nplan" in texts["md"]
    assert texts["md"].rstrip().endswith("The text.")
    assert "## Plan" not in download_texts(request="r", think=" ", answer="a", model="m", generation_id=1)["md"]
    assert slug("Write a 3,000-word story: <script>!") == "write-a-3-000-word-story-script"
    assert slug("???") == "writing" and len(slug("x" * 100)) == 40
