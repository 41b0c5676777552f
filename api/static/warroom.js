// The war room in the browser: sign-in (token → HttpOnly cookie), live panel, Approve & Apply.
"use strict";

(() => {
  const DEBOUNCE_MS = 250;
  const FALLBACK_MS = 10000;
  const RECONNECT_MS = 5000;
  const NOTICE_MS = 10000; // a success notice goes stale as verification moves on

  // crypto.randomUUID exists only in secure contexts; a plain-http intranet host is not one.
  function uuid4() {
    if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20),
      hex.slice(20)].join("-");
  }

  async function detailOf(response) {
    try {
      const body = await response.json();
      const detail = body.detail ?? body;
      return typeof detail === "string" ? detail : JSON.stringify(detail);
    } catch {
      return `HTTP ${response.status}`;
    }
  }

  // --- sign-in ------------------------------------------------------------------------

  async function openSession(token, error) {
    error.textContent = "";
    try {
      const response = await fetch("/v1/session", {
        method: "POST",
        credentials: "same-origin",
        headers: { Authorization: `Bearer ${token}` },
      });
      if (response.ok) {
        location.reload();
        return;
      }
      error.textContent = `Sign-in refused: ${await detailOf(response)}`;
    } catch (failure) {
      error.textContent = `Sign-in failed: ${failure.message}`;
    }
  }

  function signIn(form) {
    const error = document.getElementById("login-error");
    const token = new URLSearchParams(location.hash.slice(1)).get("token");
    if (token) {
      // The token must not stay in the address bar, the history or a bookmark.
      history.replaceState(null, "", location.pathname + location.search);
      openSession(token, error);
    }
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      openSession(form.elements.token.value.trim(), error);
    });
  }

  // --- the war room ---------------------------------------------------------------------

  function warRoom(panel) {
    const status = document.getElementById("action-status");
    const liveState = document.getElementById("live-state");
    const labels = { live: "live", reconnecting: "reconnecting…", polling: "polling every 10 s" };
    let timer = 0;
    let hush = 0;
    let busy = false; // an approve/apply is under way: its button must stay put
    let loading = false;
    let stale = false;

    const setLive = (state) => {
      liveState.dataset.state = state;
      liveState.textContent = labels[state];
    };
    const say = (text, isError = false) => {
      clearTimeout(hush);
      status.textContent = text;
      status.classList.toggle("error", isError);
    };
    const refreshUrl = () => panel.querySelector("[data-refresh]")?.dataset.refresh ?? "";

    async function refresh() {
      const url = refreshUrl();
      if (!url) return;
      if (busy || loading) {
        stale = true;
        return;
      }
      loading = true;
      try {
        const response = await fetch(url, { credentials: "same-origin" });
        if (response.status === 401) {
          location.reload();
          return;
        }
        const html = response.ok ? await response.text() : "";
        if (html && !busy) panel.innerHTML = html;
        else if (html) stale = true;
      } catch {
        // Unreachable for now: the next change or the fallback timer tries again.
      } finally {
        loading = false;
        if (stale && !busy) {
          stale = false;
          schedule();
        }
      }
    }

    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(refresh, DEBOUNCE_MS);
    }

    function connect() {
      const events = new EventSource("/v1/events");
      // "hello" opens every (re)connection: changes may have been missed meanwhile.
      events.addEventListener("hello", () => {
        setLive("live");
        schedule();
      });
      events.addEventListener("change", schedule);
      events.addEventListener("error", () => {
        if (events.readyState === EventSource.CLOSED) {
          setLive("polling");
          setTimeout(connect, RECONNECT_MS);
        } else {
          setLive("reconnecting");
        }
      });
    }

    async function post(url, key) {
      const response = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Idempotency-Key": key, Accept: "application/json" },
      });
      if (!response.ok) throw new Error(await detailOf(response));
      return response.json();
    }

    async function approveAndApply(button) {
      const run = button.dataset.run;
      const base = `/v1/runs/${encodeURIComponent(run)}`;
      const key = uuid4(); // one per click: a retried request is answered, not repeated
      busy = true;
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
      try {
        if (button.dataset.approved !== "true") {
          say(`Approving ${run}…`);
          await post(`${base}/approve`, key);
        }
        say(`Applying ${run}…`);
        await post(`${base}/apply`, key);
        say(`${run} approved and applied.`);
        hush = setTimeout(() => say(""), NOTICE_MS);
      } catch (failure) {
        say(`${run}: ${failure.message}`, true);
        button.disabled = false;
      } finally {
        button.removeAttribute("aria-busy");
        busy = false;
        schedule();
      }
    }

    document.addEventListener("click", (event) => {
      const button = event.target.closest("#approve-apply");
      if (button && !busy) approveAndApply(button);
    });
    connect();
    setInterval(schedule, FALLBACK_MS);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("login-form");
    const panel = document.getElementById("panel");
    if (form) signIn(form);
    else if (panel) warRoom(panel);
  });
})();
