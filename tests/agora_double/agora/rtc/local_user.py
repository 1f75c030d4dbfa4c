"""Double of ``agora.rtc.local_user`` (the methods the connection and botrun call)."""

from agora_cloud import CLOUD

from .agora_base import AudioScenarioType


class LocalUser:
    def __init__(self, local_user_handle, connection):
        self.user_handle = local_user_handle
        self.connection = connection
        self.audio_frame_observer = None
        self.user_observer = None

    def set_playback_audio_frame_before_mixing_parameters(self, channels, sample_rate_hz):
        self.user_handle.frame_params = (int(channels), int(sample_rate_hz))
        return 0

    def _register_audio_frame_observer(self, observer, enable_vad: int, vad_configure):
        if self.audio_frame_observer:
            # Kept from the real 2.4.x source: this method does not exist, so registering
            # twice raises AttributeError.
            self.unregister_audio_frame_observer()
        if enable_vad:
            CLOUD.violation("the double does not model the SDK's VAD (enable_vad must be 0)")
        self.audio_frame_observer = observer
        self.user_handle.audio_observer = observer
        return 0

    def _unregister_audio_frame_observer(self):
        if self.audio_frame_observer:
            self.user_handle.audio_observer = None
        self.audio_frame_observer = None
        return 0

    def _register_local_user_observer(self, observer):
        self.user_observer = observer
        self.user_handle.user_observer = observer
        return 0

    def _unregister_local_user_observer(self):
        self.user_handle.user_observer = None
        return 0

    def _publish_audio(self, agora_local_audio_track):
        CLOUD.record("LocalUser.publish_audio")
        handle = self.user_handle
        handle.published = True
        info = handle.token_info
        if info is not None and not info.can_publish:
            handle.post(handle.publish_failed, 17)  # ERR_JOIN_CHANNEL_REJECTED-like
        return 0

    def _unpublish_audio(self, agora_local_audio_track):
        CLOUD.record("LocalUser.unpublish_audio")
        self.user_handle.published = False
        self.user_handle.clear_queue()
        return 0

    def _release(self):
        pass

    def get_rtc_connection(self):
        return self.connection

    def set_audio_scenario(self, scenario_type: AudioScenarioType):
        self.user_handle.scenario = scenario_type.value
        return 0
