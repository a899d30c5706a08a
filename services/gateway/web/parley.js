/*
 * Parley Web SDK: the seed product's Web API (seed 002 "音视频通话", sections 3.3 and 6.3:
 * `new MeetingController()`, its methods, its callbacks assigned as properties, its error codes 6.3.4)
 * over Parley's WebSocket protocol v1 (docs/protocol.md). The seed's names are mapped to v1's here, in
 * the SDK (docs/web-sdk.md "Field names"): the wire stays v1.
 *
 * A classic script: `<script src="https://gateway/sdk/parley.js">` defines `MeetingController` (and
 * `VoipController`, the phone side of seed 003). /sdk/parley.mjs exports the same as an ES module.
 * No build step, no dependencies: plain ES2020 and the browser's WebRTC.
 */
(function (root) {
  "use strict";

  // Seed 002 6.3.4 and the callbacks' err_code lists of 6.3.2 / 6.3.3.
  const CODES = {
    CONNECT_TIMEOUT: -101,
    CONNECT_FAILED: -102,
    SIGNALLING_FAILED: 30001, // "信令连接失败错误"
    INIT_ROOM_STATE: -201,
    INIT_ROOM_PARAMS: -202,
    INIT_ROOM_DATA_CHANNEL: -203,
    CREATE_ROOM_NOT_INITIALISED: -301,
    CREATE_ROOM_SERVER: -302,
    CREATE_ROOM_TIMEOUT: -303,
    JOIN_ROOM_NOT_INITIALISED: -401,
    JOIN_ROOM_PARAMS: -402,
    JOIN_ROOM_SERVER: -403,
    JOIN_ROOM_TIMEOUT: -404,
    INVITE_ROOM_STATE: -501,
    INVITE_SERVER: -502,
    INVITE_PARAMS: -503,
    REPLY_INVITE_ROOM_STATE: -601,
    REPLY_INVITE_SERVER: -602,
    PUBLISH_SERVER: -1071,
    PUBLISH_NO_VIDEO_TAG: -1072,
    PUBLISH_LINK_TIMEOUT: -1074,
    SUBSCRIBE_SERVER: -1081,
    SUBSCRIBE_VIDEO_ID_USED: -1082,
    SUBSCRIBE_LINK_FAILED: -1084,
    SUBSCRIBE_VIDEO_ID_EMPTY: -1085,
    SUBSCRIBE_NO_ELEMENT: -1086,
    SUBSCRIBE_ROOM_STATE: -1087,
    VIDEO_START_FAILED: 5101, // OnMediaCallFail
    AUDIO_START_FAILED: 5102,
    BROWSER_UNSUPPORTED: 5103,
    TEXT_SERVER: -10291,
    DEVICES_UNSUPPORTED: -30101,
    DEVICES_FAILED: -30102,
  };

  // Seed 002 video_profile_type: 1 720P, 2 VGA, 3 360P, 4 720P portrait (the rest are the same shapes).
  const VIDEO_PROFILES = {
    1: { width: 1280, height: 720 },
    2: { width: 640, height: 480 },
    3: { width: 640, height: 360 },
    4: { width: 720, height: 1280 },
  };

  // A link that has not connected after this long is the seed's "媒体链路连接超时" (-1074 / -1084).
  const LINK_TIMEOUT_MS = 15000;

  /** `Invite(invitee, channelType, extra)` or `Invite({invitee, channelType, extra})`: the seed shows
   * positional parameters in some places and a config_param object in others; both are accepted. */
  function named(args, names) {
    const first = args[0];
    if (args.length === 1 && first !== null && typeof first === "object" && !Array.isArray(first)) {
      return first;
    }
    const out = {};
    names.forEach((name, index) => {
      out[name] = args[index];
    });
    return out;
  }

  /** room_server_url as the seed's customers write it (an https:// or wss:// server address) → /ws/v1. */
  function websocketUrl(roomServerUrl) {
    const url = new URL(roomServerUrl || "/ws/v1", root.location ? root.location.href : undefined);
    if (url.protocol === "http:") url.protocol = "ws:";
    if (url.protocol === "https:") url.protocol = "wss:";
    if (url.pathname === "/" || url.pathname === "") url.pathname = "/ws/v1";
    return url.toString();
  }

  function element(id) {
    return id && root.document ? root.document.getElementById(id) : null;
  }

  function show(id, stream) {
    const target = element(id);
    if (target) {
      target.srcObject = stream;
      const playing = target.play && target.play();
      if (playing && playing.catch) playing.catch(() => {});
    }
  }

  function label(id, text) {
    const target = element(id);
    if (target) target.textContent = text;
  }

  async function gathered(pc) {
    // Protocol v1 takes a complete offer: no trickle ICE with the relay.
    if (pc.iceGatheringState === "complete") return;
    await new Promise((resolve) => {
      const check = () => {
        if (pc.iceGatheringState === "complete") {
          pc.removeEventListener("icegatheringstatechange", check);
          resolve();
        }
      };
      pc.addEventListener("icegatheringstatechange", check);
    });
  }

  function connected(pc, timeoutMs) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the media link did not connect")), timeoutMs);
      const check = () => {
        if (pc.connectionState === "connected") {
          clearTimeout(timer);
          resolve();
        } else if (pc.connectionState === "failed") {
          clearTimeout(timer);
          reject(new Error("the media link failed"));
        }
      };
      pc.addEventListener("connectionstatechange", check);
      check();
    });
  }

  /** The seed's feed JSON (OnNewPublish, OnRoomAttendanceList): feedId and tag, from v1's feed. */
  function seedFeed(feed) {
    return { uid: feed.uid, feedId: feed.feed_id, tag: feed.tag, mediaType: feed.media_type };
  }

  class ProtocolError extends Error {
    constructor(code, msg) {
      super(msg);
      this.code = code;
    }
  }

  class MeetingController {
    constructor() {
      this._ws = null;
      this._nextReqId = 1;
      this._pending = new Map();
      this._iceServers = [];
      this._roomConfig = null;
      this._roomId = "";
      this._engine = 0;
      this._codecType = null;
      this._publications = new Map(); // sid (feed_id) -> {pc, stream, tag}
      this._subscriptions = new Map(); // sid (subscription_id) -> {pc, feedId, videoId, audioId}
      this._feeds = new Map(); // feed_id -> seed feed of the room's other participants
      this._freeSubscribeSlots = [];
      this.codes = CODES;
    }

    // ---- callbacks: the page assigns them (`controller.OnConnectOK = () => ...`) ----

    _emit(name, ...args) {
      const callback = this[name];
      if (typeof callback !== "function") return;
      try {
        callback.apply(this, args);
      } catch (error) {
        if (root.console) root.console.error(`${name} threw`, error);
      }
    }

    // ---- the WebSocket ----

    _request(cmd, params) {
      if (!this._ws || this._ws.readyState !== 1) {
        return Promise.reject(new ProtocolError(CODES.SIGNALLING_FAILED, "not connected"));
      }
      const reqId = String(this._nextReqId++);
      return new Promise((resolve, reject) => {
        this._pending.set(reqId, { resolve, reject });
        this._ws.send(JSON.stringify({ cmd, req_id: reqId, params: params || {} }));
      });
    }

    _onMessage(text) {
      const message = JSON.parse(text);
      if (message.event) {
        this._onPush(message.event, message.data || {});
        return;
      }
      const waiting = this._pending.get(message.req_id);
      if (!waiting) return;
      this._pending.delete(message.req_id);
      if (message.code === 0) waiting.resolve(message.data || {});
      else waiting.reject(new ProtocolError(message.code, message.msg));
    }

    _failAll(reason) {
      for (const waiting of this._pending.values()) {
        waiting.reject(new ProtocolError(CODES.SIGNALLING_FAILED, reason));
      }
      this._pending.clear();
    }

    /** Connect(config_param): uid, room_server_url, biz_name, sub_biz, sign (seed 002 6.3.2);
     * workspace_id is optional (the server knows the app's). */
    Connect(config_param) {
      const config = config_param || {};
      let ws;
      try {
        ws = new WebSocket(websocketUrl(config.room_server_url));
      } catch (error) {
        this._emit("OnConnectFailed", CODES.SIGNALLING_FAILED, String(error));
        return;
      }
      this._ws = ws;
      let opened = false;
      ws.onopen = () => {
        opened = true;
        const params = { uid: String(config.uid), biz_name: config.biz_name, sub_biz: config.sub_biz, sign: config.sign };
        if (config.workspace_id) params.workspace_id = config.workspace_id;
        this._request("connect", params).then(
          (data) => {
            this.uid = data.uid;
            this._iceServers = data.ice_servers || [];
            this._emit("OnConnectOK");
          },
          (error) => this._emit("OnConnectFailed", error.code, error.message),
        );
      };
      ws.onmessage = (event) => this._onMessage(event.data);
      ws.onclose = (event) => {
        this._failAll(`connection closed (${event.code})`);
        this._closeMedia();
        this._ws = null;
        if (opened) this._emit("OnConnectClose", event.code);
        else this._emit("OnConnectFailed", CODES.SIGNALLING_FAILED, "the signalling connection failed");
      };
    }

    /** Disconnect(): closes every stream, leaves the room, closes the connection (OnConnectClose). */
    Disconnect() {
      this._closeMedia();
      if (!this._ws) return;
      this._request("disconnect", {}).catch(() => {});
    }

    // ---- rooms ----

    /** InitRoomConfig(config_param): auto_publish_subscribe, engine, media_type, publish_device,
     * video_profile_type, initPublish, initSubscribe, defaultRecord, recordStrongDepend, recordParam... */
    InitRoomConfig(config_param) {
      const config = Object.assign({}, config_param || {});
      const mode = config.auto_publish_subscribe;
      if (![1, 2, 3, 4].includes(mode)) {
        this._emit("OnInitRoomConfigFail", CODES.INIT_ROOM_PARAMS, "auto_publish_subscribe must be 1, 2, 3 or 4");
        return;
      }
      const engine = config.engine === undefined ? 0 : config.engine;
      if (engine !== 0) {
        // Engine 1 (ALIYUN) is not offered; engine 2 (P2P) is in protocol v1 but not in this SDK yet.
        this._emit("OnInitRoomConfigFail", CODES.INIT_ROOM_PARAMS, `engine ${engine} is not supported by this SDK`);
        return;
      }
      if (config.enableDataChannel) {
        this._emit("OnInitRoomConfigFail", CODES.INIT_ROOM_DATA_CHANNEL, "a Data Channel needs engine 2 (P2P)");
        return;
      }
      if ((mode === 2 || mode === 3) && (!config.media_type || !config.publish_device)) {
        this._emit("OnInitRoomConfigFail", CODES.INIT_ROOM_PARAMS, "auto publish needs media_type and publish_device");
        return;
      }
      this._roomConfig = config;
      this._engine = engine;
      // The seed's examples pad initSubscribe with empty objects ([{...}, {}, {}]): those are no windows.
      this._freeSubscribeSlots = (config.initSubscribe || []).filter((slot) => slot && (slot.subscribe_video_id || slot.subscribe_audio_id));
      this._emit("OnInitRoomConfigOK");
    }

    /** CreateRoom(sign) or CreateRoom({sign}): OnCreateRoomSucc(room_id, rtoken). The signature is the
     * connection's: Parley checks it at Connect. */
    CreateRoom() {
      if (!this._roomConfig) {
        this._emit("OnCreateRoomFailed", CODES.CREATE_ROOM_NOT_INITIALISED, "call InitRoomConfig first");
        return;
      }
      const config = this._roomConfig;
      const ext = {};
      for (const key of ["defaultRecord", "recordStrongDepend", "recordParam"]) {
        if (config[key] !== undefined) ext[key] = config[key];
      }
      this._request("create_room", { ext, engine: this._engine }).then(
        (data) => {
          this._roomId = data.room_id;
          this._emit("OnCreateRoomSucc", data.room_id, data.rtoken);
          this._autoPublish();
        },
        (error) => this._emit("OnCreateRoomFailed", error.code, error.message),
      );
    }

    /** JoinRoom(room_id, rtoken, sign) or JoinRoom({room_id, rtoken, sign}): OnJoinRoomSucc(). */
    JoinRoom(...args) {
      const params = named(args, ["room_id", "rtoken", "sign"]);
      if (!this._roomConfig) {
        this._emit("OnJoinRoomFailed", CODES.JOIN_ROOM_NOT_INITIALISED, "call InitRoomConfig first");
        return;
      }
      const roomId = params.room_id || params.roomId;
      if (!roomId || !params.rtoken) {
        this._emit("OnJoinRoomFailed", CODES.JOIN_ROOM_PARAMS, "room_id and rtoken are required");
        return;
      }
      this._request("join_room", { room_id: roomId, rtoken: params.rtoken }).then(
        () => {
          this._roomId = roomId;
          this._emit("OnJoinRoomSucc");
          this._autoPublish();
        },
        (error) => this._emit("OnJoinRoomFailed", error.code, error.message),
      );
    }

    /** LeaveRoom(): closes this client's streams; OnLeaveRoom(1). */
    LeaveRoom() {
      this._closeMedia();
      this._request("leave_room", {}).then(
        () => this._left(1),
        () => this._left(1),
      );
    }

    _left(leaveType) {
      this._closeMedia();
      this._roomId = "";
      this._feeds.clear();
      this._emit("OnLeaveRoom", leaveType);
    }

    /** Invite(invitee, channelType, extra) or Invite({invitee, channelType, extra}); invitee may be a
     * uid or an array of uids. channelType is the seed's push channel; Parley pushes on the connection. */
    Invite(...args) {
      const params = named(args, ["invitee", "channelType", "extra"]);
      const uids = Array.isArray(params.invitee) ? params.invitee : [params.invitee];
      const wire = { uids };
      if (params.extra !== undefined) wire.extra = params.extra;
      this._request("invite", wire).then(
        () => this._emit("OnInviteOK"),
        (error) => this._emit("OnInviteFail", error.code, error.message),
      );
    }

    /** ReplyInvite(roomId, inviter, reply) or ReplyInvite({roomId, inviter, reply}): 0 answer, 2 reject. */
    ReplyInvite(...args) {
      const params = named(args, ["roomId", "inviter", "reply"]);
      const wire = { room_id: params.roomId || params.room_id, reply: params.reply };
      if (params.inviter) wire.inviter = params.inviter;
      this._request("reply_invite", wire).then(
        () => this._emit("OnReplyInviteOK"),
        (error) => this._emit("OnReplyInviteFail", error.code, error.message),
      );
    }

    /** SendTextMsg(msg, participants) or SendTextMsg({msg, participants}): OnSendTextMsgSucc(msgId). */
    SendTextMsg(...args) {
      const params = named(args, ["msg", "participants"]);
      const wire = { text: params.msg };
      if (params.participants && params.participants.length) wire.peers = params.participants;
      this._request("send_text", wire).then(
        (data) => this._emit("OnSendTextMsgSucc", data.msg_id),
        (error) => this._emit("OnSendTextMsgFailed", "", error.code, params.msg),
      );
    }

    // ---- media ----

    _peer() {
      return new RTCPeerConnection({ iceServers: this._iceServers });
    }

    async _localStream(config) {
      if (config.publish_device === 5 && config.stream) return config.stream;
      if (config.publish_device !== 1) {
        throw new ProtocolError(CODES.BROWSER_UNSUPPORTED, `publish_device ${config.publish_device} is not supported by this SDK`);
      }
      const mediaType = config.media_type || 1;
      const wantAudio = mediaType !== 3 && config.enableAudio !== false;
      const wantVideo = mediaType !== 2 && config.enableVideo !== false;
      let video = false;
      if (wantVideo) {
        video = Object.assign({}, VIDEO_PROFILES[config.video_profile_type] || {});
        if (config.video_profile_type === 100 && config.video_profile_diy) {
          video = { width: config.video_profile_diy.width, height: config.video_profile_diy.height, frameRate: config.video_profile_diy.frameRate };
        }
        if (config.videoSource) video.deviceId = { exact: config.videoSource };
      }
      let audio = wantAudio;
      if (wantAudio && config.audioSource) audio = { deviceId: { exact: config.audioSource } };
      if (!root.navigator || !root.navigator.mediaDevices) {
        throw new ProtocolError(CODES.BROWSER_UNSUPPORTED, "this browser has no getUserMedia");
      }
      try {
        return await root.navigator.mediaDevices.getUserMedia({ audio, video });
      } catch (error) {
        throw new ProtocolError(wantVideo ? CODES.VIDEO_START_FAILED : CODES.AUDIO_START_FAILED, String(error));
      }
    }

    _preferCodec(transceiver) {
      if (!this._codecType || !root.RTCRtpSender || !RTCRtpSender.getCapabilities) return;
      const capabilities = RTCRtpSender.getCapabilities("video");
      if (!capabilities || !transceiver.setCodecPreferences) return;
      const wanted = `video/${this._codecType}`.toLowerCase();
      const codecs = capabilities.codecs;
      const preferred = codecs.filter((codec) => codec.mimeType.toLowerCase() === wanted);
      if (preferred.length) transceiver.setCodecPreferences(preferred.concat(codecs.filter((c) => !preferred.includes(c))));
    }

    /** Publish(config_param): media_type, publish_device, video_profile_type, publish_video_id,
     * publish_streamId_id, publish_tag, publish_bitrate, videoSource, audioSource...; OnPublishSucc(sid). */
    Publish(config_param) {
      this._publish(Object.assign({}, config_param || {}));
    }

    async _publish(config) {
      let stream;
      try {
        stream = await this._localStream(config);
      } catch (error) {
        this._emit("OnMediaCallFail", error.code, error.message);
        this._emit("OnPublishFailed", "", error.code, error.message);
        return;
      }
      const pc = this._peer();
      try {
        for (const track of stream.getTracks()) {
          const transceiver = pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
          if (track.kind === "video") {
            this._preferCodec(transceiver);
            if (config.publish_bitrate) {
              const parameters = transceiver.sender.getParameters();
              parameters.encodings = [{ maxBitrate: config.publish_bitrate * 1000 }];
              transceiver.sender.setParameters(parameters).catch(() => {});
            }
          }
        }
        await pc.setLocalDescription(await pc.createOffer());
        await gathered(pc);
        const wire = { media_type: config.media_type || 1, sdp: pc.localDescription.sdp };
        if (config.publish_tag) wire.tag = String(config.publish_tag);
        const data = await this._request("publish", wire);
        const sid = data.feed_id;
        this._publications.set(sid, { pc, stream, tag: config.publish_tag || "" });
        await pc.setRemoteDescription({ type: "answer", sdp: data.sdp });
        show(config.publish_video_id, stream);
        label(config.publish_streamId_id, sid);
        this._emit("OnMediaCallSucc", sid);
        try {
          await connected(pc, LINK_TIMEOUT_MS);
        } catch (error) {
          this._emit("OnPublishFailed", sid, CODES.PUBLISH_LINK_TIMEOUT, error.message);
          return;
        }
        this._emit("OnPublishSucc", sid);
      } catch (error) {
        pc.close();
        stream.getTracks().forEach((track) => track.stop());
        this._emit("OnPublishFailed", "", error.code || CODES.PUBLISH_SERVER, error.message);
      }
    }

    /** UnPublish(sid): OnUnPublishSucc(sid). */
    UnPublish(sid) {
      const publication = this._publications.get(sid);
      this._publications.delete(sid);
      if (publication) this._closePublication(publication);
      this._request("unpublish", { feed_id: sid }).then(
        () => this._emit("OnUnPublishSucc", sid),
        () => this._emit("OnUnPublishSucc", sid),
      );
    }

    /** Subscribe(config_param): feedId, subscribe_video_id, subscribe_audio_id, subscribe_streamId_id,
     * feedId_id; OnSubscribeSucc(feedId, sid). */
    Subscribe(config_param) {
      this._subscribe(Object.assign({}, config_param || {}));
    }

    async _subscribe(config) {
      const feedId = config.feedId || config.feed_id;
      const videoId = config.subscribe_video_id;
      const audioId = config.subscribe_audio_id;
      if (!videoId && !audioId) {
        this._emit("OnSubscribeFailed", "", CODES.SUBSCRIBE_NO_ELEMENT, "subscribe_video_id / subscribe_audio_id missing");
        return;
      }
      if (videoId && !element(videoId)) {
        this._emit("OnSubscribeFailed", "", CODES.SUBSCRIBE_VIDEO_ID_EMPTY, `no element ${videoId}`);
        return;
      }
      for (const subscription of this._subscriptions.values()) {
        if (videoId && subscription.videoId === videoId) {
          this._emit("OnSubscribeFailed", "", CODES.SUBSCRIBE_VIDEO_ID_USED, `${videoId} shows another stream`);
          return;
        }
      }
      const feed = this._feeds.get(feedId);
      const mediaType = feed ? feed.mediaType : 1;
      const wantAudio = Boolean(audioId || videoId) && mediaType !== 3;
      const wantVideo = Boolean(videoId) && mediaType !== 2;
      const pc = this._peer();
      const stream = new MediaStream();
      pc.ontrack = (event) => {
        stream.addTrack(event.track);
        show(videoId || audioId, stream);
      };
      try {
        if (wantAudio) pc.addTransceiver("audio", { direction: "recvonly" });
        if (wantVideo) pc.addTransceiver("video", { direction: "recvonly" });
        await pc.setLocalDescription(await pc.createOffer());
        await gathered(pc);
        const data = await this._request("subscribe", { feed_id: feedId, audio: wantAudio, video: wantVideo, sdp: pc.localDescription.sdp });
        const sid = data.subscription_id;
        this._subscriptions.set(sid, { pc, feedId, videoId, audioId, stream });
        await pc.setRemoteDescription({ type: "answer", sdp: data.sdp });
        label(config.subscribe_streamId_id, sid);
        label(config.feedId_id, feedId);
        try {
          await connected(pc, LINK_TIMEOUT_MS);
        } catch (error) {
          this._emit("OnSubscribeFailed", sid, CODES.SUBSCRIBE_LINK_FAILED, error.message);
          return;
        }
        this._emit("OnSubscribeSucc", feedId, sid);
      } catch (error) {
        pc.close();
        this._emit("OnSubscribeFailed", "", error.code || CODES.SUBSCRIBE_SERVER, error.message);
      }
    }

    /** UnSubscribe(sid): OnUnSubscribeSucc(sid). */
    UnSubscribe(sid) {
      const subscription = this._subscriptions.get(sid);
      this._subscriptions.delete(sid);
      if (!subscription) {
        this._emit("OnUnSubscribeSucc", sid);
        return;
      }
      subscription.pc.close();
      this._freeSlot(subscription);
      this._request("unsubscribe", { feed_id: subscription.feedId }).then(
        () => this._emit("OnUnSubscribeSucc", sid),
        () => this._emit("OnUnSubscribeSucc", sid),
      );
    }

    /** SetLocalAudioEnable(enabled, sid): 1 on, 0 off; the relay stops forwarding too (mute_local_audio). */
    SetLocalAudioEnable(...args) {
      this._setLocal("audio", named(args, ["enabled", "sid"]));
    }

    /** SetLocalVideoEnable(enabled, sid). */
    SetLocalVideoEnable(...args) {
      this._setLocal("video", named(args, ["enabled", "sid"]));
    }

    _setLocal(kind, params) {
      const on = Boolean(params.enabled);
      const sids = params.sid ? [params.sid] : Array.from(this._publications.keys());
      for (const sid of sids) {
        const publication = this._publications.get(sid);
        if (!publication) continue;
        publication.stream.getTracks().filter((track) => track.kind === kind).forEach((track) => {
          track.enabled = on;
        });
        this._request(`mute_local_${kind}`, { feed_id: sid, muted: !on }).catch(() => {});
      }
    }

    /** SetLocalCodecType(type): H264, VP8, VP9 or AV1, for the next Publish. */
    SetLocalCodecType(...args) {
      this._codecType = named(args, ["type"]).type || null;
    }

    /** GetDevices(): OnGetDevicesSuccess(devicesInfo) with the browser's cameras and microphones. */
    GetDevices() {
      if (!root.navigator || !root.navigator.mediaDevices) {
        this._emit("OnGetDevicesFailed", CODES.DEVICES_UNSUPPORTED, "this browser has no media devices");
        return;
      }
      root.navigator.mediaDevices.enumerateDevices().then(
        (devices) => this._emit("OnGetDevicesSuccess", {
          videoDevices: devices.filter((d) => d.kind === "videoinput").map((d) => ({ deviceId: d.deviceId, label: d.label })),
          audioDevices: devices.filter((d) => d.kind === "audioinput").map((d) => ({ deviceId: d.deviceId, label: d.label })),
        }),
        (error) => this._emit("OnGetDevicesFailed", CODES.DEVICES_FAILED, String(error)),
      );
    }

    // ---- cloud recording (seed 002 StartRemoteRecord ... GetRecordInfo) ----

    /** StartRemoteRecord({file_path, record_param, record_third_id}): OnInitRemoteRecordSucc then
     * OnStartRemoteRecordSucc(record_id, record_third_id). */
    StartRemoteRecord(config_param) {
      const config = config_param || {};
      const third = config.record_third_id || "";
      const wire = { room_id: this._roomId };
      for (const key of ["file_path", "record_param", "record_third_id"]) {
        if (config[key] !== undefined) wire[key] = config[key];
      }
      this._request("start_record", wire).then(
        (data) => {
          this._emit("OnInitRemoteRecordSucc", data.record_id, third);
          this._emit("OnStartRemoteRecordSucc", data.record_id, third);
        },
        (error) => this._emit("OnStartRemoteRecordFailed", "", error.code, error.message, third),
      );
    }

    StopRemoteRecord(...args) {
      const recordId = named(args, ["record_id"]).record_id;
      this._request("stop_record", { record_id: recordId }).then(
        () => this._emit("OnStopRecordSucc", recordId),
        (error) => this._emit("OnStopRecordFailed", recordId, error.code, error.message),
      );
    }

    PauseRemoteRecord(...args) {
      const recordId = named(args, ["record_id"]).record_id;
      this._request("pause_record", { record_id: recordId }).then(
        () => this._emit("OnPauseRemoteRecordSucc", recordId),
        (error) => this._emit("OnPauseRemoteRecordFailed", recordId, error.code, error.message),
      );
    }

    ResumeRemoteRecord(...args) {
      const recordId = named(args, ["record_id"]).record_id;
      this._request("resume_record", { record_id: recordId }).then(
        () => this._emit("OnResumeRemoteRecordSucc", recordId),
        (error) => this._emit("OnResumeRemoteRecordFailed", recordId, error.code, error.message),
      );
    }

    /** GetRecordInfo({record_id, room_id, media_type, sign}): OnRemoteRecordInfoSucc(recordInfo). */
    GetRecordInfo(...args) {
      const recordId = named(args, ["record_id", "room_id", "media_type", "sign"]).record_id;
      this._request("get_record_info", { record_id: recordId }).then(
        (data) => this._emit("OnRemoteRecordInfoSucc", data.record_info),
        (error) => this._emit("OnRemoteRecordInfoFailed", recordId, error.code, error.message),
      );
    }

    // ---- pushes: v1 events → the seed's callbacks (6.3.3) ----

    _onPush(event, data) {
      switch (event) {
        case "on_room_attendance_list": {
          const participants = (data.participants || []).map((p) => ({
            uid: p.uid,
            userType: p.user_type,
            publish: (p.publish || []).map((feed) => seedFeed(Object.assign({ uid: p.uid }, feed))),
          }));
          participants.forEach((p) => p.publish.forEach((feed) => this._feeds.set(feed.feedId, feed)));
          this._emit("OnRoomAttendanceList", participants);
          participants.forEach((p) => p.publish.forEach((feed) => this._autoSubscribe(feed)));
          break;
        }
        case "on_new_joiner_in":
          this._emit("OnNewJoinerIn", data.participant);
          break;
        case "on_participant_leave_room":
          for (const [feedId, feed] of this._feeds) if (feed.uid === data.participant) this._feeds.delete(feedId);
          this._emit("OnParticipantLeaveRoom", data.participant, data.exit_type);
          break;
        case "on_leave_room":
          this._left(data.leave_type);
          break;
        case "on_new_publish": {
          const feed = seedFeed(data.feed);
          this._feeds.set(feed.feedId, feed);
          this._emit("OnNewPublish", feed);
          this._autoSubscribe(feed);
          break;
        }
        case "on_unpublish":
          this._feeds.delete(data.feed.feed_id);
          this._emit("OnUnPublish", seedFeed(data.feed)); // Parley's: the seed has no such callback
          break;
        case "on_new_subscribe":
          this._emit("OnNewSubscribe", data.subscriber, seedFeed(data.feed));
          break;
        case "on_unsubscribe":
          this._emit("OnUnSubscribe", data.subscriber, seedFeed(data.feed));
          break;
        case "on_media_close": {
          const sid = data.subscription_id || data.feed_id;
          this._dropStream(sid);
          this._emit("OnMediaClose", data.code, sid);
          break;
        }
        case "on_network_weak":
          this._emit("OnNetworkWeak", data.bpsSend, data.bpsRecv, data.sid);
          break;
        case "on_receive_text_msg":
          this._emit("OnReceiveTextMsg", data.uid, data.text);
          break;
        case "on_invite_request":
          this._emit("OnInviteRequest", data.room_id, data.rtoken, data.inviter, data.extra);
          break;
        case "on_invite_reply":
          this._emit("OnInviteReply", data.invitee, data.reply);
          break;
        case "on_remote_mute":
          this._emit("OnRemoteMute", data.feed_id, data.uid, data.audio_muted, data.video_muted); // Parley's
          break;
        case "on_remote_record_over":
          this._emit("OnRemoteRecordOver", data.record_id);
          break;
        case "on_remote_recording_failed":
          this._emit("OnRemoteRecordingFailed", data.record_id, data.feed_id, data.code, data.msg);
          break;
        default:
          this._onOtherPush(event, data);
      }
    }

    _onOtherPush() {}

    // ---- auto publish / subscribe (InitRoomConfig auto_publish_subscribe 1-3) ----

    _autoPublish() {
      const config = this._roomConfig;
      if (!config || (config.auto_publish_subscribe !== 2 && config.auto_publish_subscribe !== 3)) return;
      const targets = config.initPublish && config.initPublish.length ? config.initPublish : [{}];
      this._publish(Object.assign({}, config, targets[0]));
    }

    _autoSubscribe(feed) {
      const config = this._roomConfig;
      if (!config || (config.auto_publish_subscribe !== 1 && config.auto_publish_subscribe !== 3)) return;
      const slot = this._freeSubscribeSlots.shift();
      if (!slot) return;
      this._subscribe(Object.assign({}, slot, { feedId: feed.feedId }));
    }

    _freeSlot(subscription) {
      const config = this._roomConfig;
      const slot = config && (config.initSubscribe || []).find((s) => s && s.subscribe_video_id === subscription.videoId && s.subscribe_audio_id === subscription.audioId);
      if (slot && (slot.subscribe_video_id || slot.subscribe_audio_id)) this._freeSubscribeSlots.push(slot);
    }

    _dropStream(sid) {
      const publication = this._publications.get(sid);
      if (publication) {
        this._publications.delete(sid);
        this._closePublication(publication);
      }
      const subscription = this._subscriptions.get(sid);
      if (subscription) {
        this._subscriptions.delete(sid);
        subscription.pc.close();
        this._freeSlot(subscription);
      }
    }

    _closePublication(publication) {
      publication.pc.close();
      publication.stream.getTracks().forEach((track) => track.stop());
    }

    _closeMedia() {
      for (const sid of Array.from(this._publications.keys())) this._dropStream(sid);
      for (const sid of Array.from(this._subscriptions.keys())) this._dropStream(sid);
    }
  }

  /**
   * The phone side (seed 003, wmpf-voip): a user of the app answers, rejects and hangs up a device's
   * call, and calls a device (initByCaller). Events reach `onVoipEvent` listeners as {eventName, callId,
   * ...}: "ringing" (a device calls), "dialing" (this user calls a device), "answered", "calling" (every
   * second while answered, with keepTime in ms and timeLimit in s), "error", and
   * "end" (with reason hang_up / rejected / no_answer / time_limit / network / answered_elsewhere, by,
   * keepTime). Answering joins the call's room and publishes the camera; the device's feed is shown in
   * `remote_video_id`.
   */
  class VoipController extends MeetingController {
    constructor(options) {
      super();
      this._options = Object.assign({ media_type: 1, publish_device: 1, video_profile_type: 2 }, options || {});
      this._listeners = [];
      this._call = null;
      this.InitRoomConfig({ auto_publish_subscribe: 4 });
    }

    onVoipEvent(listener) {
      this._listeners.push(listener);
    }

    offVoipEvent(listener) {
      this._listeners = this._listeners.filter((l) => l !== listener);
    }

    _voipEvent(eventName, fields) {
      const event = Object.assign({ eventName }, fields);
      for (const listener of this._listeners) {
        try {
          listener(event);
        } catch (error) {
          if (root.console) root.console.error("onVoipEvent listener threw", error);
        }
      }
    }

    /** Answer the ringing call: join its room, publish the camera, show the device's feed. */
    async answer(callId) {
      const id = callId || (this._call && this._call.callId);
      const data = await this._request("answer_call", { call_id: id });
      await this._enterCall(id, data.room_id, data.rtoken);
    }

    /** Seed 003 initByCaller: this user calls a device it is authorised for. `sn` (also `deviceId` or
     * `callee`), `roomType` "video" or "voice", `timeLimit` in seconds. Resolves with the call id once
     * the device rings; "answered" follows when it answers. */
    async initByCaller(options) {
      const config = options || {};
      const sn = config.sn || config.deviceId || config.callee;
      const media = config.roomType === "voice" || config.media === "audio" ? "audio" : "video";
      const params = { sn, media };
      if (config.timeLimit) params.time_limit_s = config.timeLimit;
      const data = await this._request("call", params);
      this._call = { callId: data.call_id, sn, media, timeLimit: config.timeLimit || 0, outgoing: true };
      this._voipEvent("dialing", { callId: data.call_id, sn, media, timeLimit: config.timeLimit || 0 });
      return data.call_id;
    }

    async _enterCall(callId, roomId, rtoken) {
      this._call = Object.assign(this._call || {}, { callId, answeredAt: Date.now() });
      this._voipEvent("answered", { callId, roomId });
      await this._request("join_room", { room_id: roomId, rtoken });
      this._roomId = roomId;
      this._startTicking();
      const options = this._options;
      await this._publish({
        media_type: this._call.media === "audio" ? 2 : options.media_type,
        publish_device: options.publish_device,
        video_profile_type: options.video_profile_type,
        publish_video_id: options.local_video_id,
        publish_tag: "phone",
      });
    }

    async reject(callId) {
      const id = callId || (this._call && this._call.callId);
      await this._request("reject_call", { call_id: id });
    }

    /** Seed 003 forceHangUpVoip: end the current call from this side. */
    async forceHangUpVoip() {
      if (!this._call) return;
      await this._request("hang_up", { call_id: this._call.callId });
    }

    _startTicking() {
      this._stopTicking();
      this._ticker = setInterval(() => {
        if (!this._call || !this._call.answeredAt) return;
        this._voipEvent("calling", { callId: this._call.callId, keepTime: Date.now() - this._call.answeredAt, timeLimit: this._call.timeLimit });
      }, 1000);
    }

    _stopTicking() {
      if (this._ticker) clearInterval(this._ticker);
      this._ticker = null;
    }

    _onOtherPush(event, data) {
      if (event === "on_call_incoming") {
        this._call = { callId: data.call_id, sn: data.sn, media: data.media, timeLimit: data.time_limit_s || 0 };
        this._voipEvent("ringing", { callId: data.call_id, sn: data.sn, media: data.media, timeLimit: data.time_limit_s || 0 });
      } else if (event === "on_call_answered" && this._call && this._call.outgoing && this._call.callId === data.call_id) {
        const report = (error) => this._voipEvent("error", { callId: data.call_id, code: error.code, msg: error.message });
        this._enterCall(data.call_id, data.room_id, data.rtoken).catch(report);
      } else if (event === "on_call_end") {
        this._stopTicking();
        this._closeMedia();
        this._roomId = "";
        if (this._call && this._call.callId === data.call_id) this._call = null;
        this._voipEvent("end", { callId: data.call_id, reason: data.reason, by: data.by, keepTime: data.keep_time_ms });
      }
    }

    _onPush(event, data) {
      super._onPush(event, data);
      // The device's feed: shown as soon as it is published (or already there when we join).
      const remote = this._options.remote_video_id;
      if (!remote || !this._call) return;
      const feeds = event === "on_new_publish" ? [data.feed] : event === "on_room_attendance_list" ? (data.participants || []).flatMap((p) => (p.publish || []).map((f) => Object.assign({ uid: p.uid }, f))) : [];
      for (const feed of feeds) {
        if (feed.uid !== this.uid) this._subscribe({ feedId: feed.feed_id, subscribe_video_id: remote });
      }
    }
  }

  root.MeetingController = MeetingController;
  root.VoipController = VoipController;
})(typeof globalThis !== "undefined" ? globalThis : this);
