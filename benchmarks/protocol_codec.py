"""Cost of the agent wire codec per 20 ms of audio each way (encode input.audio, decode
reply.audio), as a share of one CPU core in real time. Prints measured figures only."""

from __future__ import annotations

import time

from botrun.core.protocol import InputAudio, ReplyAudio, decode, encode, encode_server

CHUNK = b"\x01\x02" * 480  # 20 ms of PCM16 at 24 kHz
N = 20_000


def main() -> None:
    inbound = InputAudio(CHUNK)
    outbound = encode_server(ReplyAudio(CHUNK))
    t0 = time.perf_counter()
    for _ in range(N):
        encode(inbound)
    t1 = time.perf_counter()
    for _ in range(N):
        decode(outbound)
    t2 = time.perf_counter()
    enc_us = (t1 - t0) / N * 1e6
    dec_us = (t2 - t1) / N * 1e6
    share = (enc_us + dec_us) / 20_000 * 100  # per 20 ms of two-way audio
    print(f"encode input.audio (20 ms): {enc_us:.1f} us")
    print(f"decode reply.audio (20 ms): {dec_us:.1f} us")
    print(f"two-way codec cost: {share:.3f} % of one core per session")


if __name__ == "__main__":
    main()
