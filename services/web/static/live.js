// newsmon web: live updates as progressive enhancement. The page is complete without this
// script; with it, new and updated alert cards (rendered and escaped by the server) arrive
// over server-sent events and are put at the top of the list.
"use strict";
(function () {
  const list = document.getElementById("alerts");
  if (!list || !window.EventSource) return;
  const badge = document.getElementById("live");
  const url = new URL(list.dataset.events, window.location.href);
  url.searchParams.set("since", list.dataset.since || "0");
  const source = new EventSource(url);
  source.addEventListener("open", function () { badge.hidden = false; });
  source.addEventListener("error", function () { badge.hidden = true; });
  source.addEventListener("reload", function () { source.close(); window.location.reload(); });
  source.addEventListener("story", function (event) {
    const template = document.createElement("template");
    template.innerHTML = event.data.trim();
    const card = template.content.firstElementChild;
    if (!card) return;
    const old = document.getElementById(card.id);
    if (old) old.remove();
    const empty = document.getElementById("no-alerts");
    if (empty) empty.remove();
    card.classList.add("fresh");
    list.prepend(card);
    const shown = document.getElementById("shown");
    if (shown) shown.textContent = String(list.querySelectorAll("li.alert").length);
  });
})();
