// botrun web: talk to the bot from this page. Plain JavaScript, no framework, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const OUTPUT_RATE = 24000; // the bot's voice arrives at the agent's rate (the server's "welcome")
const AEC = new URLSearchParams(location.search).get("aec") !== "off";

// What tests and curious users can read: counters of the audio paths and every message.
const botrun = (window.botrun = {
  stats: { received: 0, played: 0, flushed: 0, flushes: 0, underruns: 0, buffered: 0, sent: 0 },
  flushLog: [], // {played, flushed} at each flush the player performed
  events: [], // every event the server sent
  state: "idle",
});

let ws = null;
let ctx = null;
let micCtx = null;
let stream = null;
let capture = null;
let player = null;
let muted = false;
let userLine = null; // the transcript line of what you are saying now
let agentLine = null; // the transcript line of the bot's reply in flight
const latencies = [];
let callsBefore = 0;

function setState(id, text, state) {
  const el = $(id);
  el.textContent = text;
  el.dataset.state = state;
}

function showMessage(text) {
  const el = $("message");
  el.textContent = text;
  el.hidden = !text;
}

function micMessage(err) {
  const name = (err && err.name) || "";
  if (name === "NotAllowedError" || name === "SecurityError") {
    return "The microphone was refused. Allow this page to use it (the icon in the address bar), then start the call again.";
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") {
    return "No microphone found. Plug one in (or pick one in the browser's settings), then start the call again.";
  }
  if (name === "NotReadableError") {
    return "The microphone is in use by another program, or the system refused it.";
  }
  return "Could not open the microphone: " + (err && err.message ? err.message : String(err));
}

function addLine(cls, who, text) {
  const li = document.createElement("li");
  li.className = cls;
  const w = document.createElement("span");
  w.className = "who";
  w.textContent = who;
  const t = document.createElement("span");
  t.className = "text";
  t.textContent = text;
  li.append(w, t);
  $("transcript").append(li);
  li.scrollIntoView({ block: "nearest" });
  return li;
}

function setText(li, text) {
  li.querySelector(".text").textContent = text;
}

function markInterrupted(li) {
  if (!li || li.classList.contains("interrupted")) return;
  li.classList.add("interrupted");
  const tag = document.createElement("span");
  tag.className = "tag";
  tag.textContent = "interrupted";
  li.append(tag);
}

function note(text) {
  addLine("note", "", text);
}

function drawLatency() {
  const svg = $("latency");
  svg.replaceChildren();
  if (!latencies.length) return;
  const ns = "http://www.w3.org/2000/svg";
  const max = Math.max(1000, ...latencies);
  const shown = latencies.slice(-20);
  const w = 300 / 20;
  shown.forEach((ms, i) => {
    const h = (ms / max) * 100;
    const r = document.createElementNS(ns, "rect");
    r.setAttribute("x", String(i * w + 2));
    r.setAttribute("y", String(110 - h));
    r.setAttribute("width", String(w - 4));
    r.setAttribute("height", String(h));
    const title = document.createElementNS(ns, "title");
    title.textContent = Math.round(ms) + " ms";
    r.append(title);
    svg.append(r);
  });
  const label = document.createElementNS(ns, "text");
  label.setAttribute("x", "2");
  label.setAttribute("y", "10");
  label.textContent = "max " + Math.round(max) + " ms";
  svg.append(label);
  const sorted = [...latencies].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  $("latency-text").textContent =
    "last " + Math.round(latencies[latencies.length - 1]) + " ms · median " + Math.round(median) +
    " ms · " + latencies.length + " turns";
}

function addTool(e) {
  const li = document.createElement("li");
  const head = document.createElement("b");
  head.textContent = e.name;
  const dur = document.createElement("span");
  dur.textContent = " " + Math.round(e.duration_ms || 0) + " ms" + (e.error ? " · failed" : "");
  const args = document.createElement("code");
  args.textContent = "args: " + JSON.stringify(e.arguments);
  const res = document.createElement("code");
  res.textContent = e.error ? "error: " + e.error : "result: " + e.result;
  li.append(head, dur, args, res);
  $("tools").append(li);
}

