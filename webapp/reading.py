"""Reading aids for two long texts side by side: progress, an outline to jump, synchronised scroll.

Everything here runs in the browser: the server sends the two texts once (as before) and
never hears about a scroll. The page keeps, per side, the deepest point reached and the share
of the text that was actually on screen, and counts the seconds of active reading (page
visible, some scroll, key or pointer activity within the last :data:`arena.reading.IDLE_AFTER_S`
seconds, a battle shown). ``static/vote.js`` puts those numbers into the vote's last input as
JSON; the server parses and clamps them (``arena/reading.py``), so nothing here is trusted.

The outline lists the text's headings, or, for a text without enough of them, a marker every
few hundred words (:data:`arena.reading.OUTLINE_EVERY_WORDS`, more apart for very long texts).
Labels are built with ``textContent``: a heading a writer typed is shown as text, never as HTML.

``static/reading.js`` is one controller shared by both sides (``window.lwzReading``), created by
whichever side's panel loads first; each panel's data attributes carry the numbers above.
"""

from __future__ import annotations

from arena.reading import IDLE_AFTER_S, OUTLINE_EVERY_WORDS
from webapp.assets import static_text

TEXT_BOX_HEIGHT = "70vh"
"""How tall each side's text box is; a longer text scrolls inside it."""
MAX_MARKERS = 30
"""At most this many word markers per side; a very long text gets them further apart."""

PANEL_TEMPLATE = """
<div class="lwz-reading" data-side="__SIDE__" data-every="__EVERY__" data-max-markers="__MAX_MARKERS__"
     data-idle-s="__IDLE_S__">
  <div class="lwz-read-text" aria-live="off"></div>
  <div class="lwz-read-bar" title="Light: how far you reached. Dark: what was on screen."></div>
  <nav class="lwz-outline" aria-label="Outline"></nav>
</div>
"""

PANEL_CSS = """
.lwz-reading { font-size: 0.85rem; margin: 0 0 6px 0; }
.lwz-read-text { color: var(--body-text-color); opacity: 0.8; min-height: 1.2em; }
.lwz-read-bar { position: relative; height: 6px; background: var(--neutral-200); border-radius: 3px;
                margin: 3px 0 6px 0; overflow: hidden; }
.lwz-read-reach { position: absolute; left: 0; top: 0; height: 6px; background: var(--color-accent-soft); }
.lwz-read-seen { position: absolute; top: 0; height: 6px; background: var(--color-accent); }
.lwz-outline { display: flex; flex-wrap: wrap; gap: 4px; align-items: center; max-height: 5.4em; overflow-y: auto; }
.lwz-outline-title { color: var(--body-text-color-subdued); margin-right: 2px; }
.lwz-mark { border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 0 7px;
            background: var(--background-fill-secondary); cursor: pointer; font-size: 0.8rem; }
.lwz-mark:hover { border-color: var(--color-accent); }
.lwz-mark.lwz-seen { background: var(--color-accent-soft); }
"""


def vote_js(inputs: int) -> str:
    """``static/vote.js`` for a vote event with ``inputs`` inputs, the last being the reading report."""
    return static_text("vote.js").replace("__N__", str(inputs))


def sync_js() -> str:
    """``static/sync.js``: the synchronised-scroll checkbox, a browser-only event with no server call."""
    return static_text("sync.js")


def reading_panel(gr, side: str):
    """The progress line, bar and outline shown above one side's text (``side``: "a" or "b")."""
    template = (PANEL_TEMPLATE.replace("__SIDE__", side).replace("__EVERY__", str(OUTLINE_EVERY_WORDS))
                .replace("__MAX_MARKERS__", str(MAX_MARKERS)).replace("__IDLE_S__", str(IDLE_AFTER_S)))
    return gr.HTML(
        "", html_template=template, css_template=PANEL_CSS, elem_id=f"arena-reading-{side}",
        js_on_load=static_text("reading.js"), apply_default_css=False,
    )
