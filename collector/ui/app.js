// The AuditKeep search page: plain JavaScript over /api/audit, /api/audit/{id} and /api/health.
// docs/search-page.md describes it. No framework, no build step, nothing from another origin.
"use strict";

(() => {
  // The API root next to this script: /api/ui/app.js → /api/.
  const API = new URL("..", document.currentScript.src).pathname;
  // The API parameters the form edits, in the order the page URL shows them, and their fields.
  const FIELDS = [
    ["q", "f-q"], ["user", "f-user"], ["operation", "f-operation"], ["workload", "f-workload"],
    ["result", "f-result"], ["clientIp", "f-clientip"], ["recordType", "f-recordtype"],
    ["start", "f-start"], ["end", "f-end"],
  ];
  // API parameters without a control, kept as the URL gives them (a shared link may carry them).
  const PASSED = ["object", "contentType", "top"];
  const RANGES = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };
  const KEY_STORE = "auditkeep.functionKey"; // sessionStorage: the key lives as long as the tab
  const LOCAL_STORE = "auditkeep.localTime"; // localStorage: a display preference, no secret
  // A page may hold no rows and still carry a next link (the API bounds each page's work):
  // follow that many in a row by ourselves before handing over to "Load more".
  const EMPTY_PAGES_FOLLOWED = 20;

  const $ = (id) => document.getElementById(id);
  const table = $("results");
  const tbody = table.tBodies[0];
  const status = $("status");
  const errorBox = $("error");
  const empty = $("empty");
  const more = $("more");
  const exportButton = $("export");
  const range = $("f-range");
  const localToggle = $("f-local");

  let next = null; // the relative URL of the next page, or null at the end
  let generation = 0; // bumps with every search: answers of an older one are dropped
  let controller = null;
  let shown = 0;
  let failed = false;

  // ------------------------------------------------------------ key and requests

  function key() {
    return sessionStorage.getItem(KEY_STORE) || "";
  }

  function showKeyStatus() {
    $("key-status").textContent = key()
      ? "A key is set for this browser tab; it is sent as the x-functions-key header, never in a URL."
      : "No key set: requests go without one (local server, Entra ID sign-in).";
  }

  // Every data call: same origin, so an Entra ID (App Service authentication) sign-in cookie goes
  // along by itself; the function key, when one was entered, in its header and never in the URL.
  // redirect "manual": our API never redirects, so a redirect is the sign-in front end's.
  function apiFetch(url, signal) {
    const headers = { Accept: "application/json" };
    if (key()) headers["x-functions-key"] = key();
    return fetch(url, { headers, signal, credentials: "same-origin", redirect: "manual", cache: "no-store" });
  }

  class ShownError extends Error {}

  // The message a failed response gets: the API's own error message, or what the status means.
  async function failure(response) {
    if (response.type === "opaqueredirect" || response.status === 0) {
      return "The sign-in session has expired or was never started: reload the page to sign in again.";
    }
    if (response.status === 401 || response.status === 403) {
      openKey();
      return key()
        ? `The function key was refused (HTTP ${response.status}): check it, enter it again under Function key and search again.`
        : `This API needs a function key (HTTP ${response.status}): enter it under Function key; it is kept for this browser tab only. ` +
          "Signed in with Entra ID? Reload the page to sign in again.";
    }
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (body && body.error && body.error.message) {
      return `${body.error.message} (${body.error.code}, HTTP ${response.status})`;
    }
    if (response.status === 414) return "The URL is too long for the server (HTTP 414): use shorter lists.";
    return `The request failed with HTTP ${response.status}.`;
  }

  async function getJson(url, signal) {
    let response;
    try {
      response = await apiFetch(url, signal);
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ShownError("The API could not be reached (network error, or the sign-in session expired: reload the page).");
    }
    if (!response.ok) throw new ShownError(await failure(response));
    return response.json();
  }

  function openKey() {
    const field = $("f-key");
    field.setAttribute("aria-invalid", "true");
    field.focus();
  }

  // ------------------------------------------------------------ time

  function pad(n, width = 2) {
    return String(n).padStart(width, "0");
  }

  // One format everywhere: 2024-05-01 08:00:00 UTC, or local 2024-05-01 10:00:00 UTC+02:00.
  function formatTime(iso) {
    if (!iso) return "—";
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return iso;
    if (!localToggle.checked) {
      return `${date.getUTCFullYear()}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())} ` +
        `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())} UTC`;
    }
    const offset = -date.getTimezoneOffset();
    const sign = offset >= 0 ? "+" : "-";
    const zone = `UTC${sign}${pad(Math.floor(Math.abs(offset) / 60))}:${pad(Math.abs(offset) % 60)}`;
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
      `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())} ${zone}`;
  }

  function timeElement(iso) {
    const element = document.createElement("time");
    element.dateTime = iso || "";
    element.textContent = formatTime(iso);
    return element;
  }

  function refreshTimes() {
    for (const element of document.querySelectorAll("time[datetime]")) {
      element.textContent = formatTime(element.dateTime);
    }
  }

  // The API's time format, to the second: 2024-05-01T08:00:00Z.
  function isoSeconds(ms) {
    return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");
  }

  // ------------------------------------------------------------ state in the URL

  function formParams() {
    if (range.value !== "custom") fillRange(range.value);
    const params = new URLSearchParams();
    for (const [name, id] of FIELDS) {
      const value = $(id).value.trim();
      if (value) params.set(name, value);
    }
    const current = new URLSearchParams(location.search);
    for (const name of PASSED) {
      if (current.get(name)) params.set(name, current.get(name));
    }
    return params;
  }

  function fillForm(params) {
    for (const [name, id] of FIELDS) $(id).value = params.get(name) || "";
    // A URL pins its times; without any, the API's default (the last 24 hours) applies.
    range.value = params.get("start") || params.get("end") ? "custom" : "24h";
  }

  function pageParams() {
    const params = new URLSearchParams();
    const current = new URLSearchParams(location.search);
    for (const [name] of FIELDS) if (current.get(name)) params.set(name, current.get(name));
    for (const name of PASSED) if (current.get(name)) params.set(name, current.get(name));
    return params;
  }

  // A quick range pins From and To to absolute times, so the URL (and a shared link) means the same
  // records later; Search picks the range again from the current time.
  function fillRange(value) {
    const span = RANGES[value];
    if (!span) return;
    const now = Date.now();
    $("f-end").value = isoSeconds(Math.ceil(now / 60e3) * 60e3);
    $("f-start").value = isoSeconds(Math.floor((now - span) / 60e3) * 60e3);
  }

  // ------------------------------------------------------------ results

  function cell(row, text, className) {
    const td = row.insertCell();
    td.textContent = text == null || text === "" ? "" : String(text);
    if (className) td.className = className;
    if (text) td.title = String(text);
    return td;
  }

  function addRows(records) {
    const fragment = document.createDocumentFragment();
    for (const record of records) {
      const row = document.createElement("tr");
      row.dataset.id = record.id;
      const first = row.insertCell();
      const open = document.createElement("button");
      open.type = "button";
      open.className = "open";
      open.setAttribute("aria-label", `Open record ${record.id}: ${record.operation || "activity"} by ${record.user || "unknown user"}`);
      open.append(timeElement(record.time));
      open.addEventListener("click", () => openRecord(record.id, open));
      first.append(open);
      cell(row, record.user);
      cell(row, record.operation);
      cell(row, record.object, "c-object");
      cell(row, record.result);
      cell(row, record.clientIp);
      cell(row, record.workload);
      row.addEventListener("click", (event) => {
        if (event.target.closest("button") || window.getSelection().toString()) return;
        open.click();
      });
      fragment.append(row);
    }
    tbody.append(fragment);
    shown += records.length;
  }

  function relative(link) {
    // Same origin whatever host name the server put in the link (proxies, http behind https).
    const url = new URL(link, location.href);
    return url.pathname + url.search;
  }

  function setBusy(busy) {
    table.setAttribute("aria-busy", String(busy));
    more.disabled = busy;
    if (busy) status.textContent = shown ? "Loading more…" : "Searching…";
  }

  function showError(message) {
    failed = true;
    errorBox.textContent = message;
    errorBox.hidden = false;
    exportButton.disabled = true;
  }

  function finished(token) {
    if (token !== generation) return;
    setBusy(false);
    more.hidden = !next;
    if (failed) {
      status.textContent = "The search failed.";
    } else if (!shown) {
      empty.hidden = false;
      empty.textContent = next
        ? "No records in the part of the range searched so far. Load more searches further."
        : "No audit records match this search. Widen the range or remove a filter.";
      status.textContent = next ? "No records yet." : "No records.";
    } else {
      status.textContent = `${shown} record${shown === 1 ? "" : "s"} shown, newest first` +
        (next ? "; Load more shows older ones." : "; that is all of them.");
    }
    table.dataset.searches = String(Number(table.dataset.searches) + 1);
  }

  async function load(url, token) {
    setBusy(true);
    try {
      let followed = 0;
      const before = shown;
      for (;;) {
        const page = await getJson(url, controller.signal);
        if (token !== generation) return;
        addRows(page.value || []);
        next = page["@odata.nextLink"] ? relative(page["@odata.nextLink"]) : null;
        if (!next || shown > before || ++followed >= EMPTY_PAGES_FOLLOWED) break;
        url = next;
      }
    } catch (error) {
      if (error.name === "AbortError" || token !== generation) return;
      next = null;
      showError(error instanceof ShownError ? error.message : `The page failed: ${error.message}`);
    }
    finished(token);
  }

  function search() {
    generation += 1;
    if (controller) controller.abort();
    controller = new AbortController();
    tbody.replaceChildren();
    shown = 0;
    next = null;
    failed = false;
    errorBox.hidden = true;
    empty.hidden = true;
    more.hidden = true;
    exportButton.disabled = false;
    const params = pageParams();
    load(`${API}audit${String(params) ? "?" + params : ""}`, generation);
    loadHealth();
  }

  // ------------------------------------------------------------ record detail

  let opener = null;

  async function openRecord(id, from) {
    const dialog = $("detail");
    opener = from;
    $("detail-title").textContent = `Record ${id}`;
    $("detail-body").textContent = "";
    $("detail-status").textContent = "Loading the raw record…";
    $("detail-copy").disabled = true;
    if (!dialog.open) dialog.showModal();
    $("detail-close").focus();
    try {
      const record = await getJson(`${API}audit/${encodeURIComponent(id)}`);
      $("detail-body").textContent = JSON.stringify(record, null, 2);
      $("detail-status").textContent = "The full record, exactly as archived.";
      $("detail-copy").disabled = false;
    } catch (error) {
      $("detail-status").textContent = error instanceof ShownError ? error.message : `Loading failed: ${error.message}`;
    }
  }

  async function copy(text, where) {
    try {
      await navigator.clipboard.writeText(text);
      where.textContent = "Copied to the clipboard.";
    } catch (_) {
      where.textContent = "Copying is blocked here: select the text and copy it by hand.";
    }
  }

  // ------------------------------------------------------------ health

  async function loadHealth() {
    let health;
    try {
      health = await getJson(`${API}health`);
    } catch (error) {
      $("health-summary").textContent = `Data freshness unknown: ${error.message}`;
      return;
    }
    const types = health.contentTypes || [];
    const checkpoints = types.map((t) => t.checkpoint).filter(Boolean).sort();
    const collects = types.map((t) => t.lastSuccessfulCollect).filter(Boolean).sort();
    const summary = $("health-summary");
    summary.replaceChildren();
    const badge = document.createElement("strong");
    badge.className = `badge s-${health.status}`;
    badge.textContent = `Collector ${health.status}`;
    summary.append(badge);
    if (checkpoints.length) {
      summary.append(" · complete up to ", timeElement(checkpoints[0]));
    } else {
      summary.append(" · nothing collected yet");
    }
    if (collects.length) summary.append(" · last successful collect ", timeElement(collects[collects.length - 1]));
    const reasons = $("health-reasons");
    reasons.replaceChildren(...(health.reasons || []).map((reason) => {
      const item = document.createElement("li");
      item.textContent = reason;
      return item;
    }));
    const rows = $("health-types");
    rows.replaceChildren(...types.map((type) => {
      const row = document.createElement("tr");
      cell(row, type.contentType);
      cell(row, type.status);
      row.insertCell().append(timeElement(type.checkpoint));
      row.insertCell().append(timeElement(type.lastSuccessfulCollect));
      return row;
    }));
    $("health-details").hidden = false;
  }

  // ------------------------------------------------------------ export

  function exportUrl() {
    const params = pageParams();
    params.delete("top");
    params.set("format", "csv");
    return `${API}audit?${params}`;
  }

  // Counts the bytes going through, and keeps the end of the stream to find a truncation note.
  function progress(onBytes) {
    let bytes = 0;
    let tail = new Uint8Array(0);
    return new TransformStream({
      transform(chunk, sink) {
        bytes += chunk.byteLength;
        tail = chunk.byteLength >= 4096 ? chunk.slice(-4096) : new Uint8Array([...tail.slice(-4096 + chunk.byteLength), ...chunk]);
        onBytes(bytes, null);
        sink.enqueue(chunk);
      },
      flush() {
        const text = new TextDecoder().decode(tail);
        const at = text.lastIndexOf("@truncated:");
        onBytes(bytes, at >= 0 ? text.slice(at).split(/\r?\n/)[0] : null);
      },
    });
  }

  function megabytes(bytes) {
    return `${(bytes / 1048576).toFixed(bytes < 10485760 ? 1 : 0)} MB`;
  }

  async function exportCsv() {
    const url = exportUrl();
    if (!key()) {
      // No key to send: a plain download link. The browser streams the response to disk, so an
      // export of any size never passes through this page's memory.
      const link = document.createElement("a");
      link.href = url;
      link.download = "audit.csv";
      document.body.append(link);
      link.click();
      link.remove();
      status.textContent = "The export is downloading (see the browser's downloads).";
      return;
    }
    // A key goes in a header, which a download link cannot send: fetch, then stream to a file.
    let file = null;
    if (window.showSaveFilePicker) {
      try {
        file = await window.showSaveFilePicker({
          suggestedName: "audit.csv", types: [{ description: "CSV", accept: { "text/csv": [".csv"] } }],
        });
      } catch (error) {
        if (error.name === "AbortError") return; // the user cancelled
        file = null;
      }
    }
    exportButton.disabled = true;
    const done = (bytes, note) => {
      status.textContent = note
        ? `Export stopped early after ${megabytes(bytes)}: ${note.replace("@truncated: ", "")}`
        : `Export: ${megabytes(bytes)} so far…`;
    };
    try {
      let response;
      try {
        response = await apiFetch(url);
      } catch (_) {
        throw new ShownError("The API could not be reached (network error, or the sign-in session expired: reload the page).");
      }
      if (!response.ok) throw new ShownError(await failure(response));
      let total = 0;
      let note = null;
      const counted = response.body.pipeThrough(progress((bytes, found) => {
        total = bytes;
        note = found;
        done(bytes, found);
      }));
      if (file) {
        // Chromium, Edge: each chunk goes to the file as it arrives; memory holds one chunk.
        await counted.pipeTo(await file.createWritable());
      } else {
        // Other browsers: a Blob built chunk by chunk, saved when complete (docs/search-page.md).
        const parts = [];
        const reader = counted.getReader();
        for (;;) {
          const { value, done: end } = await reader.read();
          if (end) break;
          parts.push(value);
        }
        const link = document.createElement("a");
        link.href = URL.createObjectURL(new Blob(parts, { type: "text/csv" }));
        link.download = "audit.csv";
        document.body.append(link);
        link.click();
        link.remove();
        setTimeout(() => URL.revokeObjectURL(link.href), 60e3);
      }
      status.textContent = note
        ? `Export stopped early after ${megabytes(total)}: ${note.replace("@truncated: ", "")}`
        : `Export finished: ${megabytes(total)} saved as CSV.`;
    } catch (error) {
      showError(error instanceof ShownError ? error.message : `The export failed: ${error.message}`);
      failed = false; // the search itself stands; only the export failed
    } finally {
      exportButton.disabled = false;
    }
  }

  // ------------------------------------------------------------ wiring

  $("search").addEventListener("submit", (event) => {
    event.preventDefault();
    const params = formParams();
    const query = String(params) ? `?${params}` : "";
    if (query !== location.search) history.pushState(null, "", location.pathname + query);
    search();
  });
  window.addEventListener("popstate", () => {
    fillForm(new URLSearchParams(location.search));
    search();
  });
  $("reset").addEventListener("click", () => {
    fillForm(new URLSearchParams());
    $("f-q").focus();
  });
  range.addEventListener("change", () => fillRange(range.value));
  for (const id of ["f-start", "f-end"]) {
    $(id).addEventListener("input", () => { range.value = "custom"; });
  }
  more.addEventListener("click", () => {
    if (next) load(next, generation);
  });
  exportButton.addEventListener("click", exportCsv);
  $("copy-link").addEventListener("click", () => copy(location.href, status));
  localToggle.checked = localStorage.getItem(LOCAL_STORE) === "1";
  localToggle.addEventListener("change", () => {
    localStorage.setItem(LOCAL_STORE, localToggle.checked ? "1" : "0");
    refreshTimes();
  });

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const field = $("f-key");
    if (field.value.trim()) sessionStorage.setItem(KEY_STORE, field.value.trim());
    field.value = "";
    field.removeAttribute("aria-invalid");
    showKeyStatus();
    search();
  });
  $("key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORE);
    showKeyStatus();
  });

  // Arrow keys move between the rows' open buttons.
  tbody.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    const row = event.target.closest("tr");
    const target = event.key === "ArrowDown" ? row && row.nextElementSibling : row && row.previousElementSibling;
    if (target) {
      event.preventDefault();
      target.querySelector("button.open").focus();
    }
  });

  const dialog = $("detail");
  $("detail-close").addEventListener("click", () => dialog.close());
  $("detail-copy").addEventListener("click", () => copy($("detail-body").textContent, $("detail-status")));
  dialog.addEventListener("close", () => {
    if (opener && opener.isConnected) opener.focus();
  });

  showKeyStatus();
  fillForm(new URLSearchParams(location.search));
  search();
})();
