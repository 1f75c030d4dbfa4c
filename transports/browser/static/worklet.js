// botrun's two audio worklets: the microphone capture and the bot's voice player.
// Plain JavaScript, no build step. Loaded with audioWorklet.addModule("/static/worklet.js").

// Capture: float samples -> PCM16 little-endian in 20 ms messages (zeros while muted),
// with the RMS level of each message for the input meter.
class BotrunCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.muted = false;
    this.n = Math.round(sampleRate / 50);
    this.buf = new Int16Array(this.n);
    this.i = 0;
    this.sum = 0;
    this.port.onmessage = (e) => {
      if (typeof e.data.muted === "boolean") this.muted = e.data.muted;
    };
  }

  process(inputs, outputs) {
    const ch = inputs[0] && inputs[0][0];
    if (ch) {
      for (let k = 0; k < ch.length; k++) {
        let v = this.muted ? 0 : ch[k];
        v = v > 1 ? 1 : v < -1 ? -1 : v;
        this.sum += v * v;
        this.buf[this.i++] = v < 0 ? v * 32768 : v * 32767;
        if (this.i === this.n) {
          const level = Math.sqrt(this.sum / this.n);
          this.port.postMessage({ pcm: this.buf.buffer, level }, [this.buf.buffer]);
          this.buf = new Int16Array(this.n);
          this.i = 0;
          this.sum = 0;
        }
      }
    }
    const out = outputs[0] && outputs[0][0];
    if (out) out.fill(0); // connected to the destination only to be run; silent
    return true;
  }
}

// Player: a jitter buffer. PCM16 messages are queued; playback starts once PREBUFFER_S is
// queued (or the queue has stopped growing), and a {flush: true} message drops everything
// queued (barge-in). Counters go to the page about every 100 ms and at each flush.
const PREBUFFER_S = 0.06;

class BotrunPlayer extends AudioWorkletProcessor {
  constructor() {
    super();
    this.cap = sampleRate * 60;
    this.q = new Float32Array(this.cap);
    this.r = 0;
    this.w = 0;
    this.size = 0;
    this.playing = false;
    this.prebuffer = Math.round(sampleRate * PREBUFFER_S);
    this.idle = 0; // samples rendered since the last message arrived
    this.stats = { received: 0, played: 0, flushed: 0, flushes: 0, underruns: 0, overflows: 0 };
    this.sum = 0;
    this.cnt = 0;
    this.port.onmessage = (e) => this.onMessage(e.data);
  }

  onMessage(d) {
    if (d.flush) {
      this.stats.flushed += this.size;
      this.stats.flushes += 1;
      this.r = this.w;
      this.size = 0;
      this.playing = false;
      this.report({ flushedNow: true });
      return;
    }
    const s = new Int16Array(d.pcm);
    this.idle = 0;
    this.stats.received += s.length;
    for (let k = 0; k < s.length; k++) {
      if (this.size === this.cap) {
        this.stats.overflows += 1;
        continue;
      }
      this.q[this.w] = s[k] / 32768;
      this.w = (this.w + 1) % this.cap;
      this.size += 1;
    }
  }

  report(extra) {
    const level = this.cnt ? Math.sqrt(this.sum / this.cnt) : 0;
    this.port.postMessage({ ...this.stats, buffered: this.size, level, ...(extra || {}) });
    this.sum = 0;
    this.cnt = 0;
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    this.idle += out.length;
    if (!this.playing && this.size > 0 && (this.size >= this.prebuffer || this.idle >= this.prebuffer)) {
      this.playing = true;
    }
    for (let k = 0; k < out.length; k++) {
      let v = 0;
      if (this.playing && this.size > 0) {
        v = this.q[this.r];
        this.r = (this.r + 1) % this.cap;
        this.size -= 1;
        this.stats.played += 1;
      } else if (this.playing) {
        this.playing = false;
        this.stats.underruns += 1;
      }
      out[k] = v;
      this.sum += v * v;
    }
    this.cnt += out.length;
    if (this.cnt >= sampleRate / 10) this.report();
    return true;
  }
}

registerProcessor("botrun-capture", BotrunCapture);
registerProcessor("botrun-player", BotrunPlayer);
