"""Double of ``agora.rtc.rtc_connection``: ``RTCConnection`` of the 2.3+ API generation.

Bodies follow the real wrapper's logic (what each method unpublishes, unregisters, returns
and which quirks it has: ``interrupt_audio`` returns -1000 even when it worked, a second
``release`` raises AttributeError, ``push_audio_pcm_data`` rejects lengths that are not whole
milliseconds with -1002); the native calls go to :mod:`agora_cloud`.
"""

import logging

from agora_cloud import CLOUD, NativeConnection

from .agora_base import (
    AudioPublishType,
    AudioScenarioType,
    PcmAudioFrame,
    RTCConnConfig,
    RtcConnectionPublishConfig,
)
from .agora_service import AgoraService
from .audio_pcm_data_sender import AudioPcmDataSender
from .local_audio_track import LocalAudioTrack
from .local_user import LocalUser
from .rtc_connection_observer import IRTCConnectionObserver

logger = logging.getLogger(__name__)


class RTCConnection:
    def __init__(
        self,
        service: AgoraService,
        conn_config: RTCConnConfig,
        publish_config: RtcConnectionPublishConfig,
    ) -> None:
        self.conn_handle = None
        self.con_observer_handle = None
        self.local_user = None
        self.rtc_engine = service
        self._con_observer = None
        self.conn_handle = NativeConnection(
            CLOUD, service._dbl_appid, conn_config.auto_subscribe_audio
        )
        self.conn_handle.service = service
        self.conn_handle.conn_wrapper = self
        self.local_user_handle = self.conn_handle
        self.local_user = LocalUser(self.local_user_handle, self)
        self.conn_handle.local_user_wrapper = self.local_user
        self.publish_config = publish_config
        self._audio_track = None
        self._audio_sender = None
        self._prepare_publish_track_and_sender()
        self.local_user.set_audio_scenario(self.publish_config.audio_scenario)

    def _prepare_publish_track_and_sender(self) -> int:
        cfg = self.publish_config
        pcm = cfg.audio_publish_type == AudioPublishType.AUDIO_PUBLISH_TYPE_PCM
        if cfg.is_publish_audio and pcm:
            self._audio_sender = AudioPcmDataSender(self.conn_handle)
            self._audio_track = LocalAudioTrack(self.conn_handle)
            self._audio_track.set_max_buffer_audio_frame_number(100000)
            self._audio_track.set_send_delay_ms(10)
        if self._audio_track:
            self._audio_track.set_enabled(True)
        return 0

    def connect(self, token: str, chan_id: str, user_id: str) -> int:
        CLOUD.record("RTCConnection.connect")
        # The real wrapper encodes all three: anything but str raises AttributeError.
        token.encode("utf-8"), chan_id.encode("utf-8"), user_id.encode("utf-8")
        return self.conn_handle.connect(token, chan_id, user_id)

    def disconnect(self) -> int:
        self.unpublish_audio()
        self._unregister_audio_frame_observer()
        self._unregister_local_user_observer()
        CLOUD.record("RTCConnection.disconnect")
        if self.conn_handle is None:
            CLOUD.violation("RTCConnection.disconnect() after release()")
            return -1
        return self.conn_handle.disconnect()

    def renew_token(self, token) -> int:
        CLOUD.record("RTCConnection.renew_token")
        return self.conn_handle.renew_token(token.encode("utf-8").decode("utf-8"))

    def register_observer(self, conn_observer: IRTCConnectionObserver) -> int:
        if self.con_observer_handle:
            self._unregister_observer()
        self.con_observer_handle = conn_observer
        self._con_observer = conn_observer
        self.conn_handle.conn_observer = conn_observer
        return 0

    def _unregister_observer(self) -> int:
        if self.con_observer_handle:
            self.conn_handle.conn_observer = None
        self.con_observer_handle = None
        return 0

    def get_local_user(self):
        return self.local_user

    def release(self):
        self._unregister_observer()
        self.local_user._release()  # AttributeError on a second release, as in the SDK
        CLOUD.record("RTCConnection.release")
        if self.conn_handle:
            if self.conn_handle.state in (3, 2):  # still connected/connecting
                CLOUD.violation("RTCConnection.release() before disconnect()")
            self.conn_handle.destroy()
        self.conn_handle = None
        self.local_user = None
        if self._audio_track:
            self._audio_track.release()
            self._audio_track = None
        if self._audio_sender:
            self._audio_sender.release()
            self._audio_sender = None

    def register_audio_frame_observer(self, observer, enable_vad: int, vad_configure) -> int:
        ret = -1000
        if self.local_user:
            ret = self.local_user._register_audio_frame_observer(
                observer, enable_vad, vad_configure
            )
        return ret

    def register_local_user_observer(self, observer) -> int:
        ret = -1000
        if self.local_user:
            ret = self.local_user._register_local_user_observer(observer)
        return ret

    def _unregister_audio_frame_observer(self) -> int:
        ret = -1000
        if self.local_user:
            ret = self.local_user._unregister_audio_frame_observer()
        return ret

    def _unregister_local_user_observer(self) -> int:
        ret = -1000
        if self.local_user:
            ret = self.local_user._unregister_local_user_observer()
        return ret

    def publish_audio(self) -> int:
        ret = -1000
        if self.local_user and self._audio_track:
            ret = self.local_user._publish_audio(self._audio_track)
        return ret

    def unpublish_audio(self) -> int:
        ret = -1000
        if self.local_user and self._audio_track:
            ret = self.local_user._unpublish_audio(self._audio_track)
        return ret

    def interrupt_audio(self) -> int:
        ret = -1000
        CLOUD.record("RTCConnection.interrupt_audio")
        if self.local_user is None:
            ret = -1001
        elif self.publish_config.audio_scenario == AudioScenarioType.AUDIO_SCENARIO_AI_SERVER:
            self.unpublish_audio()
            self.publish_audio()
        elif self._audio_track:
            self._audio_track.clear_sender_buffer()
        return ret

    def push_audio_pcm_data(self, data, sample_rate, channels, start_pts: int = 0) -> int:
        if self._audio_sender is None:
            return -1001
        read_len = len(data)
        bytes_per_ms = (sample_rate / 1000) * 2 * channels
        if read_len % bytes_per_ms != 0:
            return -1002
        frame = PcmAudioFrame()
        frame.data = data
        frame.sample_rate = sample_rate
        frame.number_of_channels = channels
        frame.bytes_per_sample = 2
        frame.timestamp = 0
        frame.samples_per_channel = read_len // (channels * 2)
        frame.present_time_ms = start_pts
        if sample_rate != 16000 or channels != 1:
            CLOUD.violation(f"pushed {channels} ch @ {sample_rate} Hz; the double models 16k mono")
        return self._audio_sender.send_audio_pcm_data(frame)

    def is_push_to_rtc_completed(self) -> bool:
        return not self.conn_handle.queue if self.conn_handle else True
