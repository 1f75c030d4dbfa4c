"""Double of ``agora.rtc.local_user_observer`` (the callbacks botrun uses)."""


class IRTCLocalUserObserver:
    def on_audio_track_publish_success(self, agora_local_user, agora_local_audio_track):
        pass

    def on_audio_track_publication_failure(self, agora_local_user, agora_local_audio_track, error):
        pass

    def on_audio_publish_state_changed(
        self, agora_local_user, channel, old_state, new_state, elapse_since_last_state
    ):
        pass

    def on_user_audio_track_subscribed(self, agora_local_user, user_id, agora_remote_audio_track):
        pass
