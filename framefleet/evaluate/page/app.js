// The rating page: two synced players, 1-5 scores per side, preference, artifact flags; each vote stored at once.
// API: GET /v1/rate/{token}/next, POST /v1/rate/{token}/votes (see docs/evaluate.md). No external assets.
"use strict";
(() => {
  const token = document.body.dataset.token;
  const api = `/v1/rate/${encodeURIComponent(token)}`;
  const LABELS = ["1 bad", "2 poor", "3 fair", "4 good", "5 excellent"];
  const ARTIFACTS = ["blur", "ringing", "flicker", "colour shift", "faces or text changed", "other"];
  const $ = (id) => document.getElementById(id);
  const left = $("left"), right = $("right"), play = $("play"), seek = $("seek");
  const state = { item: null, played: false, done: false, answered: 0, total: 0, submitted: 0, error: null };
  window.rateState = state; // read by tests and by a person debugging the page

  for (const side of ["left", "right"]) {
    const box = $(`${side}-score`);
    LABELS.forEach((text, i) => {
      const l = document.createElement("label");
      l.innerHTML = `<input type="radio" name="${side}_score" value="${i + 1}"> ${text}`;
      box.appendChild(l);
    });
  }
  ARTIFACTS.forEach((name) => {
    const l = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox"; box.name = "artifacts"; box.value = name;
    l.appendChild(box); l.append(` ${name}`);
    $("artifacts").appendChild(l);
  });

  // --- synced playback: one transport drives both players; the right one follows the left one ---
  let syncing = false;
  play.addEventListener("click", () => {
    if (left.paused) {
      right.currentTime = left.currentTime;
      Promise.all([left.play(), right.play()]).catch((e) => setStatus(`cannot play: ${e.message}`));
    } else {
      left.pause(); right.pause();
    }
  });
  left.addEventListener("play", () => { state.played = true; play.textContent = "Pause"; updateSubmit(); });
  left.addEventListener("pause", () => { play.textContent = "Play"; if (!right.paused) right.pause(); });
  left.addEventListener("ended", () => { right.pause(); });
  left.addEventListener("timeupdate", () => {
    const d = left.duration || 0;
    if (!syncing && d) seek.value = String(Math.round((left.currentTime / d) * 1000));
    $("time").textContent = `${left.currentTime.toFixed(1)} s`;
    if (!left.paused && Math.abs(right.currentTime - left.currentTime) > 0.15) right.currentTime = left.currentTime;
  });
  seek.addEventListener("input", () => {
    const d = left.duration || 0;
    if (!d) return;
    syncing = true;
    const t = (Number(seek.value) / 1000) * d;
    left.currentTime = t; right.currentTime = Math.min(t, right.duration || t);
    syncing = false;
  });

  // --- the form ---
  const form = $("vote");
  const chosen = (name) => { const el = form.querySelector(`input[name="${name}"]:checked`); return el ? el.value : null; };
  function updateSubmit() {
    $("submit").disabled = !(state.item && state.played && chosen("left_score") && chosen("right_score") && chosen("preference"));
  }
  form.addEventListener("change", updateSubmit);
  function setStatus(text) { $("status").textContent = text || ""; state.error = text || null; }
  function showProgress(p) {
    state.answered = p.answered; state.total = p.total;
    $("progress").textContent = `Item ${Math.min(p.answered + 1, p.total)} of ${p.total} (${p.answered} rated)`;
  }

  async function loadNext() {
    const r = await fetch(`${api}/next`, { cache: "no-store" });
    const body = await r.json();
    if (!r.ok) { setStatus(body.error ? body.error.message : `error ${r.status}`); return; }
    showProgress(body.progress);
    if (body.done) {
      state.done = true; state.item = null;
      $("rating").hidden = true; $("done").hidden = false;
      $("progress").textContent = `All ${body.progress.total} items rated`;
      return;
    }
    state.item = body.item; state.played = false;
    form.reset(); setStatus("");
    left.pause(); right.pause();
    left.src = body.left_url; right.src = body.right_url;
    left.load(); right.load();
    seek.value = "0"; play.textContent = "Play";
    $("rating").hidden = false;
    updateSubmit();
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const vote = {
      item: state.item,
      left_score: Number(chosen("left_score")),
      right_score: Number(chosen("right_score")),
      preference: chosen("preference"),
      artifacts: [...form.querySelectorAll('input[name="artifacts"]:checked')].map((el) => el.value),
    };
    $("submit").disabled = true;
    const r = await fetch(`${api}/votes`, { method: "POST", headers: { "Content-Type": "application/json" },
                                            body: JSON.stringify(vote) });
    if (r.ok || r.status === 409) {  // 409: already stored (a double click, another tab): move on
      state.submitted += 1;
      await loadNext();
    } else {
      const body = await r.json().catch(() => ({}));
      setStatus(body.error ? body.error.message : `error ${r.status}`);
      updateSubmit();
    }
  });

  loadNext().catch((e) => setStatus(`cannot reach the server: ${e.message}`));
})();
