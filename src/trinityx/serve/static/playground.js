// TrinityX playground. Speaks only the public API: GET /v1/models (experts, routing, presets)
// and POST /v1/chat/completions with stream: true and the `hhh` extension; the final chunk of a
// stream carries `routing` (gates used, router probs, per-token gates, per-block gates).
"use strict";

const PALETTE = { helpful: [47, 111, 219], harmless: [31, 157, 85], honest: [217, 130, 43] };
const EXTRA = [[147, 51, 234], [220, 38, 38], [8, 145, 178]];
const $ = (id) => document.getElementById(id);
const state = { model: null, experts: [], routing: null, presets: {}, history: [], busy: false };

function colour(name) {
  if (PALETTE[name]) return PALETTE[name];
  return EXTRA[state.experts.indexOf(name) % EXTRA.length];
}

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

async function loadModel() {
  const res = await fetch("v1/models", { headers: headers() });
  const body = await res.json();
  if (!res.ok) {
    $("model-info").textContent = "error: " + (body.error ? body.error.message : res.status);
    $("model-info").classList.add("error");
    return;
  }
  const card = body.data[0];
  Object.assign(state, {
    model: card.id, experts: card.experts || [], routing: card.routing, presets: card.presets || {},
  });
  $("model-info").classList.remove("error");
  $("model-info").textContent =
    `${card.id} · routing ${card.routing || "none (plain model)"} · experts ${state.experts.join(", ") || "—"}`;
  buildSliders();
  buildPresets();
  $("legend").innerHTML = state.experts
    .map((n) => `<span><i style="background:rgb(${colour(n)})"></i>${n}</span>`).join("");
}

function buildSliders() {
  const box = $("sliders");
  const old = {};  // a reload (e.g. a new API key) keeps what the user set
  for (const el of box.querySelectorAll("input")) old[el.id] = el.value;
  box.innerHTML = "";
  const min = $("allow-negative").checked ? "-2" : "0";
  for (const name of state.experts) {
    const v = old[`w-${name}`] ?? "1";
    const row = document.createElement("div");
    row.className = "slider";
    row.innerHTML = `<span>${name}</span>` +
      `<input id="w-${name}" type="range" min="${min}" max="2" step="0.05" value="${v}">` +
      `<output id="w-${name}-val">${Number(v).toFixed(2)}</output>`;
    box.appendChild(row);
    const input = row.querySelector("input");
    input.addEventListener("input", () => {
      $(`w-${name}-val`).textContent = Number(input.value).toFixed(2);
      $("preset").value = "";  // moving a slider leaves the preset
      $("preset-info").textContent = "";
    });
  }
}

function buildPresets() {
  const sel = $("preset");
  sel.length = 1;
  for (const [name, p] of Object.entries(state.presets)) {
    const opt = document.createElement("option");
    opt.value = name;
    opt.textContent = name;
    opt.title = p.description || "";
    sel.appendChild(opt);
  }
}

function applyPreset(name) {
  const p = state.presets[name];
  if (!p) { $("preset-info").textContent = ""; return; }
  $("preset-info").textContent = p.description || "";
  $("use-weights").checked = p.weights !== null;
  $("allow-negative").checked = !!p.allow_negative;
  setNegative(!!p.allow_negative);
  for (const n of state.experts) {
    const v = p.weights ? (p.weights[n] || 0) : 1;
    $(`w-${n}`).value = v;
    $(`w-${n}-val`).textContent = Number(v).toFixed(2);
  }
  $("dial-on").checked = p.refusal_tau !== null && p.refusal_tau !== undefined;
  if ($("dial-on").checked) { $("tau").value = p.refusal_tau; $("tau-val").textContent = Number(p.refusal_tau).toFixed(2); }
}

function setNegative(on) {
  for (const n of state.experts) {
    const s = $(`w-${n}`);
    s.min = on ? "-2" : "0";
    if (!on && Number(s.value) < 0) { s.value = 0; $(`w-${n}-val`).textContent = "0.00"; }
  }
}

