"""Audio core: streaming resampler, mixer, outbound pacer, PCM helpers."""
