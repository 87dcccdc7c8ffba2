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

// A form marked data-reset-on-success (the ask form) is emptied once the server has taken what it sent. Here rather
// than in an hx-on attribute: the planned Content-Security-Policy allows no script in the page itself.
document.addEventListener("htmx:afterRequest", (event) => {
  if (event.detail.successful && event.detail.elt.matches("form[data-reset-on-success]")) event.detail.elt.reset();
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