// The `hhh` object this request sends: a preset by name, or the sliders and the dial.
function hhhOptions() {
  if (!state.experts.length) return undefined;
  const preset = $("preset").value;
  if (preset) return { preset, per_token: true };
  const hhh = { per_token: true };
  if ($("use-weights").checked) {
    hhh.weights = {};
    for (const n of state.experts) hhh.weights[n] = Number($(`w-${n}`).value);
    if ($("allow-negative").checked) hhh.allow_negative = true;
  }
  if ($("dial-on").checked) hhh.refusal_tau = Number($("tau").value);
  return hhh;
}

function fmt(obj) {
  return Object.entries(obj).map(([k, v]) => `<span class="k">${k} ${Number(v).toFixed(3)}</span>`).join("");
}

function bars(gates) {
  const total = Object.values(gates).reduce((a, v) => a + Math.abs(v), 0) || 1;
  return `<div class="bars">` + Object.entries(gates).map(([k, v]) =>
    `<span title="${k} ${Number(v).toFixed(3)}" style="width:${(100 * Math.abs(v)) / total}%;` +
    `background:rgb(${colour(k)})"></span>`).join("") + `</div>`;
}

// Each token coloured by its gate mix (a weighted blend of the experts' colours, alpha by the
// gates' total magnitude); hover shows the numbers per transformer block.
function heatmap(r) {
  const wrap = document.createElement("div");
  wrap.className = "heatmap";
  const names = Object.keys(r.gates);
  r.tokens.forEach((piece, t) => {
    const g = r.per_token[t];
    let tot = 0; const rgb = [0, 0, 0];
    for (const n of names) {
      const w = Math.abs(g[n]); tot += w;
      colour(n).forEach((c, i) => { rgb[i] += w * c; });
    }
    const span = document.createElement("span");
    span.className = "tok";
    span.textContent = piece;
    const alpha = Math.min(0.85, 0.25 + 0.6 * Math.min(tot, 1));
    span.style.background = tot ? `rgba(${rgb.map((c) => Math.round(c / tot)).join(",")},${alpha})` : "transparent";
    span.dataset.index = t;
    span.addEventListener("mouseenter", (ev) => showTip(ev, r, t, names));
    span.addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
    wrap.appendChild(span);
  });
  return wrap;
}

function showTip(ev, r, t, names) {
  const tip = $("tooltip");
  const g = r.per_token[t];
  let text = `token ${t} ${JSON.stringify(r.tokens[t])}\nmean  ` +
    names.map((n) => `${n.slice(0, 4)} ${g[n].toFixed(3)}`).join("  ");
  if (r.per_layer && r.layers) {
    text += "\n" + r.layers.map((l, i) =>
      `${l.padEnd(9)} ` + r.per_layer[t][i].map((v, k) => `${names[k].slice(0, 4)} ${v.toFixed(3)}`).join("  ")).join("\n");
  }
  tip.textContent = text;
  tip.hidden = false;
  tip.style.left = Math.min(ev.clientX + 12, window.innerWidth - 380) + "px";
  tip.style.top = (ev.clientY + 14) + "px";
}

function renderRouting(box, r) {
  if (!r || box.classList.contains("base")) {
    const what = r ? "experts off: the frozen backbone (all gates 0)" : "plain model: no routing";
    box.insertAdjacentHTML("beforeend", `<div class="routing">${what}</div>`);
    return;
  }
  const el = document.createElement("div");
  el.className = "routing";
  let html = `<div class="gates-line"><b>gates</b> ${fmt(r.gates)}</div>${bars(r.gates)}`;
  if (r.weights) html += `<div class="weights-line"><b>weights π</b> ${fmt(r.weights)}</div>`;
  else html += `<div class="weights-line"><b>weights π</b> none (router alone)</div>`;
  if (r.router_probs) html += `<div><b>router p</b> ${fmt(r.router_probs)}</div>`;
  if (r.preset) html += `<div><b>preset</b> ${r.preset}</div>`;
  if (r.refusal_dial) {
    const d = r.refusal_dial;
    html += `<div class="dial-line"><b>dial</b> p(harmless) ${d.p_harmless.toFixed(3)} ` +
      `${d.fired ? "&gt;" : "≤"} τ ${d.tau.toFixed(2)}: ${d.fired ? "harmless expert alone" : "composed as usual"}</div>`;
  }
  html += `<div>${r.routing} routing, ${r.weight_mode}</div>`;
  el.innerHTML = html;
  box.appendChild(el);
  if (r.tokens && r.per_token && r.routing === "token") box.appendChild(heatmap(r));
}