function onEvent(e) {
  botrun.events.push(e);
  switch (e.kind) {
    case "session.state":
      if (e.state === "ready") setState("agent", "listening", "ready");
      else setState("agent", e.state, e.state === "ended" || e.state === "closed" ? "idle" : "busy");
      break;
    case "speech.started":
      setState("agent", "hearing you", "hearing");
      if (!userLine) userLine = addLine("user partial", "you", "…");
      break;
    case "speech.stopped":
      setState("agent", "thinking", "busy");
      break;
    case "transcript.user":
      if (!userLine) userLine = addLine("user partial", e.participant_name || "you", "");
      setText(userLine, e.text);
      if (e.final) {
        userLine.classList.remove("partial");
        userLine = null;
      }
      break;
    case "transcript.agent":
      if (!agentLine) agentLine = addLine("agent partial", "bot", "");
      setText(agentLine, e.text);
      if (e.interrupted) markInterrupted(agentLine);
      if (e.final) {
        agentLine.classList.remove("partial");
        agentLine = null;
      }
      break;
    case "reply.started":
      setState("agent", "speaking", "speaking");
      if (typeof e.latency_ms === "number") {
        latencies.push(e.latency_ms);
        drawLatency();
      }
      break;
    case "reply.done":
      setState("agent", "listening", "ready");
      break;
    case "reply.interrupted":
      markInterrupted(agentLine || lastAgentLine());
      note("barge-in: " + Math.round(e.flushed_ms) + " ms of the bot's speech dropped");
      break;
    case "tool.call":
      addTool(e);
      break;
    case "error":
      note("agent error: " + e.message);
      break;
    case "call.action":
      note("bot action: " + e.action + (e.detail ? " (" + e.detail + ")" : "") + (e.error ? " failed: " + e.error : ""));
      break;
    case "transport.status":
      break;
    default:
      break;
  }
}

function lastAgentLine() {
  const lines = document.querySelectorAll("#transcript li.agent");
  return lines.length ? lines[lines.length - 1] : null;
}

function onControl(msg) {
  switch (msg.type) {
    case "welcome":
      setState("conn", "connected", "connected");
      break;
    case "event":
      onEvent(msg);
      break;
    case "flush":
      if (player) player.port.postMessage({ flush: true });
      break;
    case "busy":
      setState("conn", "busy", "error");
      showMessage(
        "This bot is already in a call with another tab or window. Hang up there (Esc), then start the call here."
      );
      break;
    case "ended":
      note("call ended: " + msg.reason);
      break;
    default:
      break;
  }
}

