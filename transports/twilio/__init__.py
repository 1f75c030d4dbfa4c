"""Twilio phone calls over Media Streams (no native SDK)."""
