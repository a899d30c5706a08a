from services.core.media.sdp import offers_data_channel


def test_a_data_channel_is_an_m_application_line() -> None:
    assert offers_data_channel(
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
    )
    assert not offers_data_channel("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=application-x\r\n")
