"""Double of ``agora.rtc.audio_pcm_data_sender``.

Keeps the real buffer rule: the sender wraps ``frame.data`` with
``(ctypes.c_char * n).from_buffer(...)``, which needs a *writable* buffer, so ``bytes``
raises ``TypeError`` and only ``bytearray`` (or another writable buffer) works. The frame's
``data`` is set to None after sending, as in the real SDK.
"""

import ctypes

from .agora_base import PcmAudioFrame


class AudioPcmDataSender:
    def __init__(self, handle) -> None:
        self.sender_handle = handle

    def send_audio_pcm_data(self, frame: PcmAudioFrame):
        c_data = (ctypes.c_char * len(frame.data)).from_buffer(frame.data)
        ret = self.sender_handle.push(bytes(c_data))
        frame.data = None
        return ret

    def release(self):
        if self.sender_handle:
            self.sender_handle = None
