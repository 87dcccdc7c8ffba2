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
  document.addEventListener("htmx:sendError", (event) => {
    // A body over the server's limit is refused unread and the connection closed: the browser, still sending, may
    // see only that. An upload form says its limit then, as the likelier cause.
    const limit = event.detail.elt.closest("form[data-max-bytes]");
    problem(limit
      ? "The server closed the connection before it took the files, or could not be reached. An upload may be at " +
        `most ${sizeOf(Number(limit.dataset.maxBytes))} together: send fewer or smaller files at a time.`
      : "The server could not be reached. Check the connection and try again.");
  });
  document.addEventListener("htmx:afterRequest", (event) => {
    const xhr = event.detail.xhr;
    const status = xhr ? xhr.status : 0;
    // Refused before the app read it (too large, not logged in: kb/platform/request_guard.py): nothing to swap in,
    // the reason is said here.
    if (status >= 400 && xhr.getResponseHeader("HX-Reswap") === "none") problem(xhr.responseText);
    else if (status > 0 && status < 500) document.getElementById("request-problem").hidden = true;
  });
})();

// A form marked data-reset-on-success (the ask form) loses its question once the server has taken it; the scope and
// mode stay for the follow-up. Here rather than in an hx-on attribute: the planned Content-Security-Policy allows no
// script in the page itself.
document.addEventListener("htmx:afterRequest", (event) => {
  const form = event.detail.elt;
  // Refusals (4xx) are swapped in like answers (base.html's responseHandling), so htmx counts them successful too.
  const taken = event.detail.successful && event.detail.xhr.status < 400;
  if (taken && form.matches("form[data-reset-on-success]")) form.querySelector("[name=question]").value = "";
});

// The transcript is an aria-live region: while an answer streams in token by token it is marked busy, so that a
// screen reader waits and reads the finished answer once, when the closing event has replaced the streaming block.
document.addEventListener("DOMContentLoaded", () => {
  const exchanges = document.getElementById("exchanges");
  if (!exchanges) return;
  const markBusy = () =>
    exchanges.setAttribute("aria-busy", String(exchanges.querySelector(".exchange.streaming") !== null));
  new MutationObserver(markBusy).observe(exchanges, { childList: true });
  markBusy();
});

// The ask page: "Copy answer" copies the answer's text; the scope's summary and log filters follow the chosen collections.
(() => {
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

// A stream the server refused (an unknown question, someone else's, a session that ended) is CLOSED: the SSE
// extension would open it again and again with a growing delay. The exchange says why instead, and is detached, which
// makes the extension let the stream go. A dropped connection is not CLOSED: the browser reconnects by itself, and the
// server replays the stored answer rather than asking again.
document.addEventListener("htmx:sseError", (event) => {
  const source = event.detail.source;
  if (!source || source.readyState !== EventSource.CLOSED) return;
  source.close();
  const exchange = event.target.closest(".exchange") || event.target;
  const notice = document.createElement("article");
  notice.className = "exchange failed";
  notice.setAttribute("role", "alert");
  notice.textContent = "This answer could not be loaded: the question is not one of yours, or your session has ended. " +
    "Reload the page, or log in again, to go on.";
  exchange.replaceWith(notice);
});

// An opened conversation shows its newest exchange, the last one (newest at the bottom, where the ask form appends
// the next with show:bottom); its start, so that a long answer reads from its question down.
(() => {
  const exchanges = document.querySelectorAll("#exchanges > .exchange");
  if (exchanges.length) exchanges[exchanges.length - 1].scrollIntoView({ block: "start" });
})();

// filesizeformat's way (1024 bytes a KB), as the page states the limit.
function sizeOf(bytes) {
  const units = ["bytes", "KB", "MB", "GB"];
  let unit = 0;
  while (bytes >= 1024 && unit < units.length - 1) {
    bytes /= 1024;
    unit += 1;
  }
  return unit ? `${bytes.toFixed(1)} ${units[unit]}` : `${bytes} bytes`;
}

// An upload form (data-max-bytes: the server's KB_REQUEST_MAX_BYTES) checks the chosen files' total size as they are
// chosen. Over the limit the server would refuse the request unread and close the connection, which a browser still
// sending may report as no answer at all; here the reason is said in the form, and the browser will not send it
// (the file field is invalid until other files are chosen).
(() => {
  // What a multipart body adds to its files: each part's headers, the form's other fields.
  const PER_FILE_BYTES = 512;
  const FORM_BYTES = 4096;
  document.addEventListener("change", (event) => {
    const input = event.target;
    const form = input.closest("form[data-max-bytes]");
    if (!form || input.type !== "file") return;
    const limit = Number(form.dataset.maxBytes);
    const files = [...form.querySelectorAll("input[type=file]")].flatMap((field) => [...field.files]);
    const total = files.reduce((sum, file) => sum + file.size, 0);
    const tooLarge = total + PER_FILE_BYTES * files.length + FORM_BYTES > limit;
    const message = tooLarge
      ? `${files.length === 1 ? "This file comes" : `These ${files.length} files come`} to ${sizeOf(total)}; an upload may ` +
        `be at most ${sizeOf(limit)} together. Choose fewer or smaller files, and send the rest in another upload.`
      : "";
    input.setCustomValidity(message);
    const said = form.querySelector("[data-upload-problem]");
    said.textContent = message;
    said.hidden = !tooLarge;
  });
})();