async function startCall() {
  showMessage("");
  if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showMessage(
      "The browser allows the microphone only on https or localhost pages. Open the page as http://127.0.0.1:PORT (an SSH tunnel works) or behind https."
    );
    return;
  }
  $("start").disabled = true;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      // Echo cancellation keeps the bot from hearing (and interrupting) itself on speakers
      // (?aec=off turns it off: with a headset it only costs fidelity); noise suppression
      // and gain control are left to the agent's own speech detection.
      audio: { echoCancellation: AEC, noiseSuppression: false, autoGainControl: false, channelCount: 1 },
    });
  } catch (err) {
    showMessage(micMessage(err));
    setState("conn", "no microphone", "error");
    $("start").disabled = false;
    return;
  }
  ctx = new AudioContext({ sampleRate: OUTPUT_RATE });
  await ctx.audioWorklet.addModule("/static/worklet.js");
  let source;
  try {
    source = ctx.createMediaStreamSource(stream);
    micCtx = ctx;
  } catch (_err) {
    // (browsers that cannot connect a microphone to a context at another rate)
    micCtx = new AudioContext();
    await micCtx.audioWorklet.addModule("/static/worklet.js");
    source = micCtx.createMediaStreamSource(stream);
  }
  capture = new AudioWorkletNode(micCtx, "botrun-capture");
  source.connect(capture);
  capture.connect(micCtx.destination);
  player = new AudioWorkletNode(ctx, "botrun-player", { outputChannelCount: [1] });
  player.connect(ctx.destination);
  player.port.onmessage = (e) => {
    const s = e.data;
    Object.assign(botrun.stats, {
      received: s.received,
      played: s.played,
      flushed: s.flushed,
      flushes: s.flushes,
      underruns: s.underruns,
      buffered: s.buffered,
    });
    if (s.flushedNow) botrun.flushLog.push({ played: s.played, flushed: s.flushed });
    $("level-out").value = Math.min(1, s.level * 4);
  };
  capture.port.onmessage = (e) => {
    $("level-in").value = Math.min(1, e.data.level * 4);
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(e.data.pcm);
      botrun.stats.sent += e.data.pcm.byteLength / 2;
    }
  };
  await Promise.all([ctx.resume(), micCtx.resume()]);
  connect();
}

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  ws = new WebSocket(proto + "//" + location.host + "/ws");
  ws.binaryType = "arraybuffer";
  setState("conn", "connecting", "busy");
  ws.onopen = () => {
    ws.send(JSON.stringify({ type: "hello", rate: micCtx.sampleRate }));
    $("mute").disabled = false;
    $("hangup").disabled = false;
    botrun.state = "in-call";
  };
  ws.onmessage = (e) => {
    if (typeof e.data === "string") {
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch (_err) {
        return;
      }
      onControl(msg);
    } else if (player) {
      player.port.postMessage({ pcm: e.data }, [e.data]);
    }
  };
  ws.onclose = () => {
    if ($("conn").textContent !== "busy") setState("conn", "call ended", "idle");
    setState("agent", "–", "idle");
    teardown();
    watchForReport();
  };
}

function teardown() {
  botrun.state = "ended";
  if (stream) stream.getTracks().forEach((t) => t.stop());
  if (ctx) ctx.close();
  if (micCtx && micCtx !== ctx) micCtx.close();
  stream = ctx = micCtx = capture = null;
  ws = null;
  $("start").disabled = false;
  $("mute").disabled = true;
  $("hangup").disabled = true;
  setMuted(false);
}

function hangUp() {
  if (ws && ws.readyState === WebSocket.OPEN) {
    ws.send(JSON.stringify({ type: "hangup" }));
  }
}

function setMuted(m) {
  muted = m;
  $("mute").setAttribute("aria-pressed", String(m));
  $("mute").textContent = m ? "Unmute (space)" : "Mute (space)";
  if (capture) capture.port.postMessage({ muted: m });
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "mute", muted: m }));
}

async function listCalls() {
  try {
    const r = await fetch("/calls", { cache: "no-store" });
    if (!r.ok) return 0;
    const { calls } = await r.json();
    const ol = $("calls");
    ol.replaceChildren();
    if (!calls.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "none yet";
      ol.append(li);
    }
    for (const c of calls) {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = c.report;
      a.target = "_blank";
      a.textContent = c.name;
      li.append(a);
      ol.append(li);
    }
    return calls.length;
  } catch (_err) {
    return 0;
  }
}

async function watchForReport() {
  // The report is written once the call has ended on the server: look for it a few times.
  for (let i = 0; i < 20; i++) {
    const n = await listCalls();
    if (n > callsBefore) {
      callsBefore = n;
      note("the report of this call is under Finished calls");
      return;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

$("start").addEventListener("click", () => startCall());
$("mute").addEventListener("click", () => setMuted(!muted));
$("hangup").addEventListener("click", () => hangUp());
document.addEventListener("keydown", (e) => {
  if (e.target && (e.target.tagName === "INPUT" || e.target.tagName === "TEXTAREA")) return;
  if (e.code === "Space" && ws) {
    e.preventDefault();
    setMuted(!muted);
  } else if (e.key === "Escape" && ws) {
    e.preventDefault();
    hangUp();
  }
});
if (!AEC) $("aec-note").textContent = "echo cancellation off (aec=off): use a headset.";
listCalls().then((n) => (callsBefore = n));
