// The Parley operator console (docs/console.md): one page per area, each a few calls to the operator HTTP
// API of the gateway that served it. Plain script, no build step; uPlot (vendor/) draws the usage trend.
"use strict";

(() => {
  const TOKEN_KEY = "parley.console.token";
  const APP_KEY = "parley.console.app";
  const page = document.getElementById("page");
  const picker = document.getElementById("app-picker");
  const signOut = document.getElementById("sign-out");
  let apps = [];

  // ---- DOM and API helpers ----------------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
      else if (name === "dataset") Object.assign(element.dataset, value);
      else element.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      element.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return element;
  }

  // replaceChildren, leaving out the null and false of optional parts.
  function put(element, ...children) {
    element.replaceChildren(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  }

  class ApiError extends Error {
    constructor(status, body) {
      super(body.msg || `HTTP ${status}`);
      this.status = status;
      this.code = body.code;
      this.reason = body.reason;
    }
  }

  // The operator routes refuse with UNAUTHENTICATED; other 401s (a bad signature) are answers to show.
  function needsSignIn(error) {
    return error instanceof ApiError && error.reason === "UNAUTHENTICATED";
  }

  function authHeaders() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    return token ? { Authorization: `Bearer ${token}` } : {};
  }

  async function api(method, path, body) {
    const headers = authHeaders();
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 204) return null;
    const text = await response.text();
    const answer = text ? JSON.parse(text) : null;
    if (!response.ok) {
      const error = new ApiError(response.status, answer || {});
      if (needsSignIn(error)) showLogin(error);
      throw error;
    }
    return answer;
  }

  const appPath = (suffix) => `/v1/apps/${encodeURIComponent(currentApp())}${suffix}`;

  function currentApp() {
    return picker.value;
  }

  function field(label, name, input) {
    input.name = name;
    input.id = `f-${name}-${Math.random().toString(36).slice(2, 8)}`;
    const isCheck = input.type === "checkbox";
    const wrap = h("div", { class: isCheck ? "field check" : "field", dataset: { field: name } });
    if (isCheck) wrap.append(input, h("label", { for: input.id }, label));
    else wrap.append(h("label", { for: input.id }, label), input);
    wrap.append(h("span", { class: "field-error", role: "alert" }));
    return wrap;
  }

  const text = (attrs) => h("input", { type: "text", ...attrs });

  function select(options, attrs) {
    return h("select", attrs || {}, options.map(([value, label]) => h("option", { value }, label)));
  }

  function clearErrors(form) {
    form.querySelectorAll(".field.invalid").forEach((wrap) => wrap.classList.remove("invalid"));
    form.querySelectorAll(".field-error, .form-error").forEach((slot) => (slot.textContent = ""));
  }

  // The API names the field first, as the request has it ("name: String should have at least 1
  // character") or as the service does ("record_callback_url must be an http or https URL"); the message
  // goes next to that field when the form has it, else under the form.
  function showError(form, error) {
    const message = error instanceof ApiError ? `${error.message} (${error.code})` : String(error.message || error);
    const match = /^([A-Za-z_][\w.]*)\b/.exec(error.message || "");
    const name = match && match[1].split(".").pop().replace(/_([a-z])/g, (_, letter) => letter.toUpperCase());
    const wrap = name && form.querySelector(`.field[data-field="${name}"]`);
    if (wrap) {
      wrap.classList.add("invalid");
      wrap.querySelector(".field-error").textContent = message;
      return;
    }
    let slot = form.querySelector(".form-error");
    if (!slot) {
      slot = h("div", { class: "form-error", role: "alert" });
      form.append(slot);
    }
    slot.textContent = message;
  }

  function requireFields(form, names) {
    for (const name of names) {
      const input = form.elements[name];
      if (!input.value.trim()) {
        showError(form, { message: `${name}: required` });
        return false;
      }
    }
    return true;
  }

  // A form whose submit runs `action`; its errors show in it, and its button is disabled meanwhile.
  function form(attrs, children, action) {
    const element = h("form", { class: "inline", novalidate: true, ...attrs }, children);
    element.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(element);
      const button = element.querySelector("button[type=submit]");
      if (button) button.disabled = true;
      try {
        await action(element);
      } catch (error) {
        showError(element, error);
      } finally {
        if (button) button.disabled = false;
      }
    });
    return element;
  }

  // A button whose click runs `action`; a failure shows in a notice after it.
  function actionButton(label, action, attrs) {
    const button = h("button", { type: "button", ...(attrs || {}) }, label);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await action(button);
      } catch (error) {
        notice(button.closest("section") || page, `${label}: ${error.message}`, "bad");
      } finally {
        button.disabled = false;
      }
    });
    return button;
  }

  function notice(where, message, kind) {
    const box = h("div", { class: `notice ${kind || ""}`, role: "status" }, message);
    where.querySelectorAll(":scope > .notice.transient").forEach((old) => old.remove());
    box.classList.add("transient");
    const heading = where.querySelector(":scope > h2");
    if (heading) heading.after(box);
    else where.prepend(box);
    return box;
  }

  function table(columns, rows, empty, attrs) {
    if (!rows.length) return h("p", { class: "empty" }, empty);
    return h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        attrs || {},
        h("thead", {}, h("tr", {}, columns.map((column) => h("th", { class: column.num ? "num" : "" }, column.label)))),
        h(
          "tbody",
          {},
          rows.map((row) =>
            h(
              "tr",
              { dataset: row.key ? { key: row.key } : {} },
              columns.map((column) => h("td", { class: column.num ? "num" : "" }, column.cell(row.item))),
            ),
          ),
        ),
      ),
    );
  }

  const card = (title, ...children) => h("section", { class: "card" }, h("h2", {}, title), ...children);
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
  const minutes = (ms) => (ms / 60000).toFixed(2);

  function needApp() {
    if (currentApp()) return false;
    page.append(card("No app yet", h("p", { class: "empty" }, "Create an app on the Apps page first; then pick it at the top.")));
    return true;
  }

  function unavailable(where, area, error) {
    where.append(
      h(
        "div",
        { class: "notice bad", role: "status" },
        `${area} is not available: ${error.message}${error.code ? ` (${error.code})` : ""}. ` +
          "Is its service running? `parley status` lists them.",
      ),
    );
  }

  // ---- Sign-in ---------------------------------------------------------------------------------------

  function showLogin(error) {
    put(page,
      h("h1", {}, "Sign in"),
      card(
        "Operator token",
        h("p", {}, "This gateway has an operator token (PARLEY_GATEWAY__OPERATOR_TOKEN); the console sends it with every request."),
        form(
          { id: "login" },
          [
            field("Token", "token", h("input", { type: "password", autocomplete: "current-password" })),
            h("button", { type: "submit" }, "Sign in"),
          ],
          async (element) => {
            if (!requireFields(element, ["token"])) return;
            sessionStorage.setItem(TOKEN_KEY, element.elements.token.value.trim());
            try {
              await loadApps();
            } catch (failure) {
              sessionStorage.removeItem(TOKEN_KEY);
              throw failure;
            }
            route();
          },
        ),
        error && error.code !== undefined && sessionStorage.getItem(TOKEN_KEY)
          ? h("div", { class: "notice bad" }, "The token was refused.")
          : null,
      ),
    );
  }

  signOut.addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin();
  });

  // ---- The app picker --------------------------------------------------------------------------------

  async function loadApps(selected) {
    apps = await api("GET", "/v1/apps");
    const keep = selected || picker.value || sessionStorage.getItem(APP_KEY);
    put(picker,
      ...(apps.length ? [] : [h("option", { value: "" }, "no apps yet")]),
      ...apps.map((app) => h("option", { value: app.bizName }, `${app.name} (${app.bizName})`)),
    );
    if (apps.some((app) => app.bizName === keep)) picker.value = keep;
    sessionStorage.setItem(APP_KEY, picker.value);
    signOut.hidden = !sessionStorage.getItem(TOKEN_KEY);
  }

  picker.addEventListener("change", () => {
    sessionStorage.setItem(APP_KEY, picker.value);
    route();
  });

  // ---- Apps ------------------------------------------------------------------------------------------

  function settingsFields(settings) {
    const values = settings || {};
    return [
      field("Auto-record every room", "autoRecord", h("input", { type: "checkbox", checked: values.autoRecord })),
      field("Recording callback URL", "recordCallbackUrl", h("input", { type: "url", value: values.recordCallbackUrl || "" })),
      field("Room status callback URL", "roomStatusCallbackUrl", h("input", { type: "url", value: values.roomStatusCallbackUrl || "" })),
      field("Media proxy", "mediaProxy", text({ value: values.mediaProxy || "", placeholder: "empty: none" })),
    ];
  }

  function settingsOf(element) {
    return {
      autoRecord: element.elements.autoRecord.checked,
      recordCallbackUrl: element.elements.recordCallbackUrl.value.trim(),
      roomStatusCallbackUrl: element.elements.roomStatusCallbackUrl.value.trim(),
      mediaProxy: element.elements.mediaProxy.value.trim(),
    };
  }

  function keyPanel(privateKey, fresh) {
    return h(
      "div",
      { class: "key-panel" },
      h(
        "div",
        { class: "notice" },
        fresh
          ? "The app's private key: copy it into your backend, which signs its users with it. Reveal key shows it again."
          : "The app's private key: keep it on your backend only.",
      ),
      h("div", { class: "secret", id: "private-key" }, privateKey),
    );
  }

  async function renderApps() {
    page.append(h("h1", {}, "Apps"));
    const created = h("div");
    page.append(
      card(
        "Create an app",
        form(
          { id: "create-app" },
          [field("Name", "name", text({ placeholder: "Doorbells" })), ...settingsFields(), h("button", { type: "submit" }, "Create")],
          async (element) => {
            if (!requireFields(element, ["name"])) return;
            const app = await api("POST", "/v1/apps", { name: element.elements.name.value.trim(), settings: settingsOf(element) });
            await loadApps(app.bizName);
            await route();
            document.querySelector("#app-detail > h2").after(keyPanel(app.privateKey, true));
          },
        ),
        created,
      ),
    );
    page.append(
      card(
        "Your apps",
        table(
          [
            { label: "Name", cell: (app) => app.name },
            { label: "bizName", cell: (app) => h("code", {}, app.bizName) },
            { label: "appId", cell: (app) => h("code", {}, app.appId) },
            { label: "Created", cell: (app) => when(app.createdAt) },
            {
              label: "",
              cell: (app) =>
                actionButton("Open", async () => {
                  picker.value = app.bizName;
                  sessionStorage.setItem(APP_KEY, app.bizName);
                  await route();
                }, { class: "quiet" }),
            },
          ],
          apps.map((app) => ({ key: app.bizName, item: app })),
          "No apps yet: create one above. Each app has its own key pair, devices, recordings and usage.",
          { id: "apps-table" },
        ),
      ),
    );
    const app = apps.find((candidate) => candidate.bizName === currentApp());
    if (!app) return;
    page.querySelector(`tr[data-key="${CSS.escape(app.bizName)}"]`)?.classList.add("selected");
    const detail = card(`App ${app.name}`);
    detail.id = "app-detail";
    const keyOut = h("div");
    detail.append(
      h("p", {}, "bizName ", h("code", {}, app.bizName), " · appId ", h("code", {}, app.appId), " · workspaceId ", h("code", {}, app.workspaceId)),
      h(
        "div",
        { class: "actions" },
        actionButton("Reveal key", async () => {
          if (!confirm(`Show the private key of ${app.name}? Anyone who sees it can sign for the app.`)) return;
          const revealed = await api("POST", appPath("/reveal-key"));
          put(keyOut, keyPanel(revealed.privateKey, false));
        }, { id: "reveal-key", class: "quiet" }),
        actionButton("Rotate key", async () => {
          if (!confirm(`Replace the key pair of ${app.name}? Signatures made with the old key stop working.`)) return;
          const rotated = await api("POST", appPath("/rotate-key"));
          put(keyOut, keyPanel(rotated.privateKey, true));
        }, { class: "quiet" }),
        actionButton("Delete app", async () => {
          if (!confirm(`Delete ${app.name} (${app.bizName})? Its devices can no longer connect.`)) return;
          await api("DELETE", appPath(""));
          await loadApps();
          await route();
        }, { class: "danger", id: "delete-app" }),
      ),
      keyOut,
      h("h2", {}, "Name and features"),
      form(
        { id: "app-settings" },
        [field("Name", "name", text({ value: app.name })), ...settingsFields(app.settings), h("button", { type: "submit" }, "Save")],
        async (element) => {
          if (!requireFields(element, ["name"])) return;
          await api("PATCH", appPath(""), { name: element.elements.name.value.trim(), settings: settingsOf(element) });
          await loadApps(app.bizName);
          await route();
          notice(document.getElementById("app-detail"), "Saved.", "ok");
        },
      ),
      h("p", { class: "muted" }, "Callback secrets and CloudEvents endpoints are on the Webhooks page."),
    );
    page.append(detail);
  }

  // ---- Signature tool --------------------------------------------------------------------------------

  async function renderSignature() {
    page.append(h("h1", {}, "Signature tool"));
    if (needApp()) return;
    const issued = h("div");
    const verdict = h("div");
    page.append(
      card(
        "Generate a temporary signature",
        form(
          { id: "sign" },
          [
            field("User id (uid)", "uid", text({ placeholder: "alice" })),
            field("Valid for", "ttl", select([["24h", "24 hours"], ["3d", "3 days"], ["7d", "7 days"]])),
            h("button", { type: "submit" }, "Generate"),
          ],
          async (element) => {
            if (!requireFields(element, ["uid"])) return;
            const uid = element.elements.uid.value.trim();
            const answer = await api("POST", appPath("/signatures"), { uid, ttl: element.elements.ttl.value });
            put(issued,
              h("p", {}, `For ${uid}, valid until ${new Date(answer.expireTime).toLocaleString()}:`),
              h("div", { class: "secret", id: "signature-out" }, answer.signature),
            );
            const verify = document.getElementById("verify");
            verify.elements.uid.value = uid;
            verify.elements.signature.value = answer.signature;
          },
        ),
        issued,
      ),
      card(
        "Verify a signature",
        form(
          { id: "verify" },
          [
            field("User id (uid)", "uid", text()),
            field("Signature", "signature", h("textarea", {})),
            h("button", { type: "submit" }, "Verify"),
          ],
          async (element) => {
            put(verdict);
            if (!requireFields(element, ["uid", "signature"])) return;
            try {
              const answer = await api("POST", appPath("/signatures/verify"), {
                uid: element.elements.uid.value.trim(),
                signature: element.elements.signature.value.trim(),
              });
              put(verdict,
                h("div", { class: "notice ok", id: "verdict" }, `Valid: app ${answer.appId}, until ${new Date(answer.expireTime).toLocaleString()}.`),
              );
            } catch (error) {
              if (!(error instanceof ApiError) || needsSignIn(error)) throw error;
              put(verdict, h("div", { class: "notice bad", id: "verdict" }, `Invalid: ${error.message} (code ${error.code}).`));
            }
          },
        ),
        verdict,
      ),
    );
  }

  // ---- Devices ---------------------------------------------------------------------------------------

  const typeSelect = () => select([["video", "video call"], ["audio", "audio call"]]);

  async function renderDevices() {
    page.append(h("h1", {}, "Devices"));
    if (needApp()) return;
    const poolsBox = h("div");
    async function showPools() {
      const pools = await api("GET", appPath("/licences"));
      put(poolsBox,
        table(
          [
            { label: "Product (modelId)", cell: (pool) => pool.modelId },
            { label: "Type", cell: (pool) => pool.type },
            { label: "Used", num: true, cell: (pool) => pool.used },
            { label: "Total", num: true, cell: (pool) => pool.total },
          ],
          pools.map((pool) => ({ key: `${pool.modelId}/${pool.type}`, item: pool })),
          "No licences yet: add some below, then activate devices against them.",
          { id: "pools" },
        ),
      );
    }
    await showPools();
    page.append(
      card(
        "Licence pools",
        poolsBox,
        form(
          { id: "add-licences" },
          [
            field("Product (modelId)", "modelId", text({ placeholder: "M1" })),
            field("Type", "type", typeSelect()),
            field("Count", "count", h("input", { type: "number", min: "1", value: "10" })),
            h("button", { type: "submit" }, "Add licences"),
          ],
          async (element) => {
            if (!requireFields(element, ["modelId", "count"])) return;
            await api("POST", appPath("/licences"), {
              modelId: element.elements.modelId.value.trim(),
              type: element.elements.type.value,
              count: Number(element.elements.count.value),
            });
            await showPools();
          },
        ),
      ),
    );
    const activated = h("div");
    page.append(
      card(
        "Activate devices",
        form(
          { id: "activate" },
          [
            field("Product (modelId)", "modelId", text()),
            field("Type", "type", typeSelect()),
            field("Serial numbers (sn), one a line", "sns", h("textarea", { placeholder: "P1_door01" })),
            h("button", { type: "submit" }, "Activate"),
          ],
          async (element) => {
            if (!requireFields(element, ["modelId", "sns"])) return;
            const sns = element.elements.sns.value.split(/\s+/).filter(Boolean);
            const body = { modelId: element.elements.modelId.value.trim(), type: element.elements.type.value };
            const results =
              sns.length === 1
                ? [{ sn: sns[0], code: 0, msg: "", activation: await api("POST", appPath("/devices"), { ...body, sn: sns[0] }) }]
                : await api("POST", appPath("/devices/batch"), { ...body, sns });
            put(activated,
              table(
                [
                  { label: "sn", cell: (result) => result.sn },
                  { label: "Result", cell: (result) => (result.activation ? (result.activation.newlyActivated ? "activated" : "already active") : `${result.msg} (${result.code})`) },
                  { label: "Activated at", cell: (result) => when(result.activation && result.activation.activatedAt) },
                ],
                results.map((result) => ({ key: result.sn, item: result })),
                "",
                { id: "activations" },
              ),
            );
            await showPools();
          },
        ),
        activated,
      ),
    );
    const found = h("div");
    page.append(
      card(
        "Look up a device",
        form(
          { id: "device-lookup" },
          [field("Serial number (sn)", "sn", text()), h("button", { type: "submit" }, "Look up")],
          async (element) => {
            if (!requireFields(element, ["sn"])) return;
            const sn = encodeURIComponent(element.elements.sn.value.trim());
            const [activation, registration, users] = await Promise.all([
              api("GET", `/v1/devices/${sn}/activation`),
              api("GET", `/v1/devices/${sn}/registration`),
              api("GET", `/v1/devices/${sn}/users?limit=10`),
            ]);
            put(found,
              h(
                "p",
                { id: "device-found" },
                `${activation.sn}: ${activation.type} licence of ${activation.modelId}, activated ${when(activation.activatedAt)}; `,
                registration.registered ? "registered." : "not registered yet (issue an snTicket).",
              ),
              actionButton("Issue snTicket", async () => {
                const ticket = await api("POST", appPath(`/devices/${sn}/tickets`));
                found.append(h("p", {}, `snTicket (one use, until ${when(ticket.expiresAt)}): `, h("code", {}, ticket.snTicket)));
              }, { class: "quiet" }),
              h("h2", {}, `Authorised users (${users.total})`),
              table(
                [
                  { label: "openId", cell: (user) => user.openId },
                  { label: "Status", cell: (user) => (user.status === 1 ? "authorised" : "revoked") },
                  { label: "Since", cell: (user) => when(user.updatedAt) },
                ],
                users.users.map((user) => ({ key: user.openId, item: user })),
                "Nobody has authorised this device yet.",
              ),
            );
          },
        ),
        found,
      ),
    );
  }

  // ---- Live rooms ------------------------------------------------------------------------------------

  const MEDIA = { 1: "audio+video", 2: "audio", 3: "video" };

  function roomCard(room) {
    const section = card(
      `Room ${room.roomId}`,
      h(
        "p",
        { class: "room-summary" },
        `Created by ${room.creatorUid} ${when(room.createdAt)} · `,
        room.engine === 2 ? "P2P" : `relay ${room.relayAddress || "(none until the first publish)"}`,
        ` · ${room.participants.length} participant(s)`,
      ),
      table(
        [
          { label: "Participant", cell: (participant) => participant.uid },
          {
            label: "Feeds",
            cell: (participant) =>
              participant.feeds
                .map((feed) => `${feed.feedId} (${MEDIA[feed.mediaType] || feed.mediaType}${feed.tag ? `, ${feed.tag}` : ""})`)
                .join(", ") || "none",
          },
          {
            label: "",
            cell: (participant) =>
              actionButton("Kick", async () => {
                if (!confirm(`Take ${participant.uid} out of the room?`)) return;
                await api("DELETE", `/v1/rooms/${encodeURIComponent(room.roomId)}/participants/${encodeURIComponent(participant.uid)}`);
                await route();
              }, { class: "danger" }),
          },
        ],
        room.participants.map((participant) => ({ key: participant.uid, item: participant })),
        "Nobody is in this room; it closes by itself after its grace.",
        { class: "participants" },
      ),
      h(
        "div",
        { class: "actions" },
        actionButton("Close room", async () => {
          if (!confirm(`Close room ${room.roomId}? Everyone in it is taken out.`)) return;
          await api("DELETE", `/v1/rooms/${encodeURIComponent(room.roomId)}`);
          await route();
        }, { class: "danger" }),
      ),
    );
    section.dataset.room = room.roomId;
    return section;
  }

  async function renderRooms() {
    page.append(h("h1", {}, "Live rooms"));
    if (needApp()) return;
    const rooms = await api("GET", `/v1/rooms?bizName=${encodeURIComponent(currentApp())}`);
    page.append(
      h("div", { class: "actions refresh" }, actionButton("Refresh", route, { class: "quiet" })),
      ...(rooms.length
        ? rooms.map(roomCard)
        : [card("No live rooms", h("p", { class: "empty" }, "Rooms of this app appear here while someone is in them, or an app's backend has just created one."))]),
    );
  }

  // ---- Recordings ------------------------------------------------------------------------------------

  // A recording's bytes: the API's URL itself when no token is needed (the player then seeks with range
  // requests); with a token the file is fetched with it, since a <video> cannot send the header.
  async function fileUrl(recording) {
    if (!sessionStorage.getItem(TOKEN_KEY)) return recording.downloadUrl;
    const response = await fetch(recording.downloadUrl, { headers: authHeaders() });
    if (!response.ok) throw new ApiError(response.status, await response.json());
    return URL.createObjectURL(await response.blob());
  }

  async function download(recording) {
    const link = h("a", { href: await fileUrl(recording), download: recording.filePath.split("/").pop() || recording.fileId });
    document.body.append(link);
    link.click();
    link.remove();
  }

  async function renderRecordings() {
    page.append(h("h1", {}, "Recordings"));
    if (needApp()) return;
    const results = h("div");
    const player = h("div", { id: "player" });
    const query = new URLSearchParams(sessionStorage.getItem("parley.console.recordings") || "");

    async function search(params) {
      sessionStorage.setItem("parley.console.recordings", params.toString());
      const answer = await api("GET", appPath(`/recordings?${params}`));
      const selected = new Set();
      const batch = h(
        "div",
        { class: "actions" },
        actionButton("Download selected", async () => {
          for (const recording of answer.recordings.filter((item) => selected.has(item.fileId))) await download(recording);
        }, { class: "quiet" }),
        actionButton("Delete selected", async () => {
          if (!selected.size || !confirm(`Delete ${selected.size} file(s)?`)) return;
          await api("POST", appPath("/recordings/batch-delete"), { fileIds: [...selected] });
          await search(params);
        }, { class: "danger" }),
      );
      put(results,
        h("p", { class: "muted" }, `${answer.total} file(s)`),
        answer.recordings.length ? batch : null,
        table(
          [
            {
              label: "",
              cell: (item) =>
                h("input", {
                  type: "checkbox",
                  "aria-label": `select ${item.fileId}`,
                  onchange: (event) => (event.target.checked ? selected.add(item.fileId) : selected.delete(item.fileId)),
                }),
            },
            { label: "Started", cell: (item) => new Date(item.recordStartTime).toLocaleString() },
            { label: "Room", cell: (item) => h("code", {}, item.roomId) },
            { label: "recordId", cell: (item) => h("code", {}, item.recordId) },
            { label: "Format", cell: (item) => item.format },
            { label: "Length", num: true, cell: (item) => `${(item.durationMs / 1000).toFixed(1)} s` },
            { label: "Size", num: true, cell: (item) => `${(item.sizeBytes / 1024).toFixed(0)} KiB` },
            {
              label: "",
              cell: (item) =>
                h(
                  "div",
                  { class: "actions" },
                  actionButton("Play", async () => {
                    put(player,
                      h("h2", {}, `Playing ${item.fileId}`),
                      h("video", { controls: true, preload: "metadata", src: await fileUrl(item), id: "video" }),
                    );
                  }, { class: "quiet" }),
                  actionButton("Download", () => download(item), { class: "quiet" }),
                  actionButton("Delete", async () => {
                    if (!confirm(`Delete ${item.fileId}?`)) return;
                    await api("DELETE", appPath(`/recordings/${encodeURIComponent(item.fileId)}`));
                    put(player);
                    await search(params);
                  }, { class: "danger" }),
                ),
            },
          ],
          answer.recordings.map((item) => ({ key: item.fileId, item })),
          "No recordings match. Rooms record when the app auto-records or a client starts a recording.",
          { id: "recordings" },
        ),
      );
    }

    const localInput = (name) => {
      const value = query.get(name);
      const local = value ? new Date(Number(value) - new Date().getTimezoneOffset() * 60000).toISOString().slice(0, 16) : "";
      return h("input", { type: "datetime-local", value: local });
    };
    page.append(
      card(
        "Find recordings",
        form(
          { id: "recording-query" },
          [
            field("From", "start", localInput("start")),
            field("Until", "end", localInput("end")),
            field("recordId (media id)", "recordId", text({ value: query.get("recordId") || "" })),
            h("button", { type: "submit" }, "Search"),
          ],
          async (element) => {
            const params = new URLSearchParams({ limit: "100" });
            for (const name of ["start", "end"]) {
              if (element.elements[name].value) params.set(name, String(new Date(element.elements[name].value).getTime()));
            }
            if (element.elements.recordId.value.trim()) params.set("recordId", element.elements.recordId.value.trim());
            await search(params);
          },
        ),
        results,
      ),
      card("Player", player),
    );
    player.append(h("p", { class: "empty" }, "Play a file from the list to watch it here."));
    await search(query.toString() ? query : new URLSearchParams({ limit: "100" }));
  }

  // ---- Usage -----------------------------------------------------------------------------------------

  const TIERS = ["audio", "360P", "540P", "720P", "1080P"];
  // The four tabs of seed 002 5.4: each a few figures of the overview and the series of the trend chart.
  const USAGE_TABS = {
    call: {
      label: "Call minutes",
      figures: (f) => TIERS.map((tier) => [`${tier} minutes`, minutes(f.callMs[tier]), f.callMs[tier], `callMs.${tier}`]).concat([["billable minutes", f.billableMinutes, f.billableMinutes, "billableMinutes"]]),
      series: TIERS.map((tier) => [tier, (f) => f.callMs[tier] / 60000]),
    },
    online: {
      label: "Online minutes",
      figures: (f) => [
        ["online minutes", minutes(f.onlineMs), f.onlineMs, "onlineMs"],
        ["published stream minutes", minutes(f.publishedStreamMs), f.publishedStreamMs, "publishedStreamMs"],
        ["subscribed stream minutes", minutes(f.subscribedStreamMs), f.subscribedStreamMs, "subscribedStreamMs"],
      ],
      series: [["online", (f) => f.onlineMs / 60000]],
    },
    rooms: {
      label: "Rooms",
      figures: (f) => [
        ["rooms", f.rooms, f.rooms, "rooms"],
        ["peak concurrent rooms", f.peakRooms, f.peakRooms, "peakRooms"],
      ],
      series: [["rooms", (f) => f.rooms], ["peak rooms", (f) => f.peakRooms]],
    },
    users: {
      label: "Users",
      figures: (f) => [
        ["online users", f.onlineUsers, f.onlineUsers, "onlineUsers"],
        ["users in calls", f.callUsers, f.callUsers, "callUsers"],
        ["peak online users", f.peakOnlineUsers, f.peakOnlineUsers, "peakOnlineUsers"],
        ["peak users in calls", f.peakCallUsers, f.peakCallUsers, "peakCallUsers"],
      ],
      series: [["online users", (f) => f.onlineUsers], ["users in calls", (f) => f.callUsers]],
    },
  };
  const COLOURS = ["#2457c5", "#e07b39", "#177245", "#9b51e0", "#b42318"];
  let usageTab = "call";
  let usageRange = { range: "7d" };

  async function renderUsage() {
    page.append(h("h1", {}, "Usage"));
    if (needApp()) return;
    const ranges = [["today", "Today"], ["yesterday", "Yesterday"], ["7d", "7 days"], ["30d", "30 days"]];
    const body = h("div");
    const custom = form(
      { id: "usage-custom" },
      [
        field("From", "start", h("input", { type: "date", value: usageRange.start || "" })),
        field("To", "end", h("input", { type: "date", value: usageRange.end || "" })),
        h("button", { type: "submit" }, "Show"),
      ],
      async (element) => {
        if (!requireFields(element, ["start", "end"])) return;
        usageRange = { start: element.elements.start.value, end: element.elements.end.value };
        await load(element);
      },
    );
    const rangeButtons = h(
      "div",
      { class: "subtabs", id: "usage-ranges" },
      ranges.map(([value, label]) =>
        h("button", { type: "button", class: usageRange.range === value ? "active" : "", dataset: { range: value }, onclick: async () => {
          usageRange = { range: value };
          await load(custom);
        } }, label),
      ),
    );
    const tabs = h(
      "div",
      { class: "subtabs", id: "usage-tabs" },
      Object.entries(USAGE_TABS).map(([key, tab]) =>
        h("button", { type: "button", class: usageTab === key ? "active" : "", dataset: { tab: key }, onclick: async () => {
          usageTab = key;
          await load(custom);
        } }, tab.label),
      ),
    );
    page.append(card("Span", rangeButtons, custom), tabs, body);

    async function load(where) {
      rangeButtons.querySelectorAll("button").forEach((button) => button.classList.toggle("active", button.dataset.range === usageRange.range));
      tabs.querySelectorAll("button").forEach((button) => button.classList.toggle("active", button.dataset.tab === usageTab));
      clearErrors(where);
      const params = new URLSearchParams(usageRange);
      let overview, trend, detail;
      try {
        [overview, trend, detail] = await Promise.all([
          api("GET", appPath(`/usage/overview?${params}`)),
          api("GET", appPath(`/usage/trend?${params}`)),
          api("GET", appPath(`/usage/detail?${params}`)),
        ]);
      } catch (error) {
        if (error instanceof ApiError && error.status === 400) return showError(where, error);
        put(body);
        return unavailable(body, "Usage", error);
      }
      const tab = USAGE_TABS[usageTab];
      const chart = h("div", { class: "chart", id: "usage-chart" });
      put(body,
        card(
          `${tab.label}, ${overview.start} to ${overview.end}`,
          h(
            "div",
            { class: "figures", id: "usage-figures" },
            tab.figures(overview).map(([label, shown, raw, key]) => h("div", { class: "figure", dataset: { key, value: raw } }, h("b", {}, shown), h("span", {}, label))),
          ),
          chart,
        ),
        card(
          "Daily detail",
          table(
            [
              { label: "Date", cell: (day) => day.date },
              ...tab.figures(detail.days[0] || overview).map(([label], index) => ({ label, num: true, cell: (day) => tab.figures(day)[index][1] })),
              { label: "Closed", cell: (day) => (day.closed ? "yes" : "open") },
              { label: "Adjustments", num: true, cell: (day) => day.adjustments.length },
            ],
            detail.days.map((day) => ({ key: day.date, item: day })),
            "No days in this span.",
            { id: "usage-detail" },
          ),
        ),
      );
      drawTrend(chart, trend.days, tab);
    }

    await load(custom);
  }

  // One point a day, labelled with its date (at most ~10 labels); redrawn to the card's width on resize.
  let trendChart = null;

  function drawTrend(where, days, tab) {
    if (trendChart) trendChart.destroy();
    trendChart = null;
    if (!days.length) {
      where.append(h("p", { class: "empty" }, "No days to draw."));
      return;
    }
    const xs = days.map((_, index) => index);
    const every = Math.ceil(days.length / 10);
    const data = [xs, ...tab.series.map(([, value]) => days.map(value))];
    trendChart = new uPlot(
      {
        width: Math.max(260, where.clientWidth),
        height: 240,
        scales: { x: { time: false } },
        series: [
          { label: "Day", value: (_, index) => (index == null ? "--" : days[index].date) },
          ...tab.series.map(([label], index) => ({ label, stroke: COLOURS[index % COLOURS.length], width: 2, points: { show: true } })),
        ],
        axes: [
          { splits: () => xs.filter((index) => index % every === 0), values: (_, splits) => splits.map((index) => days[index].date.slice(5)) },
          { size: 60 },
        ],
      },
      data,
      where,
    );
  }

  window.addEventListener("resize", () => {
    const where = document.getElementById("usage-chart");
    if (trendChart && where) trendChart.setSize({ width: Math.max(260, where.clientWidth), height: 240 });
  });

  // ---- Webhooks --------------------------------------------------------------------------------------

  async function renderWebhooks() {
    page.append(h("h1", {}, "Webhooks"));
    if (needApp()) return;
    let endpoints, deliveries;
    try {
      [endpoints, deliveries] = await Promise.all([api("GET", appPath("/webhook-endpoints")), api("GET", appPath("/deliveries?limit=50"))]);
    } catch (error) {
      if (needsSignIn(error)) throw error;
      return unavailable(page, "The webhook dispatcher", error);
    }
    const secretOut = h("div");
    const showSecret = (secret) =>
      put(secretOut,
        h("div", { class: "secret", id: "webhook-secret" }, secret.secret),
        secret.previousValidUntil ? h("p", { class: "muted" }, `The previous secret also signs until ${when(secret.previousValidUntil)}.`) : null,
      );
    page.append(
      card(
        "Signing secret",
        h("p", {}, "Every callback carries a signature made with this secret; verify it in your receiver."),
        h(
          "div",
          { class: "actions" },
          actionButton("Reveal secret", async () => showSecret(await api("GET", appPath("/webhook-secret"))), { class: "quiet" }),
          actionButton("Rotate secret", async () => {
            if (!confirm("Make a new secret? The old one keeps signing beside it for 24 hours.")) return;
            showSecret(await api("POST", appPath("/webhook-secret/rotate")));
          }, { class: "quiet" }),
        ),
        secretOut,
      ),
      card(
        "Endpoints",
        table(
          [
            { label: "Kind", cell: (endpoint) => endpoint.kind },
            { label: "URL", cell: (endpoint) => h("code", {}, endpoint.url) },
            { label: "Events", cell: (endpoint) => endpoint.eventTypes.join(", ") },
            { label: "State", cell: (endpoint) => (endpoint.enabled ? "enabled" : `disabled: ${endpoint.disabledReason}`) },
            {
              label: "",
              cell: (endpoint) =>
                endpoint.kind === "cloudevents"
                  ? h(
                      "div",
                      { class: "actions" },
                      actionButton("Send test", async (button) => {
                        await api("POST", appPath("/webhook-test"), { endpointId: endpoint.endpointId });
                        notice(button.closest("section"), "A signed test event is queued; it shows under Deliveries.", "ok");
                      }, { class: "quiet" }),
                      actionButton(endpoint.enabled ? "Disable" : "Enable", async () => {
                        await api("PATCH", appPath(`/webhook-endpoints/${endpoint.endpointId}`), { enabled: !endpoint.enabled });
                        await route();
                      }, { class: "quiet" }),
                      actionButton("Delete", async () => {
                        if (!confirm(`Delete the endpoint ${endpoint.url}?`)) return;
                        await api("DELETE", appPath(`/webhook-endpoints/${endpoint.endpointId}`));
                        await route();
                      }, { class: "danger" }),
                    )
                  : h("span", { class: "muted" }, "set on the Apps page"),
            },
          ],
          endpoints.map((endpoint) => ({ key: endpoint.endpointId, item: endpoint })),
          "No endpoints: set the app's callback URLs on the Apps page, or add a CloudEvents endpoint below.",
          { id: "endpoints" },
        ),
        form(
          { id: "add-endpoint" },
          [
            field("CloudEvents endpoint URL", "url", h("input", { type: "url", placeholder: "https://example.com/hooks" })),
            field("Event types, comma separated", "eventTypes", text({ placeholder: "*" })),
            h("button", { type: "submit" }, "Add endpoint"),
          ],
          async (element) => {
            if (!requireFields(element, ["url", "eventTypes"])) return;
            await api("POST", appPath("/webhook-endpoints"), {
              url: element.elements.url.value.trim(),
              eventTypes: element.elements.eventTypes.value.split(",").map((item) => item.trim()).filter(Boolean),
            });
            await route();
          },
        ),
      ),
    );
    const attempts = h("div", { id: "delivery-detail" });
    page.append(
      card(
        "Deliveries",
        h("div", { class: "actions" }, actionButton("Redeliver every failed one", async (button) => {
          const answer = await api("POST", appPath("/deliveries/redeliver-failed"));
          notice(button.closest("section"), `${answer.count} delivery(ies) queued again.`, "ok");
        }, { class: "quiet" })),
        table(
          [
            { label: "Created", cell: (delivery) => when(delivery.createdAt) },
            { label: "Event", cell: (delivery) => delivery.eventType },
            { label: "URL", cell: (delivery) => h("code", {}, delivery.url) },
            { label: "Status", cell: (delivery) => `${delivery.status}${delivery.httpStatus ? ` (HTTP ${delivery.httpStatus})` : ""}` },
            { label: "Attempts", num: true, cell: (delivery) => delivery.attempts },
            {
              label: "",
              cell: (delivery) =>
                h(
                  "div",
                  { class: "actions" },
                  actionButton("Attempts", async () => {
                    const detail = await api("GET", appPath(`/deliveries/${delivery.deliveryId}`));
                    put(attempts,
                      h("h2", {}, `Delivery ${detail.deliveryId}`),
                      table(
                        [
                          { label: "#", num: true, cell: (attempt) => attempt.attempt },
                          { label: "Started", cell: (attempt) => when(attempt.startedAt) },
                          { label: "Outcome", cell: (attempt) => attempt.outcome },
                          { label: "HTTP", num: true, cell: (attempt) => attempt.httpStatus || "" },
                          { label: "Latency", num: true, cell: (attempt) => `${attempt.latencyMs} ms` },
                          { label: "Error", cell: (attempt) => attempt.error },
                        ],
                        detail.attemptLog.map((attempt) => ({ key: String(attempt.attempt), item: attempt })),
                        "Not tried yet.",
                      ),
                      h("div", { class: "secret" }, detail.body),
                    );
                  }, { class: "quiet" }),
                  delivery.status === "dead"
                    ? actionButton("Redeliver", async () => {
                        await api("POST", appPath(`/deliveries/${delivery.deliveryId}/redeliver`));
                        await route();
                      }, { class: "quiet" })
                    : null,
                ),
            },
          ],
          deliveries.map((delivery) => ({ key: delivery.deliveryId, item: delivery })),
          "No deliveries yet: they appear when the app's rooms and recordings produce events.",
          { id: "deliveries" },
        ),
        attempts,
      ),
    );
  }

  // ---- Billing ---------------------------------------------------------------------------------------

  // The statement's month, kept while the page is open (YYYY-MM; empty: this month).
  let billingMonth = "";

  async function renderBilling() {
    page.append(h("h1", {}, "Billing"));
    if (needApp()) return;
    let plan, account, statement;
    const month = billingMonth || new Date().toISOString().slice(0, 7);
    try {
      [plan, account, statement] = await Promise.all([
        api("GET", appPath("/price-plan")),
        api("GET", appPath("/account")),
        api("GET", appPath(`/statements/${month}`)),
      ]);
    } catch (error) {
      if (needsSignIn(error)) throw error;
      return unavailable(page, "Billing", error);
    }
    page.append(
      card(
        `Statement ${statement.month}${statement.final ? "" : " (so far)"}`,
        table(
          [
            { label: "Tier", cell: (line) => line.tier },
            { label: "Minutes", num: true, cell: (line) => line.minutes },
            { label: `Price per minute (${statement.currency} minor units)`, num: true, cell: (line) => line.pricePerMinute },
            { label: "Amount", num: true, cell: (line) => line.amount },
          ],
          statement.lines.map((line) => ({ key: line.tier, item: line })),
          "No call time this month yet.",
          { id: "statement" },
        ),
        h("p", {}, `Total: ${statement.total} (${statement.currency} minor units)`),
        form(
          { id: "statement-month" },
          [field("Month", "month", h("input", { type: "month", value: month })), h("button", { type: "submit" }, "Show")],
          async (element) => {
            if (!requireFields(element, ["month"])) return;
            billingMonth = element.elements.month.value;
            await route();
          },
        ),
      ),
      card(
        "Price plan",
        form(
          { id: "price-plan" },
          [
            field("Currency", "currency", text({ value: plan.currency })),
            field("Time zone", "timeZone", text({ value: plan.timeZone })),
            ...TIERS.map((tier) => field(`${tier} per minute`, tier, h("input", { type: "number", min: "0", value: plan.prices[tier] }))),
            h("button", { type: "submit" }, "Save plan"),
          ],
          async (element) => {
            const prices = Object.fromEntries(TIERS.map((tier) => [tier, Number(element.elements[tier].value)]));
            await api("PUT", appPath("/price-plan"), { currency: element.elements.currency.value.trim(), timeZone: element.elements.timeZone.value.trim(), prices });
            notice(element.closest("section"), "Saved.", "ok");
          },
        ),
      ),
      card(
        "Account",
        h("p", { id: "account" }, `${account.mode}${account.mode === "prepaid" ? ` in ${account.unit}` : ""}; balance ${account.balance}${account.inArrears ? " — in arrears" : ""}.`),
        form(
          { id: "account-mode" },
          [
            field("Mode", "mode", Object.assign(select([["postpaid", "post-paid"], ["prepaid", "prepaid"]]), { value: account.mode })),
            field("Prepaid in", "unit", Object.assign(select([["money", "money"], ["minutes", "minutes"]]), { value: account.unit })),
            h("button", { type: "submit" }, "Change"),
          ],
          async (element) => {
            await api("PUT", appPath("/account"), { mode: element.elements.mode.value, unit: element.elements.unit.value });
            await route();
          },
        ),
        form(
          { id: "top-up" },
          [field(account.unit === "minutes" ? "Top up (ms)" : "Top up (minor units)", "amount", h("input", { type: "number", min: "1" })), h("button", { type: "submit" }, "Top up")],
          async (element) => {
            if (!requireFields(element, ["amount"])) return;
            await api("POST", appPath("/account/top-ups"), { amount: Number(element.elements.amount.value) });
            await route();
          },
        ),
        table(
          [
            { label: "Date", cell: (entry) => entry.date },
            { label: "Kind", cell: (entry) => entry.kind },
            { label: "Amount", num: true, cell: (entry) => entry.amount },
          ],
          account.entries.map((entry) => ({ key: entry.entryId, item: entry })),
          "No entries yet.",
        ),
      ),
    );
  }

  // ---- Routing ---------------------------------------------------------------------------------------

  const PAGES = {
    apps: renderApps,
    signature: renderSignature,
    devices: renderDevices,
    rooms: renderRooms,
    recordings: renderRecordings,
    usage: renderUsage,
    webhooks: renderWebhooks,
    billing: renderBilling,
  };

  async function route() {
    const name = location.hash.slice(1) in PAGES ? location.hash.slice(1) : "apps";
    document.querySelectorAll("#nav a").forEach((link) => link.classList.toggle("active", link.hash === `#${name}`));
    put(page);
    page.dataset.page = name;
    page.dataset.ready = "";
    try {
      await PAGES[name]();
    } catch (error) {
      if (needsSignIn(error)) return;
      unavailable(page, "This page", error);
    } finally {
      page.dataset.ready = name;
    }
  }

  window.addEventListener("hashchange", route);

  (async () => {
    try {
      await loadApps();
    } catch (error) {
      if (!needsSignIn(error)) unavailable(page, "The licence service", error);
      return;
    }
    await route();
  })();
})();
