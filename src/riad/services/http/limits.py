"""``HttpLimits``: what one client may ask of the server, and for how long.

Every limit has a safe default and is checked before the request reaches the
application. A violation answers with its status and closes that connection
only (RFC 9110 section 15.5, RFC 6585 section 5):

==========================  =======  ===============================================
limit                       status   when
==========================  =======  ===============================================
``max_request_line_bytes``  414      the request line is longer
``max_header_bytes``        431      the request head (line + headers) is longer
``max_header_count``        431      more header fields
``max_body_bytes``          413      the declared or the received body is larger
``header_timeout_s``        408      the head is not complete this long after its first byte
``body_timeout_s``          408      a request body makes no progress for this long
``idle_timeout_s``          (close)  no new request on a kept-alive connection
``send_timeout_s``          (close)  the client reads none of the response for this long
``max_connections``         503      more connections (counted from their first byte) at once
``write_buffer_bytes``      --       what of a response may wait in the connection's
                                     buffer before the application's ``send`` waits
``max_write_bytes``         --       a larger body message is written in pieces of this
                                     size, each once the connection has room
malformed request           400      h11 rejects it (bad chunked encoding, bad header, ...)
==========================  =======  ===============================================

WebSocket sessions (``riad.services.http.websocket``) have their own, answered
with a close code once the session is open:

===============================  =====  ==============================================
limit                            close  when
===============================  =====  ==============================================
``websocket_max_message_bytes``  1009   a message (joined fragments, inflated) is larger
``websocket_queue_bytes``        --     messages waiting for the application past this:
                                        the session stops reading (TCP backpressure)
``websocket_ping_interval_s``    --     a ping is sent this often
``websocket_ping_timeout_s``     (drop) the client does not answer a ping this long
``websocket_close_timeout_s``    (drop) the client does not answer the server's close
``websocket_deflate``            --     ``permessage-deflate`` is offered back
===============================  =====  ==============================================

HTTP/2 connections (``riad.services.http.http2``) apply the limits above to
each stream (431, 414, 413, 408 as a stream's answer) and these of their own,
which end the connection with ``ENHANCE_YOUR_CALM`` (or, for streams, refuse
them):

================================  ==============================================
limit                             what
================================  ==============================================
``h2_max_concurrent_streams``     streams open at once (advertised; one more ends
                                  the connection)
``h2_stream_window_bytes``        a stream's flow-control window: what of a
                                  request body waits for the application
``h2_header_table_bytes``         the HPACK dynamic table (header lists are bounded
                                  by ``max_header_bytes``)
``h2_max_control_frames_per_s``   PING, SETTINGS, PRIORITY or empty DATA frames
``h2_max_resets_per_s``           streams reset by the client or refused
================================  ==============================================
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HttpLimits"]


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpLimits:
    """Limits for one ``HttpServer``; see the module text for the status of each."""

    max_request_line_bytes: int = 8 * 1024
    max_header_bytes: int = 16 * 1024
    max_header_count: int = 100
    max_body_bytes: int = 1024 * 1024
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    idle_timeout_s: float = 15.0
    send_timeout_s: float = 30.0
    max_connections: int = 1024
    write_buffer_bytes: int = 64 * 1024
    """What of a response may wait in the connection's buffer (its high-water mark)
    before the application's ``send`` waits for the client to take it. A TLS
    listener's connections wait as soon as one record is pending below TLS (TLS
    keeps the plaintext, by reference, instead)."""
    max_write_bytes: int = 256 * 1024
    """A larger body message is written in pieces of this size, each once the
    connection has room again: what one message can add to a slow reader's buffer."""
    shutdown_grace_s: float = 10.0
    """How long ``HttpServer.shutdown`` lets requests in flight finish."""
    linger_s: float = 2.0
    """After an error response, how long unread request bytes are drained before
    closing (so the client sees the response rather than a reset)."""
    websocket_max_message_bytes: int = 1024 * 1024
    """The largest WebSocket message, after joining fragments and inflating."""
    websocket_queue_bytes: int = 256 * 1024
    """Received WebSocket messages waiting for the application before reading stops."""
    websocket_ping_interval_s: float = 20.0
    websocket_ping_timeout_s: float = 20.0
    websocket_close_timeout_s: float = 5.0
    websocket_deflate: bool = True
    """Accept ``permessage-deflate`` (RFC 7692) when the client offers it."""
    h2_max_concurrent_streams: int = 100
    h2_stream_window_bytes: int = 65535
    h2_header_table_bytes: int = 4096
    h2_max_control_frames_per_s: int = 1000
    h2_max_resets_per_s: int = 200

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if not isinstance(value, bool) and not value > 0:
                raise ValueError(f"HttpLimits.{name} must be > 0, got {value!r}")
        if self.max_request_line_bytes > self.max_header_bytes:
            raise ValueError(
                "HttpLimits.max_request_line_bytes must not exceed max_header_bytes "
                f"({self.max_request_line_bytes} > {self.max_header_bytes})"
            )
