// The Arena's reading aids, one controller shared by both sides (window.lwzReading).
// Runs as each reading panel's js_on_load (webapp/reading.py), where `element` is the panel:
// the first panel creates the controller, every panel attaches its side (data-side).
if (!window.lwzReading) window.lwzReading = (() => {
  // Set from the first panel's data attributes (see attach): the server owns these numbers.
  let EVERY = 300, MAX_MARKERS = 30, IDLE_MS = 60000;
  const BOX = {a: "arena-text-a", b: "arena-text-b"}, OTHER = {a: "b", b: "a"};
  const WORD = /[\u3400-\u9fff\uf900-\ufaff]|[^\s\u3400-\u9fff\uf900-\ufaff]+/g;
  const R = {sync: false, panels: {}, sides: {}, battle: null, active: 0,
             lastInput: performance.now(), lastTick: performance.now()};
  const fresh = () => ({read: 0, seen: [], sig: "", words: 0, outline: [], at: [], expect: null, frame: 0});
  R.sides.a = fresh(); R.sides.b = fresh();
  const box = (side) => document.getElementById(BOX[side]);
  const battleId = () => Number(document.querySelector("#arena-battle-id input")?.value || 0);
  const hasText = (el) => !!el && el.textContent.trim().length > 0;
  const pct = (x) => Math.round(100 * x) + "%";

  function seenShare(list) { return list.reduce((sum, [s, e]) => sum + (e - s), 0); }
  function addSeen(state, start, end) {
    const merged = [];
    for (const [s, e] of [...state.seen, [start, end]].sort((x, y) => x[0] - y[0])) {
      const last = merged[merged.length - 1];
      if (last && s <= last[1]) last[1] = Math.max(last[1], e); else merged.push([s, e]);
    }
    state.seen = merged;
  }
  // What part of the side's text is on screen now (inside its box and inside the window).
  function measure(side) {
    const el = box(side), state = R.sides[side];  // words: counted when the text last changed
    if (!el || !state.words || document.visibilityState !== "visible") return;
    const rect = el.getBoundingClientRect(), height = el.scrollHeight;
    const top = Math.max(rect.top, 0), bottom = Math.min(rect.bottom, window.innerHeight);
    if (height <= 0 || bottom <= top) return;
    const start = (el.scrollTop + top - rect.top) / height;
    const end = Math.min(1, (el.scrollTop + bottom - rect.top) / height);
    addSeen(state, Math.max(0, start), end);
    state.read = Math.max(state.read, end);
  }
  function countWords(el) { return (el.innerText.match(WORD) || []).length; }
  // Headings when the text has at least two, else a marker every few hundred words.
  function buildOutline(side) {
    const el = box(side), state = R.sides[side], entries = [];
    state.words = hasText(el) ? countWords(el) : 0;
    if (state.words) {
      const headings = [...el.querySelectorAll("h1, h2, h3, h4")];
      if (headings.length >= 2) {
        for (const h of headings) entries.push({label: h.textContent.trim().slice(0, 48) || "(heading)", el: h});
      } else {
        const every = Math.max(EVERY, Math.ceil(state.words / MAX_MARKERS / 100) * 100);
        const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
        let count = 0, next = every, node;
        entries.push({label: "Start", node: null});
        while ((node = walker.nextNode())) {
          for (const m of node.textContent.matchAll(WORD)) {
            count += 1;
            if (count === next) {
              entries.push({label: next.toLocaleString("en-US"), node, offset: m.index, word: next});
              next += every;
            }
          }
        }
      }
    }
    state.outline = entries;
    locate(side);
    render(side);
  }
  function offsetOf(side, entry) {
    const el = box(side), base = el.getBoundingClientRect().top - el.scrollTop;
    if (entry.el) return entry.el.getBoundingClientRect().top - base;
    if (!entry.node) return 0;
    const range = document.createRange();
    range.setStart(entry.node, entry.offset);
    range.setEnd(entry.node, Math.min(entry.offset + 1, entry.node.length));
    const rects = range.getClientRects();
    return rects.length ? rects[0].top - base : 0;
  }
  // Where each outline entry sits, as a share of the text's height (layout reads, once a second).
  function locate(side) {
    const state = R.sides[side], height = box(side)?.scrollHeight || 1;
    state.at = state.outline.map((entry) => offsetOf(side, entry) / height);
  }
  function jump(side, entry) {
    const el = box(side);
    el.scrollTo({top: Math.max(0, offsetOf(side, entry) - 8)});
  }
  function render(side) {
    const panel = R.panels[side];
    if (!panel) return;
    const state = R.sides[side], nav = panel.querySelector(".lwz-outline");
    nav.replaceChildren();
    if (state.outline.length) {
      const title = document.createElement("span");
      title.className = "lwz-outline-title";
      title.textContent = state.outline[0].el ? "Outline:" : "Jump to word:";
      nav.append(title);
    }
    state.outline.forEach((entry, i) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "lwz-mark";
      button.dataset.index = String(i);
      button.textContent = entry.label;
      button.title = entry.word ? "Jump to word " + entry.label : "Jump to " + entry.label;
      button.addEventListener("click", () => jump(side, entry));
      nav.append(button);
    });
    update(side);
  }
  // Progress text; a bar with the deepest point reached and the stretches seen; outline entries seen.
  function update(side) {
    const panel = R.panels[side];
    if (!panel) return;
    const state = R.sides[side], root = panel.querySelector(".lwz-reading");
    const text = panel.querySelector(".lwz-read-text"), bar = panel.querySelector(".lwz-read-bar");
    const seen = seenShare(state.seen);
    root.hidden = !state.words;  // nothing to show before a battle is loaded
    root.dataset.read = state.read.toFixed(4);
    root.dataset.seen = seen.toFixed(4);
    const reach = document.createElement("div");
    reach.className = "lwz-read-reach";
    reach.style.width = pct(state.read);
    const parts = state.seen.map(([start, end]) => {
      const part = document.createElement("div");
      part.className = "lwz-read-seen";
      part.style.left = pct(start);
      part.style.width = (100 * (end - start)).toFixed(2) + "%";
      return part;
    });
    bar.replaceChildren(reach, ...parts);
    text.textContent = state.words ? "Read to " + pct(state.read) + " · " + pct(seen) + " of " +
      state.words.toLocaleString("en-US") + " words on screen so far" : "";
    panel.querySelectorAll(".lwz-mark").forEach((button) => {
      const at = state.at[Number(button.dataset.index)] ?? -1;
      button.classList.toggle("lwz-seen", state.seen.some(([s, e]) => at >= s - 0.001 && at <= e));
    });
  }
  // A new battle starts the count again; a live battle keeps what was read while it streamed.
  function check() {
    const id = battleId();
    if (id !== R.battle) {
      if (!(R.battle === 0 && id !== 0)) {
        R.sides.a = fresh(); R.sides.b = fresh(); R.active = 0;
      }
      R.battle = id;
    }
    for (const side of ["a", "b"]) {
      const el = box(side), sig = el ? id + ":" + el.textContent.length : "";
      if (sig !== R.sides[side].sig) { R.sides[side].sig = sig; buildOutline(side); }
    }
  }
  function onScroll(event) {
    R.lastInput = performance.now();
    const side = Object.keys(BOX).find((s) => event.target === box(s));
    if (!side) { measure("a"); measure("b"); return; }
    const el = box(side), state = R.sides[side];
    const echo = state.expect !== null && Math.abs(el.scrollTop - state.expect) <= 1;
    state.expect = null;
    if (R.sync && !echo) {
      const other = box(OTHER[side]), range = el.scrollHeight - el.clientHeight;
      if (other && range > 0) {
        const target = Math.round((el.scrollTop / range) * (other.scrollHeight - other.clientHeight));
        if (Math.abs(other.scrollTop - target) > 1) { R.sides[OTHER[side]].expect = target; other.scrollTop = target; }
      }
    }
    measure(side);
    if (!state.frame) state.frame = requestAnimationFrame(() => { state.frame = 0; update(side); });
  }
  function tick() {
    const now = performance.now(), dt = Math.min(now - R.lastTick, 5000);
    R.lastTick = now;
    check();
    const shown = R.sides.a.words > 0 || R.sides.b.words > 0;
    if (shown && document.visibilityState === "visible" && now - R.lastInput < IDLE_MS) R.active += dt;
    for (const side of ["a", "b"]) { measure(side); locate(side); update(side); }
  }
  const touch = () => { R.lastInput = performance.now(); };
  for (const type of ["wheel", "keydown", "pointermove", "pointerdown", "touchstart"]) {
    document.addEventListener(type, touch, {passive: true, capture: true});
  }
  document.addEventListener("scroll", onScroll, {passive: true, capture: true});
  window.addEventListener("resize", () => { measure("a"); measure("b"); });
  setInterval(tick, 1000);
  return {
    attach(side, element) {
      const config = element.querySelector(".lwz-reading")?.dataset || {};
      EVERY = Number(config.every || EVERY);
      MAX_MARKERS = Number(config.maxMarkers || MAX_MARKERS);
      IDLE_MS = Number(config.idleS || IDLE_MS / 1000) * 1000;
      R.panels[side] = element; R.sides[side].sig = ""; check();
    },
    get sync() { return R.sync; },
    setSync(on) { R.sync = !!on; if (R.sync) { const el = box("a"); if (el) onScroll({target: el}); } },
    // The numbers sent with a vote (the server clamps them); sides without text are left out.
    report() {
      check();
      const out = {active_seconds: Math.round(R.active) / 1000};
      for (const [side, name] of [["a", "left"], ["b", "right"]]) {
        if (!R.sides[side].words) continue;
        measure(side);
        out["read_" + name] = Number(R.sides[side].read.toFixed(4));
        out["seen_" + name] = Number(seenShare(R.sides[side].seen).toFixed(4));
      }
      return JSON.stringify(out);
    },
  };
})();

if (typeof element !== "undefined") {
  window.lwzReading.attach(element.querySelector(".lwz-reading").dataset.side, element);
}
