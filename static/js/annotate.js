// The annotation page: keyboard-first labelling, the next sample preloaded, drafts kept on the
// server and in this browser. No inline scripts: the page's data comes from json_script elements.
(() => {
  "use strict";

  const app = document.getElementById("annotate-app");
  if (!app) return;
  const page = JSON.parse(document.getElementById("annotate-page-state").textContent);
  const msg = page.messages;
  // Drafts are compared in the server's clock, so a skewed client clock cannot pick the older one.
  const clockOffset = Date.now() - page.server_now_ms;
  const serverNow = () => Date.now() - clockOffset;
  const currentBox = document.getElementById("annotate-current");
  const nextBox = document.getElementById("annotate-next");
  const banners = document.getElementById("annotate-banners");
  const shortcuts = document.getElementById("annotate-shortcuts");

  const pending = new Set();  // submitted in the background, answer not back yet
  const refused = new Set();  // the server refused them: never preload them again on this page
  let ws = null;              // the workspace on screen
  let preloading = false;
  let noMore = false;

  // ---------------------------------------------------------------------------------------
  // Small helpers
  // ---------------------------------------------------------------------------------------

  const localKey = (id) => `sftdesk:draft:${page.user}:${id}`;
  function readLocal(id) {
    try { return JSON.parse(localStorage.getItem(localKey(id)) || "null"); } catch (e) { return null; }
  }
  function writeLocal(id, values) {
    try { localStorage.setItem(localKey(id), JSON.stringify({ saved_at: serverNow(), values })); } catch (e) { /* full or disabled */ }
  }
  function clearLocal(id) {
    try { localStorage.removeItem(localKey(id)); } catch (e) { /* disabled */ }
  }

  const norm = (text) => (text || "").replace(/\r\n?/g, "\n");
  const ok = (resp) => resp.ok && !resp.redirected;

  function post(url, data) {
    return fetch(url, { method: "POST", body: data, credentials: "same-origin", headers: { "HX-Request": "true" } });
  }

  function parseHTML(html) {
    const tpl = document.createElement("template");
    tpl.innerHTML = html;  // server-rendered, escaped; scripts in a template never run
    return tpl.content;
  }

  async function reasonOf(resp) {
    if (resp.redirected) return msg.logged_out;
    const text = await resp.text().catch(() => "");
    const doc = parseHTML(text);
    const parts = [];
    doc.querySelectorAll(".notice-text, [data-error-for]").forEach((el) => {
      const t = el.textContent.trim();
      if (!t) return;
      const field = el.dataset.errorFor;
      parts.push(field ? `${field}: ${t}` : t);
    });
    return parts.join(" ") || `HTTP ${resp.status}`;
  }

  function banner(text, link, linkText) {
    const box = document.createElement("div");
    box.className = "banner error";
    box.setAttribute("role", "alert");
    const p = document.createElement("p");
    p.textContent = text;
    box.append(p);
    if (link) {
      const a = document.createElement("a");
      a.href = link;
      a.className = "button";
      a.textContent = linkText;
      box.append(a);
    }
    const close = document.createElement("button");
    close.type = "button";
    close.className = "link";
    close.textContent = msg.dismiss;
    close.addEventListener("click", () => box.remove());
    box.append(close);
    banners.append(box);
  }

  function swapProgress(html) {
    const fresh = parseHTML(html).querySelector("#annotate-progress");
    const old = document.getElementById("annotate-progress");
    if (fresh && old) old.replaceWith(fresh);
  }

  // ---------------------------------------------------------------------------------------
  // One workspace: a sample with its rubric
  // ---------------------------------------------------------------------------------------

  function Workspace(el) {
    const self = this;
    this.el = el;
    this.id = Number(el.dataset.assignment);
    this.mode = el.dataset.mode;
    this.state = JSON.parse(document.getElementById(el.dataset.state).textContent);
    this.form = el.querySelector("form.label-form");
    this.skipForm = el.querySelector("form.skip-form");
    this.skipBox = el.querySelector("[data-skip]");
    this.editorBox = el.querySelector("[data-editor]");
    this.editor = el.querySelector("textarea[name=corrected_answer]");
    this.diffEl = el.querySelector("[data-diff]");
    this.urls = { page: el.dataset.pageUrl, submit: el.dataset.submitUrl, skip: el.dataset.skipUrl, draft: el.dataset.draftUrl, diff: el.dataset.diffUrl };
    this.saveTimer = null;
    this.diffTimer = null;
    this.lastGroup = null;
    this.busy = false;
    this.spentBase = Number(this.state.time_spent_s) || 0;
    this.since = null;

    this.onInput = (ev) => {
      if (ev.target.form !== self.form) return;
      const field = ev.target.closest("[data-field]");
      if (field) self.clearError(field);
      if (ev.target === self.editor && ev.type === "input") self.scheduleDiff();
      if (ev.target.name === "verdict") self.clearError(self.el.querySelector("[data-field=corrected_answer]"));
      self.scheduleSave();
    };
    this.onFocus = (ev) => {
      const group = ev.target.closest && ev.target.closest("[data-kb-group]");
      if (group && self.el.contains(group)) self.lastGroup = group;
    };
    this.onSubmit = (ev) => {
      ev.preventDefault();
      if (ev.target === self.skipForm) skipCurrent(ev.submitter);
      else submitCurrent();
    };
  }

  Workspace.prototype.groups = function () { return Array.from(this.el.querySelectorAll("[data-kb-group]")); };
  Workspace.prototype.rubric = function () { return this.el.querySelector("[data-rubric]"); };
  Workspace.prototype.field = function (name) { return this.el.querySelector(`[data-field="${CSS.escape(name)}"]`); };

  Workspace.prototype.bind = function () {
    this.el.addEventListener("input", this.onInput);
    this.el.addEventListener("change", this.onInput);
    this.el.addEventListener("focusin", this.onFocus);
    this.form.addEventListener("submit", this.onSubmit);
    if (this.skipForm) this.skipForm.addEventListener("submit", this.onSubmit);
    this.form.noValidate = true;  // the checks below replace the browser's bubbles
  };

  Workspace.prototype.activate = function () {
    this.bind();
    if (this.mode === "locked") {
      clearLocal(this.id);
    } else if (this.state.restore_local) {
      const local = readLocal(this.id);
      if (local && local.values && local.saved_at > this.state.base_ms) {
        this.apply(local.values);
        this.spentBase = Number(local.values.time_spent_s) || this.spentBase;
        const note = this.el.querySelector("[data-restored]");
        if (note) { note.textContent = msg.restored; note.hidden = false; }
        this.saveServerSoon();
        this.scheduleDiff(0);
      } else if (local) {
        clearLocal(this.id);  // older than what the server has
      }
    }
    this.since = document.hidden ? null : performance.now();
    history.replaceState(history.state, "", this.urls.page);
    const first = this.groups()[0];
    if (first) this.focusGroup(first);
  };

  Workspace.prototype.deactivate = function () {
    clearTimeout(this.saveTimer);
    clearTimeout(this.diffTimer);
    this.saveTimer = null;
    this.el.removeEventListener("input", this.onInput);
    this.el.removeEventListener("change", this.onInput);
    this.el.removeEventListener("focusin", this.onFocus);
  };

  // Time spent: counted while the page is visible.
  Workspace.prototype.spent = function () {
    return this.spentBase + (this.since === null ? 0 : (performance.now() - this.since) / 1000);
  };
  Workspace.prototype.pause = function () { this.spentBase = this.spent(); this.since = null; };
  Workspace.prototype.resume = function () { if (this.since === null) this.since = performance.now(); };
  Workspace.prototype.syncTime = function () {
    const input = this.el.querySelector("input[data-time]");
    if (input) input.value = this.spent().toFixed(1);
  };

  Workspace.prototype.collect = function () {
    this.syncTime();
    const data = new FormData(this.form);
    const values = { error_tags: data.getAll("error_tags"), extra: {} };
    for (const [key, value] of data.entries()) {
      if (key === "csrfmiddlewaretoken" || key === "error_tags") continue;
      if (key.startsWith("extra.")) values.extra[key.slice(6)] = value;
      else values[key] = value;
    }
    return values;
  };

  Workspace.prototype.apply = function (values) {
    const form = this.form;
    const setRadio = (name, value) => {
      form.querySelectorAll(`input[type=radio][name="${CSS.escape(name)}"]`).forEach((r) => { r.checked = String(value) === r.value; });
    };
    ["accuracy", "completeness", "conciseness", "difficulty", "verdict"].forEach((name) => {
      if (name in values) setRadio(name, values[name] ?? "");
    });
    Object.entries(values.extra || {}).forEach(([name, value]) => setRadio(`extra.${name}`, value));
    if (Array.isArray(values.error_tags)) {
      form.querySelectorAll("input[name=error_tags]").forEach((c) => { c.checked = values.error_tags.includes(c.value); });
    }
    if (typeof values.corrected_answer === "string" && values.corrected_answer !== "") this.editor.value = values.corrected_answer;
    const comment = form.querySelector("textarea[name=comment]");
    if (comment && typeof values.comment === "string") comment.value = values.comment;
    if (values.verdict === "needs_fix" || norm(this.editor.value).trim() !== norm(this.state.original).trim()) this.editorBox.open = true;
  };

  // Drafts: this browser at once, the server a second after the last change.
  Workspace.prototype.scheduleSave = function () {
    if (this.mode === "locked") return;
    writeLocal(this.id, this.collect());
    clearTimeout(this.saveTimer);
    this.saveTimer = setTimeout(() => this.saveServer(), 1000);
  };
  Workspace.prototype.saveServerSoon = function () {
    clearTimeout(this.saveTimer);
    this.saveTimer = setTimeout(() => this.saveServer(), 1000);
  };
  Workspace.prototype.saveServer = function () {
    this.saveTimer = null;
    this.syncTime();
    post(this.urls.draft, new FormData(this.form)).catch(() => { /* offline: the local draft stays */ });
  };
  Workspace.prototype.flushBeacon = function () {
    if (!this.saveTimer || !navigator.sendBeacon) return;
    clearTimeout(this.saveTimer);
    this.saveTimer = null;
    this.syncTime();
    navigator.sendBeacon(this.urls.draft, new FormData(this.form));
  };

  Workspace.prototype.scheduleDiff = function (delay) {
    clearTimeout(this.diffTimer);
    this.diffTimer = setTimeout(() => this.refreshDiff(), delay === undefined ? 350 : delay);
  };
  Workspace.prototype.refreshDiff = async function () {
    const data = new FormData();
    data.append("csrfmiddlewaretoken", this.form.querySelector("[name=csrfmiddlewaretoken]").value);
    data.append("assignment", String(this.id));
    data.append("corrected_answer", this.editor.value);
    const sent = this.editor.value;
    try {
      const resp = await post(this.urls.diff, data);
      if (!ok(resp)) return;
      const html = await resp.text();
      if (sent === this.editor.value && this.diffEl.isConnected) this.diffEl.replaceChildren(parseHTML(html));
    } catch (e) { /* the diff is only a view */ }
  };

  // Validation: the same rules the server applies.
  Workspace.prototype.clearError = function (field) {
    if (!field) return;
    field.classList.remove("invalid", "suggested");
    const err = field.querySelector("[data-error-for]");
    if (err) err.textContent = "";
  };
  Workspace.prototype.setError = function (field, text) {
    if (!field) return;
    field.classList.add("invalid");
    const err = field.querySelector("[data-error-for]");
    if (err) err.textContent = text;
  };
  Workspace.prototype.validate = function () {
    const values = this.collect();
    const missing = [];
    this.el.querySelectorAll("[data-field][data-required]").forEach((field) => {
      const name = field.dataset.field;
      const value = name === "error_tags" ? values.error_tags : name.startsWith("extra.") ? values.extra[name.slice(6)] : values[name];
      const empty = Array.isArray(value) ? value.length === 0 : !String(value || "").trim();
      if (empty) missing.push([field, msg.required]);
    });
    if (values.verdict === "needs_fix" && norm(values.corrected_answer).trim() === norm(this.state.original).trim()) {
      missing.push([this.field("corrected_answer"), msg.needs_fix]);
    }
    const summary = this.el.querySelector("[data-form-errors]");
    if (!missing.length) {
      if (summary) summary.hidden = true;
      return true;
    }
    missing.forEach(([field, text]) => this.setError(field, text));
    if (summary) summary.hidden = false;
    const [first] = missing[0];
    if (first.matches("[data-kb-group]")) this.focusGroup(first);
    else if (first.dataset.field === "corrected_answer") this.openEditor();
    else (first.querySelector("input, textarea") || first).focus();
    return false;
  };

  // Keyboard helpers
  Workspace.prototype.focusGroup = function (group) {
    this.lastGroup = group;
    group.focus({ preventScroll: false });
    group.scrollIntoView({ block: "nearest" });
  };
  Workspace.prototype.activeGroup = function () {
    const active = document.activeElement;
    const group = active && active.closest ? active.closest("[data-kb-group]") : null;
    return group && this.el.contains(group) ? group : null;
  };
  Workspace.prototype.choose = function (group, index) {
    const radios = group.querySelectorAll("input[type=radio]");
    if (index < 0 || index >= radios.length || radios[index].matches(":disabled")) return;
    radios[index].checked = true;
    radios[index].dispatchEvent(new Event("change", { bubbles: true }));
  };
  Workspace.prototype.step = function (group, delta) {
    const radios = Array.from(group.querySelectorAll("input[type=radio]"));
    const at = radios.findIndex((r) => r.checked);
    const next = at < 0 ? (delta > 0 ? 0 : radios.length - 1) : Math.min(radios.length - 1, Math.max(0, at + delta));
    this.choose(group, next);
  };
  Workspace.prototype.setVerdict = function (value) {
    const radio = this.form.querySelector(`input[name=verdict][value="${value}"]`);
    if (!radio || radio.matches(":disabled")) return;
    radio.checked = true;
    radio.dispatchEvent(new Event("change", { bubbles: true }));
    if (value === "needs_fix") this.editorBox.open = true;
  };
  Workspace.prototype.openEditor = function () {
    this.editorBox.open = true;
    this.editor.focus();
    if (!this.editorVisited) {  // the first time, the caret goes to the end of the answer
      this.editorVisited = true;
      this.editor.setSelectionRange(this.editor.value.length, this.editor.value.length);
    }
  };
  Workspace.prototype.backToGroups = function () {
    const group = this.lastGroup && this.el.contains(this.lastGroup) ? this.lastGroup : this.groups()[0];
    if (group) this.focusGroup(group);
    else if (document.activeElement) document.activeElement.blur();
  };
  Workspace.prototype.openSkip = function () {
    if (!this.skipBox) return;
    this.skipBox.open = true;
    this.skipBox.querySelector("input[name=reason_text]").focus();
  };

  // ---------------------------------------------------------------------------------------
  // Moving on: submit or skip, the preloaded sample swapped in at once
  // ---------------------------------------------------------------------------------------

  function preload() {
    if (noMore || preloading || nextBox.firstElementChild || !ws) return;
    preloading = true;
    const params = new URLSearchParams();
    [ws.id, ...pending, ...refused].forEach((id) => params.append("exclude", String(id)));
    fetch(`${page.preload_url}?${params}`, { credentials: "same-origin", headers: { "HX-Request": "true" } })
      .then(async (resp) => {
        if (resp.status === 204) { noMore = true; return; }
        if (!ok(resp)) return;
        const el = parseHTML(await resp.text()).querySelector(".workspace");
        const id = el ? Number(el.dataset.assignment) : null;
        if (!el || (ws && id === ws.id) || pending.has(id) || refused.has(id)) return;
        nextBox.replaceChildren(el);
      })
      .catch(() => { /* offline: submit in the foreground instead */ })
      .finally(() => { preloading = false; });
  }

  function showNext() {
    const el = nextBox.firstElementChild;
    nextBox.replaceChildren();
    currentBox.replaceChildren(el);
    ws = new Workspace(el);
    window.scrollTo(0, 0);
    ws.activate();
    preload();
  }

  // Swap in the preloaded sample and send `old`'s answer behind it. `old` counts as pending
  // before the next preload asks for more, so the server is never asked to hand it out again.
  function advance(old, url, data, failText) {
    pending.add(old.id);
    showNext();
    post(url, data).then(async (resp) => {
      pending.delete(old.id);
      if (ok(resp)) {
        clearLocal(old.id);
        swapProgress(await resp.text());
        return;
      }
      refused.add(old.id);
      banner(`${failText} ${await reasonOf(resp)}`, old.urls.page, msg.open_again);
    }, () => {
      pending.delete(old.id);
      refused.add(old.id);
      banner(`${failText} ${msg.offline}`, old.urls.page, msg.open_again);
    });
  }

  const named = (text, old) => text.replace("%(sample)s", old.state.external_id);

  async function submitCurrent() {
    if (!ws || ws.mode === "locked" || ws.busy) return;
    if (!ws.validate()) return;
    ws.syncTime();
    const old = ws;
    const data = new FormData(old.form);
    old.deactivate();
    if (old.mode === "label" && nextBox.firstElementChild) {
      advance(old, old.urls.submit, data, named(msg.not_saved, old));
      return;
    }
    await foreground(old, old.urls.submit, data, old.mode === "revise" ? old.urls.page : page.annotate_url);
  }

  async function skipCurrent(submitter) {
    if (!ws || ws.mode !== "label" || ws.busy || !ws.skipForm) return;
    const data = new FormData(ws.skipForm, submitter && submitter.name === "reason" ? submitter : null);
    const reasonBox = ws.skipBox.querySelector("[data-error-for=reason_text]");
    if (!data.get("reason") && !String(data.get("reason_text") || "").trim()) {
      reasonBox.textContent = msg.skip_reason;
      ws.openSkip();
      return;
    }
    reasonBox.textContent = "";
    const old = ws;
    old.deactivate();
    if (nextBox.firstElementChild) {
      advance(old, old.urls.skip, data, named(msg.skip_not_saved, old));
      return;
    }
    await foreground(old, old.urls.skip, data, page.annotate_url);
  }

  async function foreground(old, url, data, then) {
    old.busy = true;
    const button = old.el.querySelector("[data-action=submit]");
    if (button) button.disabled = true;
    let resp;
    try {
      resp = await post(url, data);
    } catch (e) {
      old.busy = false;
      if (button) button.disabled = false;
      old.bind();
      banner(msg.offline);
      return;
    }
    if (ok(resp)) {
      clearLocal(old.id);
      window.location.assign(then);
      return;
    }
    old.busy = false;
    if (button) button.disabled = false;
    if (resp.status === 422 && url === old.urls.submit) {
      const fresh = parseHTML(await resp.text()).querySelector("[data-rubric]");
      if (fresh) old.rubric().replaceWith(fresh);
      old.bind();
      const err = fresh && fresh.querySelector("[data-error-for=corrected_answer]");
      if (err) old.setError(old.field("corrected_answer"), err.textContent);
      const bad = old.el.querySelector("[data-kb-group].invalid");
      if (bad) old.focusGroup(bad);
      return;
    }
    const text = await reasonOf(resp);
    old.bind();
    banner(text, resp.redirected ? null : page.annotate_url, msg.open_again);
  }

  // ---------------------------------------------------------------------------------------
  // Keys
  // ---------------------------------------------------------------------------------------

  const TEXT_INPUTS = new Set(["radio", "checkbox", "button", "submit", "reset", "hidden"]);
  function typing(el) {
    if (!el || el === document.body) return false;
    if (el.isContentEditable) return true;
    if (el.tagName === "TEXTAREA" || el.tagName === "SELECT") return true;
    return el.tagName === "INPUT" && !TEXT_INPUTS.has(el.type);
  }

  function toggleShortcuts() {
    if (shortcuts.open) shortcuts.close();
    else shortcuts.showModal();
  }

  document.addEventListener("keydown", (ev) => {
    const target = ev.target;
    if (ev.isComposing) return;  // an input method is composing (Chinese, Japanese)
    if (shortcuts.open) {
      if (ev.key === "?") { ev.preventDefault(); shortcuts.close(); }
      return;  // Escape closes the dialog natively
    }
    if (!ws) {
      if (ev.key === "?" && !typing(target)) { ev.preventDefault(); toggleShortcuts(); }
      return;
    }
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      if (ws.skipForm && target.form === ws.skipForm) skipCurrent(null);
      else submitCurrent();
      return;
    }
    if (ev.key === "Escape") {
      if (ws.skipBox && ws.skipBox.open) {
        ev.preventDefault();
        ws.skipBox.open = false;
        ws.backToGroups();
      } else if (typing(target)) {
        ev.preventDefault();
        ws.backToGroups();
      }
      return;
    }
    if (typing(target)) return;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "Enter") {
      // No accidental submit from a focused radio or checkbox: submitting takes Ctrl+Enter.
      if (target.form === ws.form && target.tagName === "INPUT") ev.preventDefault();
      return;
    }
    const group = ws.activeGroup();
    if (ev.key === "Tab") {
      const groups = ws.groups();
      const onBody = target === document.body || target === document.documentElement;
      if (!group && !onBody) return;
      const at = group ? groups.indexOf(group) : (ev.shiftKey ? groups.length : -1);
      const next = groups[at + (ev.shiftKey ? -1 : 1)];
      if (next) { ev.preventDefault(); ws.focusGroup(next); return; }
      if (!ev.shiftKey && group) {
        // Past the last scale: on to the verdict (not into the radios of the scale just left).
        const verdict = ws.field("verdict");
        const radio = verdict && (verdict.querySelector("input:checked") || verdict.querySelector("input"));
        if (radio) { ev.preventDefault(); radio.focus(); }
      }
      return;
    }
    if (/^[1-9]$/.test(ev.key)) {
      const into = group || (ws.lastGroup && ws.el.contains(ws.lastGroup) && ws.lastGroup);
      if (!into) return;
      ev.preventDefault();
      if (into !== group) ws.focusGroup(into);
      ws.choose(into, Number(ev.key) - 1);
      return;
    }
    if (group && ["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown"].includes(ev.key) && target === group) {
      ev.preventDefault();
      ws.step(group, ev.key === "ArrowLeft" || ev.key === "ArrowUp" ? -1 : 1);
      return;
    }
    const key = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key;
    if (ev.key === "?") { ev.preventDefault(); toggleShortcuts(); return; }
    if (ev.shiftKey) return;
    const verdicts = { a: "accept", f: "needs_fix", r: "reject" };
    if (key in verdicts) { ev.preventDefault(); ws.setVerdict(verdicts[key]); return; }
    if (key === "e") { ev.preventDefault(); ws.openEditor(); return; }
    if (key === "s" && ws.mode === "label") { ev.preventDefault(); ws.openSkip(); return; }
    if (key === "g") {
      const guidelines = ws.el.querySelector("[data-guidelines]");
      if (guidelines) { ev.preventDefault(); guidelines.open = !guidelines.open; }
    }
  });

  // Mouse: the shortcuts button; a click on a scale's choice highlights that scale.
  app.addEventListener("click", (ev) => {
    if (ev.target.closest("[data-action=shortcuts]")) { ev.preventDefault(); toggleShortcuts(); }
  });
  shortcuts.addEventListener("close", () => {
    // Back to the scales, unless a key pressed since has already moved the focus somewhere.
    const active = document.activeElement;
    if (ws && (!active || active === document.body || shortcuts.contains(active))) ws.backToGroups();
  });

  document.addEventListener("visibilitychange", () => {
    if (!ws) return;
    if (document.hidden) { ws.pause(); ws.flushBeacon(); } else ws.resume();
  });
  window.addEventListener("pagehide", () => { if (ws) ws.flushBeacon(); });

  const first = currentBox && currentBox.querySelector(".workspace");
  if (first) {
    ws = new Workspace(first);
    ws.activate();
    if (ws.mode === "label") preload();
  }
})();
