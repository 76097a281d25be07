// A training run's admin page follows the run live until it finishes.
(function () {
  "use strict";
  const box = document.getElementById("run-progress");
  if (!box) return;
  const bar = box.querySelector("progress");
  const step = box.querySelector(".run-step");
  const decision = box.querySelector(".run-decision");

  function poll() {
    fetch(box.dataset.url, {credentials: "same-origin"})
      .then(function (response) { return response.json(); })
      .then(function (run) {
        bar.value = run.progress;
        step.textContent = run.status_display + ": " + (run.error || run.step);
        decision.textContent = run.decision;
        if (!run.finished) setTimeout(poll, 2000);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  poll();
})();
