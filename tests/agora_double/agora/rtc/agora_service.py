"""Double of ``agora.rtc.agora_service``: ``AgoraService`` (one per process)."""

import logging

from agora_cloud import CLOUD

from .agora_base import *  # noqa: F403 - the real module re-exports agora_base the same way
from .agora_base import AgoraServiceConfig, RTCConnConfig, RtcConnectionPublishConfig

logger = logging.getLogger(__name__)


class AgoraService:
    def __init__(self) -> None:
        self.service_handle = object()
        self.inited = False
        self.media_node_factory = None
        self.enable_apm = False
        self.apm_config = None
        self._dbl_appid = ""

    def initialize(self, config: AgoraServiceConfig):
        if self.inited:
            return 0
        CLOUD.record("AgoraService.initialize")
        with CLOUD.lock:
            if any(s is not self for s in _dbl_live_services):
                CLOUD.violation("a second AgoraService was initialized while one is alive")
            _dbl_live_services.append(self)
        self._dbl_appid = config.appid
        self.inited = True
        self.media_node_factory = object()
        self.enable_apm = config.enable_apm
        return 0

    def release(self):
        if not self.inited:
            return
        CLOUD.record("AgoraService.release")
        with CLOUD.lock:
            alive = [c for c in CLOUD.connections if c.service is self and not c.destroyed]
            if self in _dbl_live_services:
                _dbl_live_services.remove(self)
        if alive:
            # 2.4.9+ destroys the service before the factory: a live connection may crash.
            CLOUD.violation("AgoraService.release() while a connection is not released")
        self.media_node_factory = None
        self.inited = False
        self.service_handle = None

    def create_rtc_connection(
        self, con_config: RTCConnConfig, publish_config: RtcConnectionPublishConfig
    ):
        if not self.inited:
            logger.error("AgoraService is not initialized. Please call initialize() first.")
            return None
        from .rtc_connection import RTCConnection

        return RTCConnection(self, con_config, publish_config)


_dbl_live_services: list = []
