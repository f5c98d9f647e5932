"""Markdown from samples and guidelines, rendered safely: markdown-it with raw HTML off, then nh3."""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table").enable("strikethrough")


def _image_as_link(self, tokens, idx, options, env) -> str:
    """Images become links: opening a sample must not make the browser fetch from a server the
    dataset's author chose (that would tell them who read which sample, and when)."""
    token = tokens[idx]
    src = token.attrGet("src") or ""
    alt = self.renderInlineAsText(token.children or [], options, env) or src
    return f'<a href="{escapeHtml(src)}" class="image-link">[{escapeHtml(alt)}]</a>'


_md.add_render_rule("image", _image_as_link)

_TAGS = {
    "p", "br", "hr", "pre", "code", "blockquote", "ul", "ol", "li", "strong", "em", "del", "s", "a",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "span",
}
_ATTRIBUTES = {"a": {"href", "title", "class"}, "code": {"class"}, "th": {"align"}, "td": {"align"}}


def render_markdown(text: str) -> str:
    """HTML that is safe to insert: no scripts, no event handlers, no javascript: URLs."""
    html = _md.render(text or "")
    return nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
