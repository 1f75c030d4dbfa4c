"""Double of ``agora.rtc.local_audio_track`` (the calls the connection makes on its track)."""


class LocalAudioTrack:
    def __init__(self, track_handle):
        self.track_handle = track_handle
        self._enabled = 0

    def set_enabled(self, enable):
        self._enabled = int(enable)
        return 0

    def set_max_buffer_audio_frame_number(self, num):
        return 0

    def clear_sender_buffer(self):
        self.track_handle.clear_queue()
        return 0

    def release(self):
        self.track_handle = None

    def set_send_delay_ms(self, delay_ms: int):
        return 0
