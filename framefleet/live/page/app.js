// framefleet live page: camera → canvas → JPEG → WebSocket /v1/live → JPEG → canvas.
// At most MAX_IN_FLIGHT frames are on their way; the next is sent when a result (or an error) comes back.
// The protocol is in framefleet/live/server.py. window.liveStats is read by tests/test_live_browser.py.
"use strict";

const MAX_IN_FLIGHT = 2;
const STALL_MS = 2000; // no answer for this long: stop waiting for the frames in flight
const JPEG_QUALITY = 0.85;

const $ = (id) => document.getElementById(id);
const video = $("camera");
const input = $("input");
const output = $("output");
const inputCtx = input.getContext("2d");
const outputCtx = output.getContext("2d");

const stats = {
  framesSent: 0, framesReceived: 0, lastRoundTripMs: null, lastModelMs: null, lastFrameMs: null,
  dropped: 0, rescaled: 0, errors: 0, lastError: null, fps: 0,
  prompt: $("prompt").value, confirmedPrompt: null, look: null, fromFrame: null, connected: false, width: 0, height: 0,
};
window.liveStats = stats;

let ws = null;
let sentAt = new Map(); // seq → performance.now() when sent
let answered = -1; // highest seq the server has answered (processed, dropped before it, or refused)
let lastAnswerAt = 0;
let header = null; // the "frame" message whose JPEG comes next
let encoding = false;
const received = []; // times of the last results, for fps

function setStatus(text) { $("status").textContent = text; }

function showStats() {
  const ms = (v) => (v == null ? "–" : v.toFixed(1));
  $("stats").textContent =
    `fps ${stats.fps.toFixed(1)}   round trip ${ms(stats.lastRoundTripMs)} ms   model ${ms(stats.lastModelMs)} ms` +
    `   server ${ms(stats.lastFrameMs)} ms\nsent ${stats.framesSent}   received ${stats.framesReceived}` +
    `   dropped ${stats.dropped}   rescaled ${stats.rescaled}   errors ${stats.errors}` +
    `\nprompt ${JSON.stringify(stats.confirmedPrompt)} → look ${stats.look ?? "none"} from frame ${stats.fromFrame ?? "–"}` +
    (stats.lastError ? `\nlast error: ${stats.lastError}` : "");
}

function sizeCanvases() {
  const w = parseInt($("size").value, 10);
  const vw = video.videoWidth || 4, vh = video.videoHeight || 3;
  const h = Math.max(16, 2 * Math.round((w * vh) / vw / 2));
  for (const c of [input, output]) { c.width = w; c.height = h; }
  stats.width = w; stats.height = h;
}

function connect() {
  if (ws) { ws.onclose = null; ws.close(); }
  sentAt = new Map(); answered = -1; header = null;
  stats.framesSent = 0; // seq numbers restart with every session
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const query = encodeURIComponent(stats.prompt);
  const inUrl = query.length <= 2000; // a long prompt goes as a control message (the URL is limited to 8 KB)
  ws = new WebSocket(`${proto}://${location.host}/v1/live` + (inUrl ? `?prompt=${query}` : ""));
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    if (!inUrl) ws.send(JSON.stringify({ type: "prompt", prompt: stats.prompt }));
    stats.connected = true; lastAnswerAt = performance.now(); setStatus("streaming"); pump();
  };
  ws.onclose = (e) => {
    stats.connected = false;
    setStatus(`disconnected (${e.code}${e.reason ? ": " + e.reason : ""}); reconnecting…`);
    setTimeout(connect, e.code === 1013 ? 3000 : 1000);
  };
  ws.onmessage = onMessage;
}

function answer(seq) {
  answered = Math.max(answered, seq);
  lastAnswerAt = performance.now();
  for (const k of sentAt.keys()) if (k < seq) sentAt.delete(k);
}

function onMessage(ev) {
  if (typeof ev.data !== "string") { onResult(ev.data); return; }
  const msg = JSON.parse(ev.data);
  if (msg.type === "frame") {
    header = msg;
    answer(msg.seq);
  } else if (msg.type === "prompt") {
    stats.confirmedPrompt = msg.prompt;
    stats.look = msg.look;
    stats.fromFrame = msg.from_frame;
  } else if (msg.type === "error") {
    stats.errors += 1;
    stats.lastError = `${msg.code}: ${msg.message}`;
    if (msg.seq != null) { answer(msg.seq); pump(); }
  }
  showStats();
}

async function onResult(data) {
  const h = header;
  header = null;
  const bitmap = await createImageBitmap(new Blob([data], { type: "image/jpeg" }));
  outputCtx.drawImage(bitmap, 0, 0, output.width, output.height);
  bitmap.close();
  const now = performance.now();
  stats.framesReceived += 1;
  if (h) {
    if (sentAt.has(h.seq)) stats.lastRoundTripMs = now - sentAt.get(h.seq);
    sentAt.delete(h.seq);
    stats.lastModelMs = h.model_ms; stats.lastFrameMs = h.frame_ms;
    stats.dropped = h.dropped; stats.rescaled = h.rescaled;
  }
  received.push(now);
  while (received.length && now - received[0] > 1000) received.shift();
  stats.fps = received.length;
  showStats();
  pump();
}

function pump() {
  if (!ws || ws.readyState !== WebSocket.OPEN || encoding || video.readyState < 2) return;
  const inFlight = stats.framesSent - 1 - answered;
  if (inFlight >= MAX_IN_FLIGHT && performance.now() - lastAnswerAt < STALL_MS) return;
  if (inFlight >= MAX_IN_FLIGHT) answered = stats.framesSent - 1; // stalled: give up on those
  inputCtx.drawImage(video, 0, 0, input.width, input.height);
  encoding = true;
  input.toBlob((blob) => {
    encoding = false;
    if (!blob || !ws || ws.readyState !== WebSocket.OPEN) return;
    sentAt.set(stats.framesSent, performance.now());
    stats.framesSent += 1;
    ws.send(blob);
    pump(); // a second frame may go while the first is processed
  }, "image/jpeg", JPEG_QUALITY);
}

$("controls").addEventListener("submit", (e) => {
  e.preventDefault();
  stats.prompt = $("prompt").value;
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "prompt", prompt: stats.prompt }));
});

$("size").addEventListener("change", () => { sizeCanvases(); connect(); });

async function start() {
  try {
    video.srcObject = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
    await video.play();
  } catch (err) {
    setStatus(`no camera: ${err.name}: ${err.message}`);
    return;
  }
  sizeCanvases();
  connect();
  setInterval(pump, 100); // restarts the loop after a stall or a reconnect
}

start();