// POST a streaming chat request; deltas go into `box`, the final routing under it.
async function stream(messages, hhh, box) {
  const body = { model: state.model, messages, stream: true, temperature: Number($("temperature").value) || 0 };
  const maxTokens = Number($("max-tokens").value);
  if (maxTokens > 0) body.max_tokens = maxTokens;  // else the server's --max-tokens
  if (hhh) body.hhh = hhh;
  const text = box.querySelector(".text");
  box.classList.add("streaming");
  let answer = "", routing;
  try {
    const res = await fetch("v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(body) });
    if (!res.ok) {
      const err = await res.json().catch(() => ({}));
      throw new Error(err.error ? err.error.message : `HTTP ${res.status}`);
    }
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const ev = buf.slice(0, cut); buf = buf.slice(cut + 2);
        if (!ev.startsWith("data: ")) continue;
        const data = ev.slice(6);
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        const c = chunk.choices && chunk.choices[0];
        if (!c) continue;
        if (c.delta && c.delta.content) { answer += c.delta.content; text.textContent = answer; }
        if (c.finish_reason) routing = c.routing;
      }
    }
    box.classList.remove("streaming");
    box.dataset.done = "1";
    renderRouting(box, routing);
  } catch (e) {
    box.classList.remove("streaming");
    box.dataset.done = "1";
    text.innerHTML += `<div class="error">${String(e.message || e)}</div>`;
  }
  return answer;
}

function answerBox(title) {
  const box = document.createElement("div");
  box.className = "answer";
  box.innerHTML = `<h3>${title}</h3><div class="text"></div>`;
  return box;
}

async function send(ev) {
  ev.preventDefault();
  const prompt = $("prompt").value.trim();
  if (!prompt || state.busy || !state.model) return;
  state.busy = true; $("send").disabled = true;
  const user = document.createElement("div");
  user.className = "turn user"; user.textContent = prompt;
  $("messages").appendChild(user);
  state.history.push({ role: "user", content: prompt });
  $("prompt").value = "";
  const turn = document.createElement("div");
  turn.className = "turn assistant";
  const answers = document.createElement("div");
  answers.className = "answers";
  const hhh = hhhOptions();
  const main = answerBox(state.experts.length ? "TrinityX" : state.model);
  answers.appendChild(main);
  const jobs = [stream(state.history.slice(), hhh, main)];
  if ($("compare-base").checked && state.experts.length) {
    const base = answerBox("base model (experts off)");
    base.classList.add("base");
    answers.appendChild(base);
    jobs.push(stream(state.history.slice(), { base: true, per_token: true }, base));
  }
  turn.appendChild(answers);
  $("messages").appendChild(turn);
  const [reply] = await Promise.all(jobs);
  state.history.push({ role: "assistant", content: reply });
  state.busy = false; $("send").disabled = false;
}

function init() {
  $("api-key").value = localStorage.getItem("trinityx-key") || "";
  $("api-key").addEventListener("change", () => {
    if ($("api-key").value === (localStorage.getItem("trinityx-key") || "") && state.model) return;
    localStorage.setItem("trinityx-key", $("api-key").value);
    loadModel();
  });
  $("preset").addEventListener("change", () => applyPreset($("preset").value));
  $("allow-negative").addEventListener("change", () => { setNegative($("allow-negative").checked); $("preset").value = ""; });
  $("tau").addEventListener("input", () => { $("tau-val").textContent = Number($("tau").value).toFixed(2); $("preset").value = ""; });
  for (const id of ["use-weights", "dial-on"]) $(id).addEventListener("change", () => { $("preset").value = ""; });
  $("composer").addEventListener("submit", send);
  $("prompt").addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) send(e); });
  $("clear").addEventListener("click", () => { state.history = []; $("messages").innerHTML = ""; });
  loadModel();
}

init();
