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
