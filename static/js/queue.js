// The review queue page: a WebSocket tells it that the queue changed, and it re-fetches the
// table from the server (the server renders rows; this file only swaps them in).
"use strict";

(function () {
  const table = document.getElementById("queue-table");
  const indicator = document.getElementById("live-indicator");
  const MIN_DELAY_MS = 1000;
  const MAX_DELAY_MS = 30000;
  let retryDelay = MIN_DELAY_MS;
  let refreshing = null;
  let refreshAgain = false;

  document.querySelectorAll("select[data-autosubmit]").forEach((select) => {
    select.addEventListener("change", () => select.form.submit());
  });

  // "n" claims the next item, as on the review page, so a shift can start without the mouse.
  const claimForm = document.querySelector("form.claim-next");
  document.addEventListener("keydown", (event) => {
    const typing = event.target.closest && event.target.closest("input, textarea, select, [contenteditable]");
    if (event.key !== "n" || typing || event.ctrlKey || event.metaKey || event.altKey || !claimForm) return;
    event.preventDefault();
    claimForm.requestSubmit();
  });
  if (!table || !("WebSocket" in window)) return;

  function showState(state, text) {
    indicator.dataset.state = state;
    indicator.textContent = text;
  }

  // One fetch at a time; changes that arrive meanwhile cause one more fetch after it.
  function refresh() {
    if (refreshing) {
      refreshAgain = true;
      return;
    }
    refreshing = fetch(table.dataset.fragmentUrl, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then((response) => {
        // Sent to the login page: the session ended. Reload so the reviewer sees that, not a
        // login form inside the table.
        if (response.redirected) {
          window.location.reload();
          return null;
        }
        if (!response.ok) throw new Error("queue fragment: HTTP " + response.status);
        return response.text();
      })
      .then((html) => {
        if (html !== null) table.innerHTML = html;
      })
      .catch((error) => console.warn(error))
      .finally(() => {
        refreshing = null;
        if (refreshAgain) {
          refreshAgain = false;
          refresh();
        }
      });
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(scheme + "//" + window.location.host + table.dataset.wsPath);
    showState("connecting", "connecting…");
    socket.addEventListener("open", () => {
      retryDelay = MIN_DELAY_MS;
      showState("live", "live");
      refresh(); // changes made while we were away
    });
    socket.addEventListener("message", (message) => {
      let change;
      try {
        change = JSON.parse(message.data);
      } catch (error) {
        return;
      }
      if (change && change.event) refresh();
    });
    socket.addEventListener("close", () => {
      // Jitter, so many pages that lost the server together do not all return at once.
      const wait = retryDelay * (0.75 + Math.random() / 2);
      showState("offline", "offline, retrying in " + Math.round(wait / 1000) + " s");
      window.setTimeout(connect, wait);
      retryDelay = Math.min(retryDelay * 2, MAX_DELAY_MS);
    });
  }

  connect();
})();
