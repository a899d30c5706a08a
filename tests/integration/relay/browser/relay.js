// A browser client of the media relay for tests/integration/relay/test_browser.py, which calls
// `parley.*` through WebDriver. The page's server passes each SDP offer to the relay's gRPC API and
// returns the answer. Media stays on loopback: no ICE servers, and only 127.x candidates are exchanged.
"use strict";

const parley = (() => {
  const peers = [];

  // The relay listens on 127.0.0.1 only; the machine's other addresses must not appear in what is sent,
  // nor be tried from what is received.
  function loopbackOnly(sdp) {
    return sdp
      .split("\r\n")
      .filter((line) => !line.startsWith("a=candidate:") || line.split(" ")[4].startsWith("127."))
      .join("\r\n");
  }

  function newPeer() {
    // An empty list, not the default: no STUN request may leave the machine.
    const pc = new RTCPeerConnection({ iceServers: [] });
    peers.push(pc);
    return pc;
  }

  // The relay takes no trickled candidates: the offer goes out once gathering is complete.
  function gathered(pc) {
    return new Promise((resolve) => {
      if (pc.iceGatheringState === "complete") return resolve();
      pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") resolve();
      });
    });
  }

  async function negotiate(pc, path, request) {
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    // What Chromium gathered, before filtering: the tests check it offers 127.0.0.1 and no mDNS name.
    const candidates = pc.localDescription.sdp
      .split("\r\n")
      .filter((line) => line.startsWith("a=candidate:"))
      .map((line) => line.split(" ")[4]);
    const offer = loopbackOnly(pc.localDescription.sdp);
    const response = await fetch(path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...request, sdp: offer }),
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(`${path}: ${answer.error}`);
    await pc.setRemoteDescription({ type: "answer", sdp: loopbackOnly(answer.sdp) });
    return { candidates, offer, answer: answer.sdp, tracks: answer.tracks, id: answer.id };
  }

  // Publishes the fake camera and microphone (--use-fake-device-for-media-stream).
  async function publish(room, feed, uid) {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: true,
      video: { width: 320, height: 240, frameRate: 30 },
    });
    const pc = newPeer();
    for (const track of stream.getTracks()) pc.addTransceiver(track, { direction: "sendonly" });
    return { peer: peers.length - 1, ...(await negotiate(pc, "/publish", { room, feed, uid })) };
  }

  async function subscribe(room, feed, uid) {
    const pc = newPeer();
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    pc.addEventListener("track", ({ track }) => {
      const element = document.getElementById(`remote-${track.kind}`);
      element.srcObject = new MediaStream([track]);
    });
    pc.subscribeStarted = performance.now();
    return { peer: peers.length - 1, ...(await negotiate(pc, "/subscribe", { room, feed, uid })) };
  }

  // The parts of getStats() the tests read: per kind the inbound or outbound RTP counters, and the
  // addresses of the candidate pair ICE selected.
  async function stats(peer) {
    const pc = peers[peer];
    const report = await pc.getStats();
    const result = { connectionState: pc.connectionState, inbound: {}, outbound: {}, pair: null };
    for (const entry of report.values()) {
      const codec = report.get(entry.codecId)?.mimeType;
      if (entry.type === "inbound-rtp") {
        const { packetsReceived, framesDecoded, frameWidth, frameHeight, totalSamplesReceived } = entry;
        result.inbound[entry.kind] = {
          codec, packetsReceived, framesDecoded, frameWidth, frameHeight, totalSamplesReceived,
        };
      } else if (entry.type === "outbound-rtp") {
        const { packetsSent, framesEncoded, frameWidth, frameHeight } = entry;
        result.outbound[entry.kind] = { codec, packetsSent, framesEncoded, frameWidth, frameHeight };
      } else if (entry.type === "transport" && entry.selectedCandidatePairId) {
        const pair = report.get(entry.selectedCandidatePairId);
        result.pair = {
          local: report.get(pair.localCandidateId).address,
          remote: report.get(pair.remoteCandidateId).address,
          remotePort: report.get(pair.remoteCandidateId).port,
        };
      }
    }
    return result;
  }

  // Milliseconds from the start of subscribe() to the first decoded video frame, polled at 20 ms.
  async function firstDecodedFrame(peer, timeoutMs) {
    const pc = peers[peer];
    while (performance.now() - pc.subscribeStarted < timeoutMs) {
      const video = (await stats(peer)).inbound.video;
      if (video && video.framesDecoded > 0) return performance.now() - pc.subscribeStarted;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error(`no video frame decoded within ${timeoutMs} ms`);
  }

  function closeAll() {
    for (const pc of peers) pc.close();
  }

  return { publish, subscribe, stats, firstDecodedFrame, closeAll };
})();
