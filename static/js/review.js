// The review page: seeking from evidence, wellness filters, keyboard shortcuts.
"use strict";

(function () {
  const player = document.getElementById("player");
  const wellness = document.getElementById("wellness");
  const decideForm = document.getElementById("decide-form");
  const skipDialog = document.getElementById("skip-dialog");
  const claimNextForm = document.getElementById("claim-next-form");
  const help = document.getElementById("help-overlay");
  let submitting = false;

  // --- wellness filters: on until the reviewer turns them off, remembered in this browser -----

  const filters = {
    blur: document.getElementById("toggle-blur"),
    gray: document.getElementById("toggle-gray"),
  };

  function storedSetting(name) {
    try {
      return window.localStorage.getItem("coefvq.wellness." + name);
    } catch (error) {
      return null; // storage blocked: keep the safe default
    }
  }

  function setFilter(name, on) {
    wellness.classList.toggle(name, on);
    filters[name].setAttribute("aria-pressed", on ? "true" : "false");
    try {
      window.localStorage.setItem("coefvq.wellness." + name, on ? "on" : "off");
    } catch (error) {
      // not remembered, still applied
    }
  }

  function toggleFilter(name) {
    setFilter(name, !wellness.classList.contains(name));
  }

  Object.keys(filters).forEach((name) => {
    setFilter(name, storedSetting(name) !== "off");
    filters[name].addEventListener("click", () => toggleFilter(name));
  });

  // --- the player -------------------------------------------------------------------------------

  player.muted = true;

  function seek(seconds) {
    if (!Number.isFinite(seconds)) return;
    player.currentTime = seconds;
    player.scrollIntoView({ block: "nearest" });
  }

  function togglePlay() {
    if (player.paused) {
      player.play().catch((error) => console.warn(error));
    } else {
      player.pause();
    }
  }

  document.addEventListener("click", (event) => {
    const target = event.target.closest("[data-seek]");
    if (target) seek(parseFloat(target.dataset.seek));
  });

  // --- decisions --------------------------------------------------------------------------------

  if (decideForm) {
    decideForm.addEventListener("submit", (event) => {
      if (submitting) event.preventDefault(); // one decision per page
      submitting = true;
    });
  }

  function decide(number) {
    const button = decideForm && decideForm.querySelector('button[data-shortcut="' + number + '"]');
    if (button && !submitting) button.click();
  }

  function openSkip() {
    if (skipDialog && !skipDialog.open) {
      skipDialog.showModal();
      skipDialog.querySelector("input[name=reason]").focus();
    }
  }

  const skipOpen = document.getElementById("skip-open");
  if (skipOpen) skipOpen.addEventListener("click", openSkip);
  if (skipDialog) {
    skipDialog.querySelector("[data-dialog-close]").addEventListener("click", () => skipDialog.close());
  }

  // --- help -------------------------------------------------------------------------------------

  function toggleHelp(show) {
    help.hidden = show === undefined ? !help.hidden : !show;
  }

  document.querySelectorAll("[data-help-toggle]").forEach((button) => {
    button.addEventListener("click", () => toggleHelp());
  });
  help.addEventListener("click", (event) => {
    if (event.target === help) toggleHelp(false); // a click beside the card
  });

  // --- keyboard ---------------------------------------------------------------------------------

  function isTyping(target) {
    return target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName);
  }

  const keys = {
    " ": togglePlay,
    b: () => toggleFilter("blur"),
    g: () => toggleFilter("gray"),
    s: openSkip,
    n: () => {
      if (!submitting) claimNextForm.requestSubmit();
    },
    "?": () => toggleHelp(),
    Escape: () => toggleHelp(false),
  };

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (isTyping(event.target) || (skipDialog && skipDialog.open)) return;
    const action = /^[1-9]$/.test(event.key) ? () => decide(event.key) : keys[event.key];
    if (!action) return;
    // Space would also press a focused button (a label!) or scroll the page.
    event.preventDefault();
    action();
  });
  document.addEventListener("keyup", (event) => {
    if (event.key === " " && !isTyping(event.target)) event.preventDefault();
  });
})();
