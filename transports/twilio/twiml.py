"""The TwiML botrun answers with, built by the official ``twilio`` package."""

from __future__ import annotations

from twilio.twiml.voice_response import Connect, Dial, VoiceResponse

#: What a caller hears when every call slot is taken.
BUSY_MESSAGE = "Sorry, all our lines are busy right now. Please call again later."


def connect_stream(url: str, parameters: dict[str, str]) -> str:
    """Connect the call to our Media Streams WebSocket ``url`` (wss://), with ``parameters``
    reaching the stream's ``start`` message as customParameters."""
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=url)
    for name, value in parameters.items():
        if value:
            stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response.to_xml())


def busy(message: str = BUSY_MESSAGE) -> str:
    """A polite refusal: say so, then hang up (beyond ``--max-calls``)."""
    response = VoiceResponse()
    response.say(message)
    response.hangup()
    return str(response.to_xml())


def dial(target: str) -> str:
    """Transfer: dial ``target`` (E.164 number or ``sip:`` URI) in place of the stream."""
    response = VoiceResponse()
    d = Dial()
    if target.lower().startswith("sip:"):
        d.sip(target)
    else:
        d.number(target)
    response.append(d)
    return str(response.to_xml())


def hang_up() -> str:
    response = VoiceResponse()
    response.hangup()
    return str(response.to_xml())
