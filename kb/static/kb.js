// htmx leaves the page as it was when a request fails on the server or never reaches it; say so, rather than let a
// click seem to do nothing. Bad input is answered by the views themselves (4xx, swapped in: see base.html).
(() => {
  const problem = (text) => {
    const banner = document.getElementById("request-problem");
    banner.textContent = text;
    banner.hidden = false;
  };
  document.addEventListener("htmx:responseError", (event) =>
    problem(`The server could not complete that request (status ${event.detail.xhr.status}). Try again, or tell ` +
            "an administrator if it keeps happening."));
  document.addEventListener("htmx:sendError", () =>
    problem("The server could not be reached. Check the connection and try again."));
  document.addEventListener("htmx:afterRequest", (event) => {
    const status = event.detail.xhr ? event.detail.xhr.status : 0;
    if (status > 0 && status < 500) document.getElementById("request-problem").hidden = true;
  });
})();

// The ask page: after a question is sent only its text is cleared (the scope and mode stay for the follow-up);
// "Copy answer" copies the answer's text; the scope's summary and log filters follow the chosen collections.
(() => {
  document.addEventListener("htmx:afterRequest", (event) => {
    const form = event.detail.elt;
    if (event.detail.successful && form.matches && form.matches("form[data-reset-after-ask]")) {
      form.querySelector("input[name=question]").value = "";
    }
  });
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-copy-from]");
    if (!button) return;
    const text = document.getElementById(button.dataset.copyFrom).innerText;
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // No clipboard API outside secure contexts (a plain-HTTP intranet host): select the text and copy it.
      const range = document.createRange();
      range.selectNodeContents(document.getElementById(button.dataset.copyFrom));
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      document.execCommand("copy");
    }
    button.textContent = "Copied";
  });
  document.addEventListener("change", (event) => {
    const scope = event.target.closest("details.scope");
    if (!scope) return;
    const chosen = [...scope.querySelectorAll("input[name=collection]:checked")];
    scope.querySelector("[data-scope-summary]").textContent = chosen.length
      ? chosen.map((box) => box.parentElement.textContent.trim()).join(", ")
      : "all collections you can read";
    const logFilters = scope.querySelector("[data-log-filters]");
    if (logFilters) logFilters.hidden = chosen.length > 0 && !chosen.some((box) => box.hasAttribute("data-holds-logs"));
  });
})();

// An opened conversation shows its newest exchange, the last one (newest at the bottom, where the ask form appends
// the next with show:bottom); its start, so that a long answer reads from its question down.
(() => {
  const exchanges = document.querySelectorAll("#exchanges > .exchange");
  if (exchanges.length) exchanges[exchanges.length - 1].scrollIntoView({ block: "start" });
})();
