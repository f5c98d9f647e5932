// The review desk: the conflict queue (j/k to move, Enter to open) and the adjudication page
// (a/r/e to decide, 1-9 to start from an annotator's correction, Ctrl+Enter to submit, n/p to
// move on). No inline scripts: the page's data comes from json_script elements. The decision form
// posts with htmx; this file only adds keys, the live diff, and the handling of 409/422 answers.
(() => {
  "use strict";

  const root = document.getElementById("review-app");
  if (!root) return;
  const kind = root.dataset.page;
  const page = JSON.parse(document.getElementById("review-page-state").textContent);
  const msg = page.messages || {};
  // Everything is looked up when needed and every listener sits on the document: htmx swaps parts
  // of the page (the next item, a history restore) and the handlers keep working.
  const dialog = () => document.getElementById("review-shortcuts");

  // ---------------------------------------------------------------------------------------
  // Shared helpers
  // ---------------------------------------------------------------------------------------

  const NOT_TEXT = new Set(["radio", "checkbox", "button", "submit", "reset", "hidden"]);
  function typing(el) {
    if (!el || el === document.body) return false;
    if (el.isContentEditable) return true;
    if (el.tagName === "TEXTAREA" || el.tagName === "SELECT") return true;
    return el.tagName === "INPUT" && !NOT_TEXT.has(el.type);
  }

  function toggleShortcuts() {
    const d = dialog();
    if (!d) return;
    if (d.open) d.close();
    else d.showModal();
  }
  const dialogOpen = () => { const d = dialog(); return Boolean(d && d.open); };

  function parseHTML(html) {
    const tpl = document.createElement("template");
    tpl.innerHTML = html;  // server-rendered and escaped; scripts in a template never run
    return tpl.content;
  }

  document.addEventListener("click", (ev) => {
    if (ev.target.closest && ev.target.closest("[data-action=shortcuts]")) { ev.preventDefault(); toggleShortcuts(); }
  });

  if (kind === "queue") queuePage();
  else adjudicationPage();

  // ---------------------------------------------------------------------------------------
  // The queue: j/k move through the rows, Enter opens, s starts with the first item
  // ---------------------------------------------------------------------------------------

  function queuePage() {
    const rows = () => Array.from(document.querySelectorAll("#queue-table tr[data-url]"));
    function currentIndex() {
      const active = document.activeElement;
      const row = active && active.closest ? active.closest("tr[data-url]") : null;
      const list = rows();
      if (row) return list.indexOf(row);
      return list.findIndex((r) => r.classList.contains("current"));
    }
    function select(index) {
      const list = rows();
      if (!list.length) return;
      const i = Math.max(0, Math.min(list.length - 1, index));
      list.forEach((r) => { r.classList.remove("current"); r.removeAttribute("aria-selected"); });
      list[i].classList.add("current");
      list[i].setAttribute("aria-selected", "true");
      const link = list[i].querySelector("a[data-open]");
      if (link) link.focus();
      list[i].scrollIntoView({ block: "nearest" });
    }

    document.addEventListener("keydown", (ev) => {
      if (ev.isComposing) return;
      if (dialogOpen()) {
        if (ev.key === "?") { ev.preventDefault(); dialog().close(); }
        return;
      }
      if (typing(ev.target) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
      const at = currentIndex();
      if (ev.key === "?") { ev.preventDefault(); toggleShortcuts(); return; }
      if (ev.key === "j" || ev.key === "ArrowDown") { ev.preventDefault(); select(at + 1); return; }
      if (ev.key === "k" || ev.key === "ArrowUp") { ev.preventDefault(); select(at < 0 ? 0 : at - 1); return; }
      if (ev.key === "Enter") {
        // A focused link opens itself; a highlighted row without focus opens here.
        if (ev.target.tagName === "A" || ev.target.tagName === "BUTTON") return;
        const list = rows();
        if (at >= 0 && list[at]) { ev.preventDefault(); window.location.assign(list[at].dataset.url); }
        return;
      }
      if (ev.key === "s") {
        const start = document.getElementById("start-reviewing");
        if (start) { ev.preventDefault(); window.location.assign(start.href); }
      }
    });
    // A click on a row (outside its link) highlights it.
    document.addEventListener("click", (ev) => {
      const row = ev.target.closest && ev.target.closest("tr[data-url]");
      if (row && !ev.target.closest("a")) select(rows().indexOf(row));
    });
  }

  // ---------------------------------------------------------------------------------------
  // The adjudication page
  // ---------------------------------------------------------------------------------------

  function adjudicationPage() {
    const banners = () => document.getElementById("review-banners");
    const norm = (text) => (text || "").replace(/\r\n?/g, "\n");
    const ws = () => document.getElementById("review-workspace");
    const form = () => document.getElementById("decision-form");
    const panel = () => document.getElementById("decision-panel");
    const field = (name) => { const f = form(); return f ? f.querySelector(`[name="${name}"]`) : null; };
    const state = () => {
      const el = ws();
      const script = el && document.getElementById(el.dataset.state);
      return script ? JSON.parse(script.textContent) : null;
    };
    const stashKey = (sample) => `sftdesk:review:${sample}`;
    let diffTimer = null;
    let leaveArmed = null;  // the key pressed once to leave typed text behind

    function banner(text) {
      const box = document.createElement("div");
      box.className = "banner error";
      box.setAttribute("role", "alert");
      const p = document.createElement("p");
      p.textContent = text;
      const close = document.createElement("button");
      close.type = "button";
      close.className = "link";
      close.textContent = msg.dismiss;
      close.addEventListener("click", () => box.remove());
      box.append(p, close);
      const b = banners();
      if (b) b.replaceChildren(box);
    }
    function clearBanner() { const b = banners(); if (b) b.replaceChildren(); }

    function setError(name, text) {
      const p = panel();
      const box = p && p.querySelector(`[data-field="${name}"]`);
      if (!box) return;
      box.classList.toggle("invalid", Boolean(text));
      const err = box.querySelector(`[data-error-for="${name}"]`);
      if (err) err.textContent = text || "";
    }

    function decision() {
      const checked = form() && form().querySelector("input[name=decision]:checked");
      return checked ? checked.value : "";
    }

    function openEditor(focus) {
      const editor = panel() && panel().querySelector("[data-editor]");
      const box = field("answer");
      if (!editor || !box) return;
      editor.open = true;
      if (focus) {
        box.focus();
        if (!box.dataset.visited) {  // the first time, the caret goes to the end of the answer
          box.dataset.visited = "1";
          box.setSelectionRange(box.value.length, box.value.length);
        }
      }
    }

    function choose(value, how) {
      const f = form();
      if (!f) return;
      const radio = f.querySelector(`input[name=decision][value="${value}"]`);
      if (!radio) return;
      radio.checked = true;
      setError("decision", "");
      if (value === "approve" && how.focus) {
        const submit = f.querySelector("[data-action=submit]");
        if (submit) submit.focus();
      } else if (value === "reject" && how.focus) {
        field("rationale").focus();
      } else if (value === "approve_edit") {
        openEditor(how.focus);
      }
    }

    function copyCorrection(n) {
      const s = state();
      const box = field("answer");
      if (!s || !box) return;
      let text;
      if (n === 0) text = s.current;
      else if (Object.prototype.hasOwnProperty.call(s.corrections, String(n))) text = s.corrections[String(n)];
      else {
        const none = Object.prototype.hasOwnProperty.call(s.usernames, String(n)) ? msg.no_correction : msg.no_annotator;
        banner(none.replace("%(n)s", String(n)));
        return;
      }
      clearBanner();
      box.value = text;
      choose(n === 0 ? "approve" : "approve_edit", { focus: false });
      openEditor(false);
      setError("answer", "");
      scheduleDiff(0);
    }

    function dirty() {
      const s = state();
      const rationale = field("rationale");
      const answer = field("answer");
      if (!s) return false;
      return Boolean((rationale && rationale.value.trim()) || (answer && norm(answer.value) !== norm(s.current)));
    }

    // Leaving the item with typed text asks for the same key twice.
    function leave(url, key) {
      if (!url) return false;
      if (dirty() && leaveArmed !== key) {
        leaveArmed = key;
        banner(msg.unsaved);
        return true;
      }
      window.location.assign(url);
      return true;
    }

    function scheduleDiff(delay) {
      clearTimeout(diffTimer);
      diffTimer = setTimeout(refreshDiff, delay === undefined ? 350 : delay);
    }
    async function refreshDiff() {
      const el = ws();
      const f = form();
      const box = field("answer");
      if (!el || !f || !box) return;
      const target = f.querySelector("[data-edit-diff]");
      const data = new FormData();
      data.append("csrfmiddlewaretoken", f.querySelector("[name=csrfmiddlewaretoken]").value);
      data.append("answer", box.value);
      const sent = box.value;
      try {
        const resp = await fetch(el.dataset.diffUrl, { method: "POST", body: data, credentials: "same-origin", headers: { "HX-Request": "true" } });
        if (!resp.ok || resp.redirected) return;
        const html = await resp.text();
        if (box.isConnected && box.value === sent && target.isConnected) target.replaceChildren(parseHTML(html));
      } catch (e) { /* the diff is only a view */ }
    }

    // The same checks as the server, before sending.
    function validate() {
      const value = decision();
      if (!value) {
        setError("decision", msg.need_decision);
        const radio = form().querySelector("input[name=decision]");
        if (radio) radio.focus();
        return false;
      }
      if ((value === "reject" || value === "approve_edit") && !field("rationale").value.trim()) {
        setError("rationale", msg.need_rationale);
        field("rationale").focus();
        return false;
      }
      return true;
    }

    function submit() {
      const f = form();
      if (!f || panel().hasAttribute("data-conflict")) return;
      if (!validate()) return;
      clearBanner();
      f.requestSubmit();
    }

    function restoreStash() {
      const s = state();
      if (!s) return;
      let saved = null;
      try { saved = JSON.parse(sessionStorage.getItem(stashKey(s.sample)) || "null"); } catch (e) { saved = null; }
      if (!saved) return;
      try { sessionStorage.removeItem(stashKey(s.sample)); } catch (e) { /* disabled */ }
      if (typeof saved.rationale === "string") field("rationale").value = saved.rationale;
      if (typeof saved.answer === "string") field("answer").value = saved.answer;
      if (saved.decision) choose(saved.decision, { focus: false });
      if (norm(field("answer").value) !== norm(s.current)) { openEditor(false); scheduleDiff(0); }
      const note = document.createElement("p");
      note.className = "notice";
      note.setAttribute("role", "status");
      note.textContent = msg.restored;
      panel().prepend(note);
    }

    function setUp() {
      const el = ws();
      if (!el) return;
      const s = state();
      if (s && s.title) document.title = s.title;
      el.querySelectorAll("[data-copy]").forEach((b) => { b.hidden = false; });
      leaveArmed = null;
      restoreStash();
    }

    // Typing in the answer makes the decision "approve with an edited answer" and refreshes the diff.
    document.addEventListener("input", (ev) => {
      const t = ev.target;
      if (!t.form || t.form !== form()) return;
      leaveArmed = null;
      if (t.name === "answer") {
        const s = state();
        if (s && norm(t.value) !== norm(s.current) && decision() !== "approve_edit") choose("approve_edit", { focus: false });
        setError("answer", "");
        scheduleDiff();
      } else if (t.name === "rationale") {
        setError("rationale", "");
      }
    });
    document.addEventListener("change", (ev) => {
      if (ev.target.name === "decision" && ev.target.form === form()) {
        setError("decision", "");
        if (ev.target.value === "approve_edit") openEditor(false);
      }
    });
    document.addEventListener("click", (ev) => {
      if (!ev.target.closest) return;
      const copy = ev.target.closest("[data-copy]");
      if (copy) { ev.preventDefault(); copyCorrection(Number(copy.dataset.copy)); return; }
      const reload = ev.target.closest("[data-action=reload]");
      if (reload) {
        // Keep what the reviewer typed across the reload (this tab only).
        const s = state();
        try {
          sessionStorage.setItem(stashKey(s.sample), JSON.stringify({
            decision: decision(), rationale: field("rationale").value, answer: field("answer").value,
          }));
        } catch (e) { /* disabled: the text stays on screen until the reload */ }
      }
    });

    // htmx: a conflict (409) or invalid input (422) re-renders the decision panel too.
    document.body.addEventListener("htmx:beforeSwap", (ev) => {
      const xhr = ev.detail.xhr;
      const asked = ev.detail.requestConfig && ev.detail.requestConfig.path;
      if (asked && xhr.responseURL && new URL(xhr.responseURL).pathname !== new URL(asked, window.location.href).pathname) {
        ev.detail.shouldSwap = false;  // redirected (to the login page): keep what is on screen
        banner(msg.logged_out);
        return;
      }
      const status = xhr.status;
      if (status === 409 || status === 422) {
        ev.detail.shouldSwap = true;
        ev.detail.isError = false;
      }
    });
    document.body.addEventListener("htmx:afterSwap", (ev) => {
      const target = ev.detail.target;
      if (target && target.id === "review-workspace") return;  // handled after settling
      const p = panel();
      if (!p) return;
      if (p.hasAttribute("data-conflict")) {
        const reload = p.querySelector("[data-action=reload]");
        if (reload) reload.focus();
      } else if (p.hasAttribute("data-errors")) {
        const bad = p.querySelector(".invalid");
        const input = bad && (bad.querySelector("textarea") || bad.querySelector("input:checked") || bad.querySelector("input"));
        if (bad && bad.dataset.field === "answer") openEditor(true);
        else if (input) input.focus();
      }
    });
    document.body.addEventListener("htmx:afterSettle", () => {
      const el = ws();
      if (!el || el.dataset.ready === "1") return;
      el.dataset.ready = "1";
      setUp();
      window.scrollTo(0, 0);
      el.focus({ preventScroll: true });
    });
    document.body.addEventListener("htmx:historyRestore", () => {
      const el = ws();
      if (!el) return;
      el.dataset.ready = "1";
      setUp();
    });
    document.body.addEventListener("htmx:sendError", () => banner(msg.offline));
    document.body.addEventListener("htmx:responseError", (ev) => {
      banner(msg.failed.replace("%(status)s", String(ev.detail.xhr.status)));
    });

    document.addEventListener("keydown", (ev) => {
      const target = ev.target;
      if (ev.isComposing) return;  // an input method is composing (Chinese, Japanese)
      if (dialogOpen()) {
        if (ev.key === "?") { ev.preventDefault(); dialog().close(); }
        return;  // Escape closes the dialog natively
      }
      if (!ws()) return;
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        submit();
        return;
      }
      if (ev.key === "Escape") {
        if (typing(target)) {
          ev.preventDefault();
          target.blur();
          ws().focus({ preventScroll: true });
        }
        return;
      }
      if (typing(target)) return;
      if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
      if (ev.key === "Enter" && target.name === "decision") {
        ev.preventDefault();  // no accidental submit from a radio: that takes Ctrl+Enter
        return;
      }
      if (ev.key === "?") { ev.preventDefault(); toggleShortcuts(); return; }
      if (ev.shiftKey) return;
      const key = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key;
      const el = ws();
      if (/^[1-9]$/.test(key)) { ev.preventDefault(); copyCorrection(Number(key)); return; }
      if (key === "a") { ev.preventDefault(); choose("approve", { focus: true }); return; }
      if (key === "r") { ev.preventDefault(); choose("reject", { focus: true }); return; }
      if (key === "e") { ev.preventDefault(); choose("approve_edit", { focus: true }); return; }
      if (key === "n" || key === "j") {
        ev.preventDefault();
        if (!leave(el.dataset.nextUrl, key)) banner(msg.no_next);
        return;
      }
      if (key === "p" || key === "k") {
        ev.preventDefault();
        if (!leave(el.dataset.prevUrl, key)) banner(msg.no_prev);
        return;
      }
      if (key === "g") { ev.preventDefault(); leave(el.dataset.queueUrl, key); }
    });

    // Closing the list puts the focus back on the item, unless a key moved it elsewhere since.
    document.addEventListener("close", (ev) => {
      if (ev.target !== dialog()) return;
      const active = document.activeElement;
      if (!active || active === document.body || ev.target.contains(active)) { const el = ws(); if (el) el.focus({ preventScroll: true }); }
    }, true);

    const first = ws();
    if (first) {
      first.dataset.ready = "1";
      setUp();
      const p = panel();
      if (p && p.hasAttribute("data-conflict")) {
        const reload = p.querySelector("[data-action=reload]");
        if (reload) reload.focus();
      } else if (p && p.hasAttribute("data-errors")) {
        const bad = p.querySelector(".invalid textarea, .invalid input");
        if (bad) bad.focus();
      } else {
        first.focus({ preventScroll: true });
      }
    }
  }
})();
